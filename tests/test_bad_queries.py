"""Bad queries stay harmless on both stores (issue 16, goal 4): empty, huge, emoji-only, full-text-search
syntax and mixed-language queries return results (or none), and what is not text is a clear
ValidationError; nothing crashes and nothing stored changes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from memscope import MemoryScope
from memscope.errors import ValidationError
from tests.support.es import store_section
from tests.support.scripted_server import ScriptedServer

pytestmark = pytest.mark.integration

USER = "kim"
NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
TURNS = [
    "I go rock climbing most weekends with Tom.",
    "我上周三去了北京\uff0c见了老朋友。",
    "My cat Miso loves the \"foo\" toy and the bar* brand treats: NEAR the window ^_^",
    "🎉🎉 party tonight 😀",
]
MIXED = "我上周和 Tom 去 rock climbing 了吗\uff1f"  # Chinese and English, a full-width question mark
HARMLESS = [
    "", "   \n\t ", "a" * 200_000, "climbing " * 5_000, "😀🎉🔥", "🎉🎉", '"foo" AND bar*', "NEAR(", "NEAR(cat dog",
    "^", "^cat", '"', '""', ":", "content:cat", "body:Miso", "((", ")", "*", "OR", "NOT", "AND OR NOT", "-cat",
    "cat\x00dog", "{cat}", "[cat]", "\\", "%", "_", "'", "'; DROP TABLE messages; --", MIXED,
    "上周三", "\uff43\uff4c\uff49\uff4d\uff42\uff49\uff4e\uff47", "Où est Miso? 猫はどこ?",
    "\u200b", "x" * 3, "When?", "now now now",
]  # fmt: skip
NOT_TEXT = [42, b"climbing", ["climbing"], "climbing \ud800"]  # None asks for the general context (issue 17)


@pytest.fixture(params=["sqlite", "elasticsearch"])
def memory(request: pytest.FixtureRequest, tmp_path: Path, model_server: ScriptedServer) -> Iterator[MemoryScope]:
    """A MemoryScope on this store with the turns above, embedded by the scripted server; no LLM."""
    with store_section(request.param, tmp_path, "badq") as store:
        cfg = {
            "store": store,
            "llm": {"backend": "none"},
            "embedding": {"backend": "openai", "model": "test-embed", "api_key": "test",
                          "base_url": model_server.openai_base_url, "dim": 64},
        }  # fmt: skip
        with MemoryScope(cfg, background=False) as scope:
            scope.add_messages(USER, [{"role": "user", "content": t, "created_at": NOW} for t in TURNS])
            scope.runtime.run("consolidate_memory", user_id=USER)  # no LLM: embeds the turns only
            yield scope


def test_bad_queries_return_results_or_nothing(memory: MemoryScope) -> None:
    before = memory.list_messages(USER)
    for query in HARMLESS:
        result = memory.retrieve(USER, query, top_k=5, now=NOW)
        assert isinstance(result.context, str) and len(result.items) <= 5, query[:40]
        assert all(item.content in TURNS for item in result.items), query[:40]
    assert memory.list_messages(USER) == before  # a query never changes what is stored


def test_words_still_match_inside_search_syntax(memory: MemoryScope) -> None:
    for query in ('"foo" AND bar*', "NEAR(Miso", "^climbing^", "climbing:", MIXED):
        found = memory.retrieve(USER, query, top_k=4, now=NOW).items
        assert found, query
    assert memory.retrieve(USER, "上周三 北京", top_k=1, now=NOW).items[0].content == TURNS[1]


def test_query_that_is_not_text_is_a_validation_error(memory: MemoryScope) -> None:
    for query in NOT_TEXT:
        with pytest.raises(ValidationError, match="query"):
            memory.retrieve(USER, query, now=NOW)
