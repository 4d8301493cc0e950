"""The demo's own questions come out right, before and after consolidation (issue 16, goal 2).

Before: no model, raw turns only, the local all-MiniLM-L6-v2. After: the same conversation consolidated
by the real OpenAI SDK against the scripted server, whose contradiction step says the Apple observation
makes the Meta one out of date, as a model would.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from memscope.demo import run_demo
from tests.support.scripted_server import BUILTIN_MODES, ScriptedServer

pytestmark = pytest.mark.integration

FUN, WORK = "What do I do for fun?", "Where do I work now?"
_REF = re.compile(r"^\[(?P<ref>[EN]\d+)\][^|]*\| (?P<text>.*)$", re.MULTILINE)


def _index(answers: list[str], needle: str) -> int | None:
    return next((n for n, text in enumerate(answers) if needle in text), None)


def assert_demo_answers(answers: dict[str, list[str]]) -> None:
    """Rock climbing first for fun; Apple first for work, and any Meta item below it."""
    assert _index(answers[FUN], "rock climbing") == 0, answers[FUN]
    apple, meta = _index(answers[WORK], "Apple"), _index(answers[WORK], "at Meta")
    assert apple == 0, answers[WORK]
    assert meta is None or apple < meta, answers[WORK]


def _config(tmp_path: Path, server: ScriptedServer | None) -> dict[str, Any]:
    cfg: dict[str, Any] = {"store": {"path": str(tmp_path / "demo.db")}, "llm": {"backend": "none"}}
    if server is not None:
        cfg["llm"] = {"backend": "openai", "model": "test-model", "api_key": "test", "base_url": server.openai_base_url}
    return cfg


def test_demo_questions_before_consolidation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from memscope.api import MemoryScope

    calls: list[str] = []
    warm_up, retrieve = MemoryScope.warm_up, MemoryScope.retrieve
    monkeypatch.setattr(MemoryScope, "warm_up", lambda self: calls.append("warm_up") or warm_up(self))
    monkeypatch.setattr(
        MemoryScope, "retrieve", lambda self, *a, **k: calls.append("retrieve") or retrieve(self, *a, **k)
    )
    outcome = run_demo(_config(tmp_path, None), console=Console(file=io.StringIO()))
    assert outcome["skipped"] and outcome["stats"]["pending_messages"] == 9
    assert_demo_answers(outcome["answers"])
    assert calls.index("warm_up") < calls.index("retrieve")  # it prints a warm process's latencies, not loading


def _resolve(body: dict[str, Any]) -> dict[str, Any]:
    """resolve_contradictions as a model would answer it: Apple makes the stored Meta memory out of date."""
    prompt = next(m["content"] for m in body["messages"] if m["role"] == "user")
    lines = {m["ref"]: m["text"] for m in _REF.finditer(prompt)}
    meta = [ref for ref, text in lines.items() if ref.startswith("E") and "Meta in San Francisco" in text]
    decisions = []
    for ref, text in lines.items():
        if ref.startswith("N"):
            moved = "joined Apple" in text and meta
            decisions.append({"new": int(ref[1:]), "action": "contradicts" if moved else "new",
                              "targets": meta if moved else [], "reason": "scripted"})  # fmt: skip
    return {"decisions": decisions}


def test_demo_questions_after_consolidation(tmp_path: Path, model_server: ScriptedServer) -> None:
    model_server.default(None, BUILTIN_MODES["consolidation"])
    model_server.default("resolve_contradictions", _resolve)
    outcome = run_demo(_config(tmp_path, model_server), console=Console(file=io.StringIO()))
    assert not outcome["skipped"] and outcome["stats"]["pending_messages"] == 0
    # one job per session, the one add_messages queued: a second, unfenced run beside it raced it
    assert [r.tag for r in model_server.requests].count("resolve_contradictions") == 3
    assert [r.operation for r in outcome["reports"]].count("consolidate_memory") == 3
    meta = [m for m in outcome["memories"] if "at Meta" in m.content]
    assert meta and all(m.status.value == "expired" and m.superseded_by for m in meta)  # the model did resolve it
    assert_demo_answers(outcome["answers"])
