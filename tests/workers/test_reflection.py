"""reflect_and_reconsolidate end to end: real SQLite store, MiniLM embeddings, the scripted model server."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from memscope.engine import OperationCatalog, OperationRunner, Resources, RunResult
from memscope.errors import OperationRunError
from memscope.models import EventKind, MemoryNode, MemoryStatus, MemoryType
from memscope.stores.base import MemoryFilter
from memscope.stores.sqlite import SqliteStore
from memscope.workers.long_range_contradictions import apply_findings
from tests.support.scripted_server import Fault, ScriptedServer, chat_messages

pytestmark = pytest.mark.integration

USER = "tom"
NOW = datetime(2024, 9, 30, 12, 0, tzinfo=UTC)
CAREER = [
    "Tom works as a data analyst at Acme.",
    "Tom builds weekly sales dashboards in SQL and Tableau.",
    "Tom started learning Python for data analysis.",
    "Tom was promoted to senior data analyst.",
    "Tom takes an online machine learning course in the evenings.",
    "Tom wants to become a machine learning engineer.",
    "Tom deployed his first ML model to production at work.",
    "Tom mentors two junior analysts on his team.",
]
LATER_CAREER = [
    "Tom moved to the ML platform team at Acme.",
    "Tom now trains recommendation models in PyTorch.",
    "Tom presented his churn model at the company all-hands.",
    "Tom is studying for a cloud ML certification.",
    "Tom enjoys rock climbing on weekends.",
]


# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture
def resources(tmp_path, model_server: ScriptedServer, make_resources) -> Resources:
    model_server.default("update_profile", {"entries": []})  # the profile is tested in test_profile_and_tiers.py
    return make_resources(tmp_path, model_server, NOW)


@pytest.fixture
def store(resources: Resources) -> SqliteStore:
    return resources.store  # type: ignore[return-value]


def reflect(resources: Resources) -> RunResult:
    spec = OperationCatalog().get("reflect_and_reconsolidate")
    return OperationRunner(resources).run(spec, {"user_id": USER})


def seed(
    resources: Resources,
    texts: list[str],
    start: datetime,
    *,
    reflected: bool = False,
    sources: list[list[str]] | None = None,
) -> list[MemoryNode]:
    """Write observations a day apart from `start`, with real embeddings, as consolidation would."""
    vectors = resources.embedder.embed(texts)  # type: ignore[union-attr]
    nodes = [
        MemoryNode(
            user_id=USER,
            content=text,
            embedding=[float(x) for x in vector],
            created_at=start + timedelta(days=n),
            updated_at=start + timedelta(days=n),
            source_message_ids=sources[n] if sources else [f"msg-{start:%Y%m%d}-{n}"],
            reflected_at=datetime(2023, 12, 31, tzinfo=UTC) if reflected else None,
        )
        for n, (text, vector) in enumerate(zip(texts, vectors, strict=True))
    ]
    resources.store.write_memories(nodes, operation="test-seed")
    return nodes


def user_text(body: dict[str, Any]) -> str:
    return next(m["content"] for m in chat_messages(body) if m["role"] == "user")


def numbered_lines(text: str) -> dict[str, str]:
    """Prompt lines `[label] date: text` -> {label: line}."""
    return {m.group(1): m.group(0) for m in re.finditer(r"^\[(\w+)\] .*$", text, re.MULTILINE)}


def cite_all(insight: str, extra: tuple[int, ...] = ()):
    """An update_insights answer citing every observation shown (plus `extra` numbers)."""

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        shown = [int(label) for label in numbered_lines(user_text(body))]
        return {"insight": insight, "evidence": [*shown, *extra]}

    return answer


def observations(store: SqliteStore, *statuses: MemoryStatus) -> list[MemoryNode]:
    wanted = MemoryFilter(memory_types=(MemoryType.OBSERVATION,), statuses=statuses or tuple(MemoryStatus))
    return store.list_memories(USER, wanted)


def insights(store: SqliteStore) -> list[MemoryNode]:
    return store.list_memories(USER, MemoryFilter(memory_types=(MemoryType.INSIGHT,)))


def chat_calls(server: ScriptedServer) -> list[str]:
    return [r.tag for r in server.requests_to("/chat/completions")]


# ---------------------------------------------------------------------------------------------- tests


def test_career_observations_become_one_insight_citing_them(resources, model_server, store):
    seeded = seed(resources, CAREER, datetime(2024, 1, 10, 9, tzinfo=UTC))
    model_server.script("choose_reflection_subjects", {"subjects": ["  Career. "]})
    text = "Tom's career: senior data analyst at Acme, moving towards machine learning engineering."
    model_server.script("update_insights", cite_all(text, extra=(0, 99)))  # unknown numbers are ignored
    model_server.default("long_range_contradictions", {"findings": []})

    result = reflect(resources)

    assert result.context["subjects"] == ["career"]  # normalised key
    [insight] = insights(store)
    assert (insight.key, insight.content, insight.memory_type) == ("career", text, MemoryType.INSIGHT)
    assert sorted(insight.source_memory_ids) == sorted(n.id for n in seeded)
    assert insight.embedding is not None  # embedded by store_memories
    assert [e.kind for e in store.history(USER, insight.id)] == [EventKind.ADD]
    assert all(o.reflected_at == NOW for o in observations(store))
    assert all(o.status is MemoryStatus.ACTIVE for o in observations(store))
    prompt = user_text(model_server.requests_to("/chat/completions")[1].json)
    assert all(c in prompt for c in CAREER)  # the hybrid search found every career observation
    steps = {s.worker: s for s in result.report.steps}
    assert steps["choose_reflection_subjects"].llm_calls == 1
    assert steps["update_insights"].llm_calls == 1
    assert result.report.degraded is False


def test_second_reflection_updates_the_same_insight(resources, model_server, store):
    first = seed(resources, CAREER, datetime(2024, 1, 10, 9, tzinfo=UTC))
    model_server.script("choose_reflection_subjects", {"subjects": ["career"]})
    model_server.script("update_insights", cite_all("Tom's career: data analyst at Acme."))
    model_server.default("long_range_contradictions", {"findings": []})
    reflect(resources)
    [before] = insights(store)

    later = seed(resources, LATER_CAREER, datetime(2024, 9, 1, 9, tzinfo=UTC))
    model_server.script("choose_reflection_subjects", {"subjects": ["Career"]})
    text = "Tom's career: moved from data analysis to ML engineering on Acme's ML platform team in 2024."

    def update(body: dict[str, Any]) -> dict[str, Any]:
        lines = numbered_lines(user_text(body))
        assert "Tom's career: data analyst at Acme." in user_text(body)  # the current insight is shown
        return {"insight": text, "evidence": [int(k) for k, line in lines.items() if "ML" in line]}

    model_server.script("update_insights", update)
    reflect(resources)

    [after] = insights(store)
    assert after.id == before.id and after.key == "career" and after.content == text
    ml_ids = {n.id for n in [*first, *later] if "ML" in n.content}
    assert set(after.source_memory_ids) == set(before.source_memory_ids) | ml_ids
    assert after.source_memory_ids[: len(before.source_memory_ids)] == before.source_memory_ids
    assert after.embedding != before.embedding  # re-embedded for the new text
    assert [e.kind for e in store.history(USER, after.id)] == [EventKind.ADD, EventKind.UPDATE]
    assert all(o.reflected_at is not None for o in observations(store))
    assert model_server.pending() == 0


def test_long_range_contradiction_and_repeat(resources, model_server, store):
    boston, rex = seed(
        resources,
        ["Tom lives in Boston.", "Tom has a dog named Rex."],
        datetime(2023, 1, 5, 9, tzinfo=UTC),
        reflected=True,
        sources=[["m-boston"], ["m-rex-old"]],
    )
    new = seed(
        resources,
        [
            "Tom moved to Seattle in March 2024.",
            "Tom owns a dog called Rex.",
            "Tom enjoys rock climbing on weekends.",
            "Tom is learning Spanish.",
            "Tom's sister Anna lives in Denver.",
        ],
        datetime(2024, 3, 20, 9, tzinfo=UTC),
        sources=[["m-seattle"], ["m-rex-new"], ["m-climb"], ["m-spanish"], ["m-anna"]],
    )
    seattle, rex_again = new[0], new[1]
    problems: list[str] = []

    def judge(body: dict[str, Any]) -> dict[str, Any]:
        text = user_text(body)
        lines = numbered_lines(text)
        findings = []
        for block in re.finditer(r"^\[N(\d+)\] (\S+) .*\n\s+compare with: (.*)$", text, re.MULTILINE):
            n, day, labels = int(block.group(1)), block.group(2), block.group(3).split(", ")
            for label in labels:
                older = lines[label]
                if older.split()[1] >= day:
                    problems.append(f"{label} is not older than N{n}: {older}")
                new_line = lines[f"N{n}"]
                if "Seattle" in new_line and "Boston" in older:
                    findings.append({"new": n, "older": label, "relation": "contradiction"})
                if "owns a dog called Rex" in new_line and "dog named Rex" in older:
                    findings.append({"new": f"N{n}", "older": int(label[1:]), "relation": "repeat"})
                if "Spanish" in new_line:
                    findings.append({"new": n, "older": int(label[1:]), "relation": "unrelated"})
        return {"findings": findings}

    model_server.script("choose_reflection_subjects", {"subjects": []})
    model_server.script("long_range_contradictions", judge)

    result = reflect(resources)

    assert problems == []
    calls = [t for t in chat_calls(model_server) if t != "update_profile"]
    assert calls == ["choose_reflection_subjects", "long_range_contradictions"]
    got = {n.id: n for n in observations(store)}
    assert got[boston.id].status is MemoryStatus.EXPIRED and got[boston.id].superseded_by == seattle.id
    assert got[seattle.id].status is MemoryStatus.ACTIVE
    assert [e.kind for e in store.history(USER, boston.id)] == [EventKind.ADD, EventKind.EXPIRE]
    # the repeat: the older memory stays, with both sources; the newer is expired, not re-activated
    assert got[rex.id].status is MemoryStatus.ACTIVE
    assert got[rex.id].source_message_ids == ["m-rex-old", "m-rex-new"]
    assert got[rex.id].embedding == pytest.approx(rex.embedding)
    assert got[rex_again.id].status is MemoryStatus.EXPIRED and got[rex_again.id].superseded_by == rex.id
    assert got[rex_again.id].reflected_at == NOW
    assert all(got[n.id].reflected_at == NOW for n in new)
    assert sum(1 for n in got.values() if n.status is MemoryStatus.ACTIVE) == 5
    assert len(result.context["reconsolidation_updates"]) == 3
    assert insights(store) == []


def test_too_few_observations_change_nothing(resources, model_server, store):
    seeded = seed(resources, CAREER[:4], datetime(2024, 1, 10, 9, tzinfo=UTC))

    result = reflect(resources)

    assert chat_calls(model_server) == []
    assert result.context["unreflected"] == [] and result["stored_memories"] == []
    assert all(o.reflected_at is None for o in observations(store))
    assert all([e.kind for e in store.history(USER, n.id)] == [EventKind.ADD] for n in seeded)
    assert insights(store) == []


def test_without_a_model_nothing_is_marked_reflected(tmp_path, make_resources):
    resources = make_resources(tmp_path, None, NOW)
    store = resources.store
    seed(resources, CAREER, datetime(2024, 1, 10, 9, tzinfo=UTC))

    result = reflect(resources)

    assert result.report.degraded is True
    assert any("no LLM configured" in n for n in result.report.notices)
    assert result.context["reflected_updates"] == []
    assert all(o.reflected_at is None for o in observations(store))
    assert insights(store) == []


def test_invalid_model_output_fails_the_run_and_writes_nothing(resources, model_server, store):
    seed(resources, CAREER[:6], datetime(2024, 1, 10, 9, tzinfo=UTC))
    model_server.script("choose_reflection_subjects", {"subjects": ["career"]})
    model_server.script("update_insights", cite_all("Tom's career: data analyst."))
    model_server.script("long_range_contradictions", Fault.invalid_json(), json.dumps({"findings": "none"}))

    with pytest.raises(OperationRunError) as info:
        reflect(resources)

    assert info.value.worker == "long_range_contradictions"
    assert "ModelOutputError" in str(info.value)
    assert all(o.reflected_at is None for o in observations(store))
    assert all(o.status is MemoryStatus.ACTIVE for o in observations(store))
    assert insights(store) == []


def test_chinese_prompts_and_keys(tmp_path, model_server, make_resources):
    resources = make_resources(tmp_path, model_server, NOW, language="zh")
    model_server.default("update_profile", {"entries": []})
    texts = [
        "小王每周六去攀岩。",
        "小王买了新的攀岩鞋。",
        "小王报名了攀岩比赛。",
        "小王在室内攀岩馆办了年卡。",
        "小王喜欢抱石。",
    ]
    seeded = seed(resources, texts, datetime(2024, 5, 1, 9, tzinfo=UTC))
    model_server.script("choose_reflection_subjects", {"subjects": ["爱好\uff1a攀岩"]})
    model_server.script("update_insights", cite_all("小王的爱好: 热爱攀岩, 每周六去攀岩馆。"))
    model_server.default("long_range_contradictions", {"findings": []})

    result = reflect(resources)

    assert result.context["subjects"] == ["爱好: 攀岩"]
    systems = [chat_messages(r.json)[0]["content"] for r in model_server.requests_to("/chat/completions")]
    assert len(systems) == 4 and all("只用 JSON 回答" in s for s in systems)
    [insight] = insights(resources.store)
    assert insight.key == "爱好: 攀岩" and sorted(insight.source_memory_ids) == sorted(n.id for n in seeded)


@pytest.mark.unit
def test_findings_chain_to_an_active_winner_and_expire_each_node_once():
    day = datetime(2024, 1, 1, tzinfo=UTC)
    a, b, c = (MemoryNode(id=i, user_id=USER, content=f"fact {i}", created_at=day) for i in "abc")
    state = {n.id: n for n in (a, b, c)}
    # b repeats a (b expires into a); c contradicts a (a expires into c); c contradicts b again (ignored)
    changed = apply_findings(
        state, [("b", "a", "repeat"), ("c", "a", "contradiction"), ("c", "b", "contradiction")], day
    )
    assert {n.id: (n.status, n.superseded_by) for n in changed} == {
        "b": (MemoryStatus.EXPIRED, "a"),
        "a": (MemoryStatus.EXPIRED, "c"),
    }
    # a repeat of a node already expired in this run merges into the node that superseded it
    state = {n.id: n for n in (a, b, c)}
    changed = apply_findings(state, [("c", "a", "contradiction"), ("b", "a", "repeat")], day)
    assert {n.id: n.superseded_by for n in changed if n.status is MemoryStatus.EXPIRED} == {"a": "c", "b": "c"}
