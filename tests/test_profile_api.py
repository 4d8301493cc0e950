"""Issue 17 through the Python API, on each store (a SQLite file, a live Elasticsearch), with the real
OpenAI and DashScope SDKs against the scripted server: the profile, general context, beliefs, memory
tiers and heat, assistant knowledge, chat's window, and the retrieval settings that used to be dead.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from memscope import MemoryScope
from memscope.demo import run_demo
from memscope.heat import TURNS
from memscope.models import EventKind, MemoryStatus, MemoryType
from memscope.sessions import estimate_tokens
from tests.support.es import store_section
from tests.support.scripted_server import BUILTIN_MODES, ScriptedServer, chat_messages

pytestmark = pytest.mark.integration
_STORE: dict[str, Any] = {}
LINE = re.compile(r"^\[(\d+)\] (.*)$", re.MULTILINE)
FACTS = [
    "I am vegetarian",
    "I live in Lisbon",
    "I work as a nurse at the city hospital",
    "I want to run a marathon next year",
    "I play chess with my neighbour every Sunday",
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test on both stores, unless marked `embedded_only`."""
    if metafunc.definition.get_closest_marker("embedded_only") is None and "_store" in metafunc.fixturenames:
        metafunc.parametrize("_store", ["sqlite", "elasticsearch"], indirect=True)


@pytest.fixture(autouse=True)
def _store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    backend = getattr(request, "param", "sqlite")
    with store_section(backend, tmp_path, "profile") as section:
        _STORE.clear()
        _STORE.update(section)
        yield backend


def config(server: ScriptedServer | None, **sections: Any) -> dict[str, Any]:
    """Local jobs on this test's store, models on the scripted server (or none), plus `sections`."""
    cfg: dict[str, Any] = {"store": dict(_STORE), "llm": {"backend": "none"}}
    if server is not None:
        cfg["llm"] = {"backend": "openai", "model": "test-model", "api_key": "test", "base_url": server.openai_base_url}
        cfg["embedding"] = {"backend": "openai", "model": "test-embed", "api_key": "test",
                            "base_url": server.openai_base_url, "dim": 64}
    cfg.update(sections)
    return cfg


def user_text(body: dict[str, Any]) -> str:
    return next(m["content"] for m in chat_messages(body) if m["role"] == "user")


def numbers_of(body: dict[str, Any], needle: str) -> list[int]:
    """The numbers of the prompt's `[n] ...` lines that contain `needle`."""
    return [int(n) for n, line in LINE.findall(user_text(body)) if needle.lower() in line.lower()]


def profile_answer(*entries: tuple[str, str, str, str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """update_profile: (section, slot, text, needle of the cited observation) entries."""

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        return {"entries": [{"section": s, "slot": slot, "text": text, "evidence": numbers_of(body, needle)}
                            for s, slot, text, needle in entries]}

    return answer


def tags(server: ScriptedServer, tag: str) -> list[Any]:
    return [r for r in server.requests_to("/chat/completions") if r.tag == tag]


# -- (b) profile ---------------------------------------------------------------------------------------


def test_reflection_builds_a_profile_citing_observations_and_expires_superseded_entries(
    model_server: ScriptedServer,
) -> None:
    model_server.default(None, BUILTIN_MODES["consolidation"])
    model_server.script(
        "update_profile",
        profile_answer(("preferences", "Diet", "vegetarian", "vegetarian"), ("facts", "home city", "Lisbon", "Lisbon"),
                       ("traits", "made up", "invented trait", "no such line")),  # cites nothing: dropped
        profile_answer(("facts", "home city", "Porto", "Porto")),
    )
    with MemoryScope(config(model_server), background=False) as memory:
        memory.add_messages("tom", FACTS)
        memory.consolidate("tom", wait=True)
        memory.reflect("tom", wait=True)

        profile = memory.profile("tom")
        assert [(e.slot, e.text) for e in profile.preferences] == [("diet", "vegetarian")]
        assert [(e.slot, e.text) for e in profile.facts] == [("home city", "Lisbon")]
        assert profile.traits == [] and profile.goals == []
        lisbon = profile.facts[0]
        [cited] = [memory.get_memory("tom", i) for i in lisbon.source_memory_ids]
        assert cited is not None and "Lisbon" in cited.content and cited.memory_type is MemoryType.OBSERVATION

        memory.add_messages("tom", ["I moved to Porto last month", "I now cycle to work", "I sleep badly lately",
                                    "My sister visits in June", "I bought a piano"])
        memory.consolidate("tom", wait=True)
        memory.reflect("tom", wait=True)

        second = tags(model_server, "update_profile")[1]
        assert "facts: home city = Lisbon" in user_text(second.json)  # the model sees the current profile
        profile = memory.profile("tom")
        assert [(e.slot, e.text) for e in profile.facts] == [("home city", "Porto")]
        assert [e.text for e in profile.preferences] == ["vegetarian"]  # untouched
        old = memory.get_memory("tom", lisbon.id)
        assert old is not None and old.status is MemoryStatus.EXPIRED and old.superseded_by == profile.facts[0].id
        assert [e.kind for e in memory.history("tom", lisbon.id)] == [EventKind.ADD, EventKind.EXPIRE]
        assert memory.profile("tom", agent_id="other-agent").entries() == []  # one profile per agent


# -- (c) general context ----------------------------------------------------------------------------


def test_context_without_a_query_gives_profile_and_pending_turns_within_the_budget() -> None:
    with MemoryScope(config(None), background=False) as memory:
        assert memory.context("ana") == ""
        memory.add_memory("ana", "vegetarian", memory_type="profile", key="preferences: diet")
        memory.add_memory("ana", "Prefer short answers", memory_type="belief")
        memory.add_messages("ana", ["My sister Lea arrives tomorrow", "I booked a table for two"])

        general = memory.retrieve("ana")
        assert general.profile is not None and [e.text for e in general.profile.preferences] == ["vegetarian"]
        assert [m.content for m in general.pending_messages][-1] == "I booked a table for two"
        assert "About the user:" in general.context and "- preferences: diet: vegetarian" in general.context
        assert "My sister Lea arrives tomorrow" in general.context
        assert "Prefer short answers" not in general.context  # beliefs only with retrieval.include_beliefs

        small = memory.context("ana", max_tokens=20)
        assert estimate_tokens(small) <= 20 and "vegetarian" in small and "Lea" not in small

        narrowed = memory.context("ana", "what does ana eat")  # a query narrows to what matches
        assert "Relevant memories:" in narrowed and "About the user:" not in narrowed


# -- (d) beliefs ------------------------------------------------------------------------------------------


def test_beliefs_cite_memories_refresh_when_they_change_and_join_the_context(model_server: ScriptedServer) -> None:
    model_server.default(None, BUILTIN_MODES["consolidation"])

    def beliefs(text: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return lambda body: {"beliefs": [{"belief": text, "evidence": numbers_of(body, "veg")}]}

    model_server.script("derive_beliefs", beliefs("Suggest vegetarian restaurants first."),
                        beliefs("Suggest vegan restaurants only."))
    cfg = config(model_server, business_description="a restaurant booking assistant",
                 retrieval={"include_beliefs": True})
    with MemoryScope(cfg, background=False) as memory:
        diet = memory.add_memory("ben", "vegetarian", memory_type="profile", key="preferences: diet")
        memory.reflect("ben", wait=True)
        [belief] = memory.beliefs("ben")
        assert belief.content == "Suggest vegetarian restaurants first." and belief.source_memory_ids == [diet.id]
        assert "a restaurant booking assistant" in chat_messages(tags(model_server, "derive_beliefs")[0].json)[0][
            "content"]

        memory.reflect("ben", wait=True)  # nothing changed: no model call
        assert len(tags(model_server, "derive_beliefs")) == 1

        memory.update_memory("ben", diet.id, "vegan")
        memory.reflect("ben", wait=True)
        assert [b.content for b in memory.beliefs("ben")] == ["Suggest vegan restaurants only."]
        assert memory.get_memory("ben", belief.id).status is MemoryStatus.EXPIRED  # type: ignore[union-attr]

        assert "Suggest vegan restaurants only." in memory.context("ben")
        assert "Suggest vegan restaurants only." in memory.context("ben", "book a table tonight")


# -- (e) tiers and heat ------------------------------------------------------------------------------


def test_a_hot_session_segment_triggers_the_profile_update(model_server: ScriptedServer) -> None:
    model_server.default(None, BUILTIN_MODES["consolidation"])
    model_server.script("update_profile", profile_answer(("facts", "job", "nurse", "nurse")))
    cfg = config(model_server, tiers={"heat": {"threshold": 3.5}})
    with MemoryScope(cfg, background=False) as memory:
        memory.add_messages("eve", FACTS[:2], session_id="s-cold")  # 2 turns + recency 1: heat 3
        cold = memory.consolidate("eve", wait=True)
        assert cold.summary["operations"] == ["consolidate_memory"]  # type: ignore[union-attr]
        assert tags(model_server, "update_profile") == []

        memory.add_messages("eve", FACTS[2:], session_id="s-hot")  # 3 turns + recency 1: heat 4, hot
        hot = memory.consolidate("eve", wait=True)
        summary = hot.summary  # type: ignore[union-attr]
        assert summary["operations"] == ["consolidate_memory", "refresh_profile"]
        assert any("segment 's-hot' is hot" in n for n in summary["notices"])
        assert [e.text for e in memory.profile("eve").facts] == ["nurse"]

        segments = {s.key: s for s in memory.list_memories("eve", memory_types=["segment"])}
        assert set(segments) == {"segment: s-cold", "segment: s-hot"}
        assert segments["segment: s-hot"].metadata[TURNS] == 3 and "nurse" in segments["segment: s-hot"].content

        memory.consolidate("eve", wait=True)  # nothing new: the hot segment does not fire again
        assert len(tags(model_server, "update_profile")) == 1

        hot_id = segments["segment: s-hot"].id
        found = memory.retrieve("eve", "nurse at the city hospital", memory_types=["segment"])
        assert hot_id in {i.id for i in found.items}
        assert memory.get_memory("eve", hot_id).access_count == 1  # type: ignore[union-attr]  # N_visit
        general = memory.retrieve("eve")
        assert general.segments[0].key == "segment: s-hot"  # 3 turns and a visit: the hottest
        assert "Recent conversations:" in general.context


# -- (f) assistant knowledge -----------------------------------------------------------------------------


def test_assistant_statements_are_their_own_agent_scoped_memories_kept_off_the_profile(
    model_server: ScriptedServer,
) -> None:
    model_server.default(None, BUILTIN_MODES["consolidation"])
    model_server.default("update_profile", {"entries": []})

    def statements(body: dict[str, Any]) -> dict[str, Any]:
        [promise] = numbers_of(body, "remind you")
        [asked] = numbers_of(body, "Can you remind")
        return {"statements": [
            {"content": "The assistant promised to remind the user on Friday to call their sister",
             "kind": "promise", "sources": [promise]},
            {"content": "The user wants a reminder", "kind": "self", "sources": [asked]},  # a user turn: dropped
        ]}

    model_server.script("extract_assistant_knowledge", statements)
    with MemoryScope(config(model_server), background=False) as memory:
        memory.add_messages("ivy", [
            {"role": "user", "content": "Can you remind me on Friday to call my sister?"},
            {"role": "assistant", "content": "Sure, I'll remind you on Friday to call your sister."},
            *FACTS,
        ], agent_id="ada")
        memory.consolidate("ivy", wait=True, agent_id="ada")
        [known] = memory.list_memories("ivy", memory_types=["assistant"])
        said = memory.list_messages("ivy")[1]
        assert (known.agent_id, known.source_message_ids, known.metadata["kind"]) == ("ada", [said.id], "promise")
        assert memory.list_memories("ivy", memory_types=["assistant"], agent_id="other") == []

        found = memory.retrieve("ivy", "did you promise to remind me about my sister", agent_id="ada")
        assert known.id in {i.id for i in found.items}

        memory.reflect("ivy", wait=True, agent_id="ada")
        prompts = [user_text(r.json) for r in tags(model_server, "update_profile")]
        assert prompts and not any("promised" in p for p in prompts)


# -- (g) chat -------------------------------------------------------------------------------------------


def test_chat_sends_the_short_term_window_rendered_as_a_session_and_the_general_context(
    model_server: ScriptedServer,
) -> None:
    model_server.default(None, BUILTIN_MODES["consolidation"])
    model_server.script("chat", "Try the falafel place.")
    with MemoryScope(config(model_server, tiers={"short_term_turns": 2}), background=False) as memory:
        memory.add_memory("tom", "vegetarian", memory_type="profile", key="preferences: diet")
        memory.add_messages("tom", [
            {"role": "user", "content": "first question", "name": "Tom"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "second question", "name": "Tom"},
            {"role": "assistant", "content": "second answer"},
        ])
        assert memory.chat("tom", "Where should I eat tonight?") == "Try the falafel place."
        [request] = tags(model_server, "chat")
        sent = chat_messages(request.json)
        assert sent[0]["role"] == "system" and "preferences: diet: vegetarian" in sent[0]["content"]
        assert sent[1:] == [
            {"role": "user", "content": "second question", "name": "Tom"},
            {"role": "assistant", "content": "second answer"},
            {"role": "user", "content": "Where should I eat tonight?"},
        ]


# -- (a) retrieval settings that were validated but never read -----------------------------------------


def test_retrieval_settings_reach_the_retrieval() -> None:
    cfg = config(None, retrieval={"top_k": 2, "candidates": 3, "pending_limit": 2})
    with MemoryScope(cfg, background=False) as memory:
        memory.add_messages("kim", [f"I visited museum number {n} in Paris" for n in range(8)])
        found = memory.retrieve("kim", "museum in Paris")
        written = {s.worker: s.written for s in found.report.steps}
        assert written["search_messages"] == {"message_hits": 3}  # retrieval.candidates
        assert written["rerank"] == {"rerank_scores": 0}  # rerank.backend: none keeps the fused ranking
        assert len(found.pending_messages) == 2  # retrieval.pending_limit
    with MemoryScope(config(None, retrieval={"include_pending": False}), background=False) as memory:
        found = memory.retrieve("kim", "museum in Paris")
        assert found.pending_messages == [] and "not yet consolidated" not in found.context


def test_a_configured_reranker_reranks(model_server: ScriptedServer) -> None:
    rerank = {"backend": "dashscope", "api_key": "test", "base_url": model_server.dashscope_base_url}
    with MemoryScope(config(None, rerank=rerank), background=False) as memory:
        memory.add_messages("kim", ["I like oolong tea", "My car is red"])
        found = memory.retrieve("kim", "which tea do I like")
        assert model_server.requests_to("/text-rerank/text-rerank")
        assert found.items[0].content == "I like oolong tea"


@pytest.mark.embedded_only
def test_demo_with_a_model_shows_the_profile_and_beliefs(model_server: ScriptedServer) -> None:
    model_server.default(None, BUILTIN_MODES["consolidation"])
    model_server.script("update_profile", profile_answer(("facts", "employer", "ML engineer at Apple", "Apple")))
    model_server.script("derive_beliefs", lambda body: {
        "beliefs": [{"belief": "Suggest ML meetups when planning trips.", "evidence": numbers_of(body, "Apple")}]})
    out = io.StringIO()
    outcome = run_demo(config(model_server), console=Console(file=out, width=200))
    assert [e.text for e in outcome["profile"].facts] == ["ML engineer at Apple"]
    assert [b.content for b in outcome["beliefs"]] == ["Suggest ML meetups when planning trips."]
    printed = out.getvalue()
    assert "profile of demo-tom" in printed and "ML engineer at Apple" in printed
    assert "Suggest ML meetups when planning trips." in printed
