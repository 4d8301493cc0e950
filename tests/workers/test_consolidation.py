"""The consolidate_memory operation end to end: real SQLite file, real OpenAI SDK against the scripted
server over HTTP, real MiniLM embeddings. The scripted answers are callables that read the prompt
the way a model would, so the tests check the workers' index bookkeeping rather than an echo."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from memscope.engine import (
    OperationCatalog,
    OperationRunner,
    Resources,
    RunResult,
    builtin_operation_files,
    parse_operation,
)
from memscope.engine.llm_worker import load_prompts
from memscope.engine.runner import NO_LLM_NOTICE
from memscope.errors import OperationRunError
from memscope.models import EventKind, Granularity, MemoryNode, MemoryStatus, Message, Role
from memscope.stores.base import MemoryFilter, MessageFilter, SearchQuery
from memscope.workers.mark_messages_consolidated import DEGRADED_NOTICE
from memscope.workers.resolve_contradictions import ResolveAnswer, ResolveContradictions
from tests.support.scripted_server import Fault, plausible_answer

pytestmark = pytest.mark.integration

USER = "tom"
ALL = MemoryFilter(statuses=tuple(MemoryStatus))
LINE = re.compile(r"^\[(?P<ref>[EN]?\d+)\] (?P<head>[^|]*)\| (?P<body>.*)$", re.MULTILINE)


# -- a scripted model that reads its prompt -------------------------------------------------------


@pytest.fixture(autouse=True)
def _assistant_says_nothing_to_keep(request: pytest.FixtureRequest) -> None:
    """extract_assistant_knowledge (tested in test_profile_and_tiers.py) finds nothing in these chats."""
    if "model_server" in request.fixturenames:
        request.getfixturevalue("model_server").default("extract_assistant_knowledge", {"statements": []})


def prompt(body: dict[str, Any]) -> str:
    """The user part of the first request (the repair turn, if any, comes later)."""
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


def lines(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(ref, head, text) for every numbered line of the prompt: `[3] ... | user(Tom): text`."""
    return [(m["ref"], m["head"], m["body"]) for m in LINE.finditer(prompt(body))]


def ref_of(body: dict[str, Any], needle: str, kind: str = "") -> str:
    """The reference ("3", "E1", "N2") of the first line of this kind containing `needle`."""
    for ref, _, text in lines(body):
        if ref.startswith(kind) and (not kind or ref[1:].isdigit()) and needle.lower() in text.lower():
            return ref
    raise AssertionError(f"no line {kind}* containing {needle!r} in prompt:\n{prompt(body)}")


def index_of(body: dict[str, Any], needle: str) -> int:
    return int(ref_of(body, needle))


def scorer(rules: dict[str, int]):
    """filter_informative: score each user line by the first rule whose text it contains (else 0)."""

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        scores = []
        for ref, _, text in lines(body):
            if text.startswith("user"):
                score = next((s for needle, s in rules.items() if needle.lower() in text.lower()), 0)
                scores.append({"index": int(ref), "score": score, "reason": "scripted"})
        return {"scores": scores}

    return answer


def observations(*items: tuple[str, str], importance: float = 0.8):
    """extract_observations: (content, needle of the source message) pairs."""

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        return {
            "observations": [
                {"content": c, "sources": [index_of(body, n)], "importance": importance, "keywords": [n]}
                for c, n in items
            ]
        }

    return answer


def msg(content: str, at: datetime, role: Role = Role.USER) -> Message:
    return Message(user_id=USER, role=role, content=content, created_at=at, name="Tom" if role is Role.USER else None)


def find(nodes: list[Any], needle: str) -> Any:
    [node] = [n for n in nodes if needle in n.content]
    return node


NO_EVENTS = {"observations": []}


class Clock:
    """A settable fixed clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def consolidate(resources: Any, timezone: str | None = None, spec: Any = None) -> RunResult:
    spec = spec or OperationCatalog().get("consolidate_memory")
    return OperationRunner(resources).run(spec, {"user_id": USER, "timezone": timezone})


def pending(store: Any) -> list[Message]:
    return store.list_messages(USER, MessageFilter(pending=True))


def chat_tags(server: Any) -> list[str]:
    return [r.tag for r in server.requests_to("/chat/completions")]


# -- the tests ------------------------------------------------------------------------------------


def test_new_job_supersedes_old_one_found_by_similarity(tmp_path: Path, model_server: Any, make_resources: Any):
    clock = Clock(datetime(2023, 1, 10, 12, 0, tzinfo=UTC))
    res = make_resources(tmp_path, model_server, clock=clock)
    store = res.store
    store.add_messages(
        [
            msg("Hi! I work at Meta as an engineer.", datetime(2023, 1, 10, 9, 0, tzinfo=UTC)),
            msg("Nice to meet you! What do you build there?", datetime(2023, 1, 10, 9, 1, tzinfo=UTC), Role.ASSISTANT),
        ]
    )
    model_server.script("filter_informative", scorer({"Meta": 3}))
    model_server.script("extract_observations", observations(("Tom works at Meta as an engineer", "work at Meta")))
    model_server.script("extract_timed_observations", NO_EVENTS)
    first = consolidate(res)
    [meta] = first.context["stored_memories"]
    assert meta.content == "Tom works at Meta as an engineer" and meta.status is MemoryStatus.ACTIVE
    assert meta.created_at == datetime(2023, 1, 10, 9, 0, tzinfo=UTC)
    assert "resolve_contradictions" not in chat_tags(model_server)  # one new, nothing stored: no call

    clock.now = datetime(2023, 6, 2, 12, 0, tzinfo=UTC)
    store.add_messages(
        [
            msg("Big news: I left Meta and joined Apple last month.", datetime(2023, 6, 2, 9, 0, tzinfo=UTC)),
            msg("Congratulations on the new job!", datetime(2023, 6, 2, 9, 1, tzinfo=UTC), Role.ASSISTANT),
            msg("Thanks!", datetime(2023, 6, 2, 9, 2, tzinfo=UTC)),
        ]
    )
    seen: list[str] = []

    def resolve(body: dict[str, Any]) -> dict[str, Any]:
        seen.append(prompt(body))
        works, joined = ref_of(body, "works at Apple", "N"), ref_of(body, "joined Apple", "N")
        old = ref_of(body, "Meta as an engineer", "E")
        return {
            "decisions": [
                {"new": int(works[1:]), "action": "contradicts", "targets": [old], "reason": "new employer"},
                {"new": int(joined[1:]), "action": "new", "targets": [], "reason": "the move itself"},
            ]
        }

    model_server.script("filter_informative", scorer({"Apple": 3}))
    model_server.script("extract_observations", observations(("Tom works at Apple", "joined Apple")))
    model_server.script(
        "extract_timed_observations",
        lambda body: {
            "observations": [
                {
                    "content": "Tom joined Apple, leaving Meta",
                    "time_phrase": "last month",
                    "source": index_of(body, "joined Apple"),
                    "future": False,
                    "importance": 0.9,
                }
            ]
        },
    )
    model_server.script("resolve_contradictions", resolve)
    second = consolidate(res)

    # the Meta memory is months old: only load_similar_observations can have shown it to the model
    assert second.context["recent_observations"] == []
    assert [m.id for m in second.context["similar_observations"]] == [meta.id]
    assert "[E1]" in seen[0] and "Meta as an engineer" in seen[0]
    apple = next(m for m in second.context["stored_memories"] if m.content == "Tom works at Apple")
    joined = next(m for m in second.context["stored_memories"] if m.content.startswith("Tom joined Apple"))
    old = store.get_memory(USER, meta.id)
    assert store.get_memory(USER, apple.id).status is MemoryStatus.ACTIVE
    assert old.status is MemoryStatus.EXPIRED and old.superseded_by == apple.id
    assert old.updated_at == clock.now and old.content == meta.content
    assert [e.kind for e in store.history(USER, meta.id)] == [EventKind.ADD, EventKind.EXPIRE]
    assert [e.kind for e in store.history(USER, apple.id)] == [EventKind.ADD]
    may = datetime(2023, 5, 1, tzinfo=UTC)
    assert joined.event_time.start == may and joined.event_time.granularity is Granularity.MONTH
    assert joined.content == "Tom joined Apple, leaving Meta in May 2023"
    assert len(store.list_memories(USER, ALL)) == 3
    assert pending(store) == [] and len(second["consolidated_ids"]) == 3
    assert all(m.consolidated_at == clock.now for m in store.list_messages(USER) if m.created_at.month == 6)


def test_fiction_request_is_filtered_out_before_any_extraction(tmp_path: Path, model_server: Any, make_resources: Any):
    res = make_resources(tmp_path, model_server, embedder="server")
    res.store.add_messages(
        [msg("Write a story where I'm a dragon who lives on the moon", datetime(2023, 5, 1, tzinfo=UTC))]
    )
    model_server.script(
        "filter_informative",
        {"scores": [{"index": 1, "score": 0, "reason": "a fiction request, not a fact about the user"}]},
    )
    result = consolidate(res)
    assert chat_tags(model_server) == ["filter_informative"]
    assert result.context["informative_messages"] == [] and result.context["memory_updates"] == []
    assert res.store.list_memories(USER, ALL) == []
    assert pending(res.store) == [] and result["consolidated_ids"] == [res.store.list_messages(USER)[0].id]


@pytest.mark.parametrize("answer", [{"scores": []}, {"scores": [{"index": 7, "score": 3, "reason": "no such line"}]}])
def test_an_answer_scoring_no_message_is_asked_again_then_fails_with_messages_pending(
    tmp_path: Path, model_server: Any, make_resources: Any, answer: dict[str, Any]
):
    res = make_resources(tmp_path, model_server, embedder="server")
    res.store.add_messages([msg("I adopted a cat named Miso", datetime(2023, 5, 1, tzinfo=UTC))])
    model_server.script("filter_informative", answer, answer)
    with pytest.raises(OperationRunError, match="scored none of the 1 user messages"):
        consolidate(res)
    assert chat_tags(model_server) == ["filter_informative", "filter_informative"]
    assert len(pending(res.store)) == 1 and res.store.list_memories(USER, ALL) == []


def test_a_degenerate_answer_then_a_good_one_consolidates(tmp_path: Path, model_server: Any, make_resources: Any):
    res = make_resources(tmp_path, model_server, embedder="server")
    res.store.add_messages([msg("I adopted a cat named Miso", datetime(2023, 5, 1, tzinfo=UTC))])
    model_server.script("filter_informative", {"scores": []}, scorer({"cat": 3}))
    model_server.default(None, plausible_answer)
    result = consolidate(res)
    assert [m.content for m in result.context["informative_messages"]] == ["I adopted a cat named Miso"]
    assert pending(res.store) == []


def test_relative_time_resolves_against_the_message_in_the_user_zone(
    tmp_path: Path, model_server: Any, make_resources: Any
):
    paris = ZoneInfo("Europe/Paris")
    res = make_resources(tmp_path, model_server, clock=datetime(2023, 5, 10, 12, tzinfo=UTC), embedder="server")
    said = datetime(2023, 5, 10, 9, 0, tzinfo=paris)  # a Wednesday
    res.store.add_messages(
        [
            msg("I'm flying to Paris next Friday!", said),
            msg("My cousin's wedding is the big day for our family, and I'll visit Japan someday.", said),
        ]
    )
    model_server.script("filter_informative", scorer({"Paris": 2, "wedding": 2}))
    model_server.script("extract_observations", NO_EVENTS)
    model_server.script(
        "extract_timed_observations",
        lambda body: {
            "observations": [
                {"content": "Tom is flying to Paris", "time_phrase": "next Friday", "future": True,
                 "source": index_of(body, "Paris"), "importance": 0.5},
                {"content": "Tom's cousin gets married", "time_phrase": "the big day", "date": "2023-07-01",
                 "future": True, "source": index_of(body, "wedding")},
                {"content": "Tom will visit Japan", "time_phrase": "someday", "future": True,
                 "source": index_of(body, "wedding")},
                {"content": "Tom books a hotel in Paris", "time_phrase": "on May 19", "future": True,
                 "source": index_of(body, "Paris")},  # a date the user never said
            ]
        },
    )  # fmt: skip
    model_server.script("resolve_contradictions", {"decisions": []})  # omitted decisions count as new
    result = consolidate(res, timezone="Europe/Paris")
    flight, wedding, japan = (find(result.context["stored_memories"], w) for w in ("flying", "cousin", "Japan"))
    # timerules: "next Friday" is Friday of next week (Monday-Sunday weeks), like 下周五
    assert flight.event_time.start == datetime(2023, 5, 19, tzinfo=paris)
    assert flight.event_time.end == datetime(2023, 5, 20, tzinfo=paris)
    assert flight.event_time.granularity is Granularity.DAY
    assert flight.content == "Tom is flying to Paris on 2023-05-19 (Friday)"
    assert flight.metadata["time_phrase"] == "next Friday" and flight.created_at == said
    assert wedding.event_time.start == datetime(2023, 7, 1, tzinfo=paris)  # the model's ISO date, as a fallback
    assert japan.event_time is None and japan.content == 'Tom will visit Japan (said on 2023-05-10: "someday")'
    hotel = find(result.context["stored_memories"], "hotel")
    assert hotel.event_time is None and hotel.content == "Tom books a hotel in Paris"
    assert pending(res.store) == []


def test_invalid_answers_fail_the_step_and_leave_the_batch_pending(
    tmp_path: Path, model_server: Any, make_resources: Any
):
    res = make_resources(tmp_path, model_server, embedder="server")
    res.store.add_messages([msg("I have two cats, Miso and Tofu.", datetime(2023, 3, 1, tzinfo=UTC))])
    model_server.script("filter_informative", scorer({"cats": 3}))
    model_server.script("extract_observations", Fault.invalid_json(), Fault.invalid_json())
    model_server.script("extract_timed_observations", NO_EVENTS)
    with pytest.raises(OperationRunError) as info:
        consolidate(res)
    err = info.value
    assert (err.operation, err.step, err.worker) == ("consolidate_memory", 4, "extract_observations")
    assert "extract_observations" in str(err) and "ModelOutputError" in str(err)
    assert chat_tags(model_server).count("extract_observations") == 2  # the answer and one repair attempt
    assert len(pending(res.store)) == 1 and res.store.list_memories(USER, ALL) == []

    model_server.script("filter_informative", scorer({"cats": 3}))
    model_server.script("extract_observations", observations(("Tom has two cats, Miso and Tofu", "cats")))
    model_server.script("extract_timed_observations", NO_EVENTS)
    result = consolidate(res)
    assert [m.content for m in res.store.list_memories(USER)] == ["Tom has two cats, Miso and Tofu"]
    assert pending(res.store) == [] and len(result["consolidated_ids"]) == 1


def test_rate_limited_filter_is_retried(tmp_path: Path, model_server: Any, make_resources: Any):
    res = make_resources(tmp_path, model_server, embedder="server")
    res.store.add_messages([msg("I'm allergic to peanuts.", datetime(2023, 3, 1, tzinfo=UTC))])
    model_server.script("filter_informative", Fault.status(429), scorer({"peanuts": 3}))
    model_server.script("extract_observations", observations(("Tom is allergic to peanuts", "peanuts")))
    model_server.script("extract_timed_observations", NO_EVENTS)
    result = consolidate(res)
    assert chat_tags(model_server).count("filter_informative") == 2  # the 429 and the retry
    step = next(s for s in result.report.steps if s.worker == "filter_informative")
    assert step.llm_calls == 1 and step.prompt_tokens > 0  # the meter counts answered calls
    assert step.llm_retries == 1  # and, apart, the attempt that was retried
    assert result.report.llm_calls == 3 and result.report.llm_retries == 1
    assert pending(res.store) == [] and [m.content for m in res.store.list_memories(USER)] == [
        "Tom is allergic to peanuts"
    ]


def _script_batch(server: Any, sister: str) -> None:
    server.script("filter_informative", scorer({"sister": 3, "vegetarian": 2}))
    server.script("extract_observations", observations((sister, "sister"), ("Tom is vegetarian", "vegetarian")))
    server.script("extract_timed_observations", NO_EVENTS)


def test_memories_and_marks_commit_together(tmp_path: Path, model_server: Any, make_resources: Any):
    res = make_resources(tmp_path, model_server)
    res.store.add_messages(
        [
            msg("My sister Anna lives in Lisbon.", datetime(2023, 4, 2, 10, tzinfo=UTC)),
            msg("Also, I've been vegetarian for years.", datetime(2023, 4, 2, 10, 5, tzinfo=UTC)),
        ]
    )
    [path] = [p for p in builtin_operation_files() if p.stem == "consolidate_memory"]
    text = "".join(line for line in path.read_text().splitlines(True) if "mark_messages_consolidated" not in line)
    text = text.replace("[consolidated_ids, more_pending, hot_segments]", "[more_pending]")
    spec = parse_operation(text, "consolidate_without_the_mark_step.yaml")  # a crash right after store_memories
    _script_batch(model_server, "Tom's sister Anna lives in Lisbon")
    model_server.script(
        "resolve_contradictions", {"decisions": [{"new": 1, "action": "new"}, {"new": 2, "action": "new"}]}
    )
    consolidate(res, spec=spec)
    assert len(res.store.list_memories(USER, ALL)) == 2 and pending(res.store) == []  # one commit: both or none


def test_rerun_after_a_crash_before_marking_duplicates_nothing(tmp_path: Path, model_server: Any, make_resources: Any):
    clock = Clock(datetime(2023, 4, 2, 12, tzinfo=UTC))
    res = make_resources(tmp_path, model_server, clock=clock)
    res.store.add_messages(
        [
            msg("My sister Anna lives in Lisbon.", datetime(2023, 4, 2, 10, tzinfo=UTC)),
            msg("Also, I've been vegetarian for years.", datetime(2023, 4, 2, 10, 5, tzinfo=UTC)),
        ]
    )
    [path] = [p for p in builtin_operation_files() if p.stem == "consolidate_memory"]
    # a pipeline that writes memories and marks messages in two commits (the built-in one uses one, but a
    # custom operation or a store without transactions may not), crashed between them
    text = "".join(line for line in path.read_text().splitlines(True) if "mark_messages_consolidated" not in line)
    text = text.replace("[consolidated_ids, more_pending, hot_segments]", "[more_pending]")
    text = text.replace(", consolidates: messages", "")
    crashed = parse_operation(text, "consolidate_without_marking.yaml")
    _script_batch(model_server, "Tom's sister Anna lives in Lisbon")
    model_server.script(
        "resolve_contradictions", {"decisions": [{"new": 1, "action": "new"}, {"new": 2, "action": "new"}]}
    )
    consolidate(res, spec=crashed)
    first = {m.id: m.content for m in res.store.list_memories(USER, ALL)}
    assert len(first) == 2 and len(pending(res.store)) == 2  # written, but the crash came before marking

    clock.now = datetime(2023, 4, 2, 12, 30, tzinfo=UTC)
    # the re-run's model words one observation differently (a new id); the other comes back identical
    _script_batch(model_server, "Tom's sister Anna lives in Lisbon, Portugal")
    prompts: list[str] = []

    def resolve(body: dict[str, Any]) -> dict[str, Any]:
        prompts.append(prompt(body))
        again, stored = ref_of(body, "Lisbon, Portugal", "N"), ref_of(body, "Anna lives in Lisbon", "E")
        return {"decisions": [{"new": int(again[1:]), "action": "repeat", "targets": [stored]}]}

    model_server.script("resolve_contradictions", resolve)
    result = consolidate(res)
    assert len(prompts) == 1 and "Tom is vegetarian" not in prompts[0].split("New observations:")[1]
    after = {m.id: m.content for m in res.store.list_memories(USER, ALL)}
    assert after == first and result.context["memory_updates"] == []
    assert all([e.kind for e in res.store.history(USER, i)] == [EventKind.ADD] for i in after)
    messages = res.store.list_messages(USER)
    assert pending(res.store) == [] and {m.consolidated_at for m in messages} == {clock.now}
    assert sorted(result["consolidated_ids"]) == sorted(m.id for m in messages)


def test_without_an_llm_messages_are_embedded_and_stay_pending(tmp_path: Path, make_resources: Any):
    res = make_resources(tmp_path, llm=False)
    res.store.add_messages([msg("I moved to Berlin in March.", datetime(2023, 4, 1, tzinfo=UTC))])
    result = consolidate(res)
    [message] = res.store.list_messages(USER)
    assert result.context["embedded_messages"] == [message.id] and res.store.messages_without_embedding(USER) == []
    assert (
        result.report.degraded and NO_LLM_NOTICE in result.report.notices and DEGRADED_NOTICE in result.report.notices
    )
    skipped = {s.worker for s in result.report.steps if s.skipped}
    assert skipped == {
        "filter_informative",
        "extract_observations",
        "extract_timed_observations",
        "extract_assistant_knowledge",
        "resolve_contradictions",
    }
    assert result["consolidated_ids"] == [] and len(pending(res.store)) == 1
    assert res.store.list_memories(USER, ALL) == []
    query = SearchQuery(embedding=res.embedder.embed(["where does Tom live now?"])[0].tolist())
    hits = res.store.search_messages(USER, query)
    assert [h.message.id for h in hits] == [message.id] and hits[0].vector_rank == 1


def test_run_report_counts_calls_and_tokens_per_llm_step(tmp_path: Path, model_server: Any, make_resources: Any):
    res = make_resources(tmp_path, model_server, embedder="server")
    res.store.add_messages(
        [
            msg("I play the cello in a quartet.", datetime(2023, 2, 1, 18, tzinfo=UTC)),
            msg("Yesterday we played at the town hall.", datetime(2023, 2, 1, 18, 5, tzinfo=UTC)),
        ]
    )
    model_server.script("filter_informative", scorer({"cello": 3, "town hall": 2}))
    model_server.script("extract_observations", observations(("Tom plays the cello in a quartet", "cello")))
    model_server.script(
        "extract_timed_observations",
        lambda body: {
            "observations": [
                {"content": "Tom's quartet played at the town hall", "time_phrase": "Yesterday",
                 "source": index_of(body, "town hall")}
            ]
        },
    )  # fmt: skip
    model_server.script(
        "resolve_contradictions", {"decisions": [{"new": 1, "action": "new"}, {"new": 2, "action": "new"}]}
    )
    report = consolidate(res).report
    llm_steps = {"filter_informative", "extract_observations", "extract_timed_observations", "resolve_contradictions"}
    for step in report.steps:
        if step.worker in llm_steps:
            assert step.llm_calls == 1 and step.prompt_tokens > 0 and step.completion_tokens > 0, step
        else:
            assert step.llm_calls == 0 and step.prompt_tokens == 0, step
    assert {s.worker for s in report.steps if s.llm_calls} == llm_steps
    assert report.llm_calls == 4 and report.prompt_tokens == sum(s.prompt_tokens for s in report.steps)
    written = {s.worker: s.written for s in report.steps}
    assert written["store_memories"] == {"stored_memories": 2} and written["mark_messages_consolidated"] == {
        "consolidated_ids": 2
    }
    timed = next(m for m in res.store.list_memories(USER) if m.event_time is not None)
    assert timed.event_time.start == datetime(2023, 1, 31, tzinfo=UTC)
    assert timed.content == "Tom's quartet played at the town hall on 2023-01-31 (Tuesday)"


@pytest.mark.unit
@pytest.mark.parametrize(
    "worker", ["filter_informative", "extract_observations", "extract_timed_observations", "resolve_contradictions"]
)
def test_prompts_render_in_both_languages(worker: str):
    values = {
        "conversation": "[1] 2023-05-10 09:00 Wed | user(Tom): hi",
        "user_indices": "1",
        "source_indices": "1",
        "user_name": "Tom",
        "max_observations": 5,
        "existing": "(none)",
        "new": "[N1] x",
    }
    prompts = load_prompts("memscope.workers", worker)
    assert set(prompts) == {"en", "zh"}
    for language in ("en", "zh"):
        for part in ("system", "user"):
            text = prompts[language][part].format(**values)  # a stray brace raises here
            assert not re.search(r"\{[a-z_]+\}", text), text


# -- resolve_contradictions' bookkeeping, without a model -----------------------------------------


def _node(content: str, at: datetime, source: str) -> MemoryNode:
    return MemoryNode(user_id=USER, content=content, created_at=at, source_message_ids=[source], importance=0.5)


def _apply(decisions: list[dict[str, Any]], new: list[MemoryNode], existing: list[MemoryNode]) -> dict[str, MemoryNode]:
    now = datetime(2023, 9, 1, tzinfo=UTC)
    worker = ResolveContradictions(ResolveContradictions.Params(), Resources(store=None, clock=lambda: now))  # type: ignore[arg-type]
    out = worker.apply(ResolveAnswer.model_validate({"decisions": decisions}), new, existing)
    return {n.content: n for n in out}


T1, T2 = datetime(2023, 8, 1, tzinfo=UTC), datetime(2023, 8, 2, tzinfo=UTC)


@pytest.mark.unit
def test_between_new_observations_the_later_message_wins():
    new = [_node("Tom lives in Paris", T1, "m1"), _node("Tom lives in Berlin", T2, "m2")]
    out = _apply([{"new": 1, "action": "contradicts", "targets": ["N2"]}], new, [])
    assert out["Tom lives in Paris"].status is MemoryStatus.EXPIRED
    assert out["Tom lives in Paris"].superseded_by == new[1].id
    assert out["Tom lives in Berlin"].status is MemoryStatus.ACTIVE


@pytest.mark.unit
def test_repeats_merge_sources_along_a_chain_and_the_latest_contradiction_wins():
    old_job, old_city = _node("Tom works at Meta", T1, "m0"), _node("Tom lives in Rome", T1, "m0")
    new = [
        _node("Tom is employed by Meta", T1, "m1"),
        _node("Meta employs Tom", T2, "m2"),
        _node("Tom moved to Milan", T1, "m1"),
        _node("Tom lives in Turin", T2, "m2"),
    ]
    decisions = [
        {"new": 2, "action": "repeat_of", "targets": ["N1"]},
        {"new": 1, "action": "repeat", "targets": ["E1"]},
        {"new": 3, "action": "contradicts", "targets": ["E2"]},
        {"new": 4, "action": "contradiction", "targets": ["[E2]", "E9", "N4"]},  # E9 and itself: ignored
    ]
    out = _apply(decisions, new, [old_job, old_city])
    assert set(out) == {"Tom works at Meta", "Tom lives in Rome", "Tom moved to Milan", "Tom lives in Turin"}
    assert out["Tom works at Meta"].source_message_ids == ["m0", "m1", "m2"]
    assert out["Tom lives in Rome"].superseded_by == new[3].id
    assert out["Tom lives in Turin"].status is MemoryStatus.ACTIVE


@pytest.mark.unit
def test_unknown_targets_and_omitted_decisions_keep_the_observation():
    new = [_node("Tom plays chess", T1, "m1"), _node("Tom plays tennis", T1, "m1")]
    out = _apply([{"new": 1, "action": "repeat", "targets": ["E3"]}, {"new": 7, "action": "new"}], new, [])
    assert set(out) == {"Tom plays chess", "Tom plays tennis"}
    assert all(n.status is MemoryStatus.ACTIVE for n in out.values())
