"""Bad or hostile input is a ValidationError saying what to fix, and nothing is stored (issue 11)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memscope import MemoryScope
from memscope.errors import ValidationError
from memscope.models import Message
from tests.support.scripted_server import ScriptedServer

pytestmark = pytest.mark.integration


@pytest.fixture
def memory(tmp_path: Path, model_server: ScriptedServer) -> Iterator[MemoryScope]:
    embed = {"backend": "openai", "model": "e", "dim": 64, "api_key": "k", "base_url": model_server.openai_base_url}
    settings = {"store": {"path": str(tmp_path / "m.db")}, "llm": {"backend": "none"}, "embedding": embed}
    with MemoryScope(settings, background=False) as scope:
        yield scope


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


BAD_MESSAGES = {
    "object in metadata": ({"content": "hi", "metadata": {"x": object()}}, "metadata.x is a object"),
    "bytes in metadata": ({"content": "hi", "metadata": {"x": b"raw"}}, "metadata.x is a bytes"),
    "tool_calls 5000 deep": ({"content": "hi", "tool_calls": nested(5000)}, "nested more than 20 levels"),
    "surrogate in content": ("I said \ud800", "content contains a lone surrogate"),
    "surrogate in metadata": ({"content": "hi", "metadata": {"k": "\udfff"}}, "metadata.k contains a lone surrogate"),
    "metadata as a list": ({"content": "hi", "metadata": [["a", 1]]}, "metadata must be a mapping"),
    "NaN in metadata": ({"content": "hi", "metadata": {"score": float("nan")}}, "JSON has no NaN"),
    "inf in metadata": ({"content": "hi", "metadata": {"score": float("inf")}}, "JSON has no NaN or infinity"),
    "5 MB of metadata": ({"content": "hi", "metadata": {"blob": "x" * 5_000_000}}, "the limit is 65,536"),
    "1 MB name": ({"content": "hi", "name": "n" * 1_000_000}, "name is 1,000,000 characters long"),
}


@pytest.mark.parametrize("case", sorted(BAD_MESSAGES))
def test_bad_message_is_a_validation_error_and_nothing_is_stored(memory: MemoryScope, case: str) -> None:
    item, expected = BAD_MESSAGES[case]
    with pytest.raises(ValidationError, match=expected.replace("(", r"\(")):
        memory.add_messages("ann", ["a fine first message", item])
    assert memory.list_messages("ann") == []


@pytest.mark.parametrize(("messages", "expected"), [(5, "got int"), (None, "got NoneType")])
def test_messages_of_the_wrong_type_say_what_to_send(memory: MemoryScope, messages: Any, expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        memory.add_messages("ann", messages)


def test_session_id_is_limited_and_printable(memory: MemoryScope) -> None:
    with pytest.raises(ValidationError, match="session_id is 1,000,000 characters long"):
        memory.add_messages("ann", "hi", session_id="s\x01" * 500_000)
    with pytest.raises(ValidationError, match="session_id 's\\\\x01' contains control characters"):
        memory.add_messages("ann", "hi", session_id="s\x01")
    assert memory.list_messages("ann") == []


def test_surrogate_in_a_query_is_a_validation_error(memory: MemoryScope) -> None:
    with pytest.raises(ValidationError, match="query contains a lone surrogate"):
        memory.retrieve("ann", "coffee \ud800")


def test_message_objects_get_the_same_checks_and_the_call_s_session_and_agent(memory: MemoryScope) -> None:
    with pytest.raises(ValidationError, match="content is empty"):
        memory.add_messages("ann", Message(user_id="ann", content="  "))
    (stored,) = memory.add_messages("ann", Message(user_id="ann", content="hello"), session_id="s1", agent_id="bot")
    assert (stored.session_id, stored.agent_id) == ("s1", "bot")
    assert [(m.session_id, m.agent_id) for m in memory.list_messages("ann")] == [("s1", "bot")]
    with pytest.raises(ValidationError, match="has session_id 's2', but the call gives session_id='s1'"):
        memory.add_messages("ann", Message(user_id="ann", content="x", session_id="s2"), session_id="s1")


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [({"limit": 2**70}, "limit must be a whole number from 1 to 100,000"), ({"limit": -1}, "limit must be"),
     ({"limit": 0}, "limit must be")],
)  # fmt: skip
def test_list_limits_are_checked(memory: MemoryScope, kwargs: dict[str, Any], expected: str) -> None:
    memory.add_messages("ann", "hi")
    with pytest.raises(ValidationError, match=expected):
        memory.list_messages("ann", **kwargs)


def test_top_k_zero_and_unknown_time_zone_are_validation_errors(memory: MemoryScope) -> None:
    with pytest.raises(ValidationError, match="top_k must be a whole number from 1"):
        memory.retrieve("ann", "coffee", top_k=0)
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        memory.retrieve("ann", "coffee", timezone="Mars/Olympus")


@pytest.mark.parametrize("variant", [" tom", "tom ", "\uff54\uff4f\uff4d"])
def test_user_ids_are_normalised(memory: MemoryScope, variant: str) -> None:
    memory.add_messages(variant, "I like tea")
    assert [m.content for m in memory.list_messages("tom")] == ["I like tea"]
    assert [m.user_id for m in memory.list_messages(variant)] == ["tom"]


@pytest.mark.parametrize("bad", ["to\u200bm", "\u202etom", "tom\u2028", "tom\u2029", "\u2060tom"])
def test_invisible_and_separator_characters_in_ids_are_refused(memory: MemoryScope, bad: str) -> None:
    with pytest.raises(ValidationError, match=r"user_id .* contains"):
        memory.add_messages(bad, "I like tea")


def test_update_of_a_deleted_memory_raises_like_an_unknown_id(memory: MemoryScope) -> None:
    node = memory.add_memory("ann", "Ann likes tea")
    memory.delete_memory("ann", node.id)
    before = memory.history("ann", node.id)
    with pytest.raises(ValidationError, match=f"no memory '{node.id}'"):
        memory.update_memory("ann", node.id, "Ann likes coffee")
    assert memory.history("ann", node.id) == before


def test_a_re_sent_id_with_other_content_is_a_conflict(memory: MemoryScope) -> None:
    (first,) = memory.add_messages("ann", {"id": "m1", "content": "I live in Paris"})
    (again,) = memory.add_messages("ann", {"id": "m1", "content": "I live in Paris"})
    assert again == first  # the same message again: what is stored, created_at included
    with pytest.raises(ValidationError, match=r"message id\(s\) \['m1'\] were already given with other content"):
        memory.add_messages("ann", [{"content": "new"}, {"id": "m1", "content": "I live in Rome"}])
    assert [m.content for m in memory.list_messages("ann")] == ["I live in Paris"]


def test_caller_ids_are_scoped_per_user(memory: MemoryScope) -> None:
    (alice,) = memory.add_messages("alice", {"id": "42", "content": "Alice's message"})
    (bob,) = memory.add_messages("bob", {"id": "42", "content": "Bob's message"})
    assert alice.metadata["external_id"] == bob.metadata["external_id"] == "42"
    assert alice.id != bob.id
    assert [m.content for m in memory.list_messages("bob")] == ["Bob's message"]
    assert [m.content for m in memory.list_messages("alice")] == ["Alice's message"]
