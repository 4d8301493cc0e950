"""The in-process job executor (embedded mode): per-user serialisation, restart via the sweep, close."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memscope.api import MemoryScope
from memscope.errors import JobError, OperationRunError
from memscope.jobs import local
from memscope.jobs.base import JobState
from tests.jobs import probe_workers
from tests.jobs.conftest import consolidation_problems, wait_for
from tests.jobs.probe_workers import GATE, PROBE_OPERATION, events_of
from tests.support.scripted_server import BUILTIN_MODES, ScriptedServer

pytestmark = pytest.mark.integration
PROBE = "jobs_probe_op"


@pytest.fixture(autouse=True)
def _probe_reset() -> Iterator[None]:
    """A closed gate and no events; the gate is opened at teardown so no job thread stays blocked."""
    GATE.clear()
    with probe_workers.EVENTS_LOCK:
        probe_workers.EVENTS.clear()
    yield
    GATE.set()


def make_config(tmp_path: Path, server: ScriptedServer, *, threads: int = 4, llm: bool = True) -> dict[str, Any]:
    """Embedded mode on a SQLite file in tmp_path, models at the in-process scripted server, the probe op."""
    ops = tmp_path / "ops"
    ops.mkdir(exist_ok=True)
    (ops / "jobs_probe_op.yaml").write_text(PROBE_OPERATION, encoding="utf-8")
    server.default(None, BUILTIN_MODES["consolidation"])
    models = {"base_url": server.openai_base_url, "api_key": "dummy-key"}
    return {
        "store": {"backend": "sqlite", "path": str(tmp_path / "memscope.db")},
        "jobs": {"backend": "local", "local": {"threads": threads}, "sweep_interval_s": 3600,
                 "reflect_min_observations": 1000},
        "llm": {"backend": "openai", "model": "gpt-4o-mini", **models} if llm else {"backend": "none"},
        "embedding": {"backend": "openai", "model": "text-embedding-3-small", "dim": 64, **models},
        "operations": {"paths": [str(ops)]},
        "workers": {"modules": ["tests.jobs.probe_workers"]},
    }


def test_one_job_per_user_at_a_time(tmp_path: Path, model_server: ScriptedServer) -> None:
    with MemoryScope(make_config(tmp_path, model_server), background=False) as memory:
        jobs = memory.jobs
        first = jobs.submit(PROBE, "u1")
        wait_for(lambda: events_of("u1") == ["start"], 10, "the first job to start")
        second = jobs.submit(PROBE, "u1")
        assert second != first
        assert jobs.submit(PROBE, "u1") == second  # still queued: reused, not queued twice
        other_agent = jobs.submit(PROBE, "u1", agent_id="assistant-2")  # same user: waits as well
        other_user = jobs.submit(PROBE, "u2")
        wait_for(lambda: events_of("u2") == ["start"], 10, "another user's job to run meanwhile")
        assert events_of("u1") == ["start"]
        GATE.set()
        for job_id in (first, second, other_agent, other_user):
            assert jobs.wait(job_id, timeout=20).state is JobState.SUCCEEDED
        assert events_of("u1") == ["start", "end"] * 3  # never two at once
        assert [r.id for r in jobs.status("u2")] == [other_user]


def test_a_restart_resumes_pending_messages_through_the_sweep(tmp_path: Path, model_server: ScriptedServer) -> None:
    with MemoryScope(make_config(tmp_path, model_server, llm=False)) as before:
        before.add_messages("ann", [f"I grow tomato variety {i}" for i in range(5)])
        assert len(before.list_messages("ann", pending=True)) == 5  # no LLM: stored, kept pending
    with MemoryScope(make_config(tmp_path, model_server)) as after:  # the first sweep runs at start
        wait_for(lambda: not after.list_messages("ann", pending=True), 30, "the sweep to consolidate them")
        assert consolidation_problems(after.runtime.store, "ann", 5) == []


def test_close_leaves_queued_work_pending(tmp_path: Path, model_server: ScriptedServer) -> None:
    memory = MemoryScope(make_config(tmp_path, model_server, threads=1), background=False)
    try:
        running = memory.jobs.submit(PROBE, "u1")
        wait_for(lambda: events_of("u1") == ["start"], 10, "the probe to hold the only thread")
        memory.add_messages("bob", ["I am a carpenter", "I live in Oslo"])  # queued behind the probe
        queued = memory.jobs.status("bob")[0]
        assert queued.state is JobState.QUEUED
        memory.jobs.close(wait=False)
        GATE.set()
        assert memory.jobs.wait(running, timeout=20).state is JobState.SUCCEEDED  # running work finishes
        dropped = memory.jobs.wait(queued.id, timeout=5)
        assert dropped.state is JobState.FAILED and "executor closed" in (dropped.error or "")
        assert len(memory.list_messages("bob", pending=True)) == 2
    finally:
        GATE.set()
        memory.close()
    with MemoryScope(make_config(tmp_path, model_server)) as reopened:
        wait_for(lambda: not reopened.list_messages("bob", pending=True), 30, "the next start to pick them up")


def test_wait_with_a_timeout_raises_while_the_job_is_unfinished(tmp_path: Path, model_server: ScriptedServer) -> None:
    with MemoryScope(make_config(tmp_path, model_server), background=False) as memory:
        memory.jobs.submit(PROBE, "u1")  # holds u1's lock at the gate
        wait_for(lambda: events_of("u1") == ["start"], 10, "the probe to hold the user's lock")
        with pytest.raises(JobError, match=r"consolidate_memory for user 'u1' is still queued after 0.3s"):
            memory.consolidate("u1", wait=True, timeout=0.3)
        GATE.set()


def test_records_futures_and_user_locks_stay_bounded(
    tmp_path: Path, model_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "KEEP_RECORDS", 5)
    GATE.set()
    with MemoryScope(make_config(tmp_path, model_server, llm=False), background=False) as memory:
        jobs = memory.jobs
        assert isinstance(jobs, local.LocalDispatcher)
        ids = [jobs.submit(PROBE, f"user{n}") for n in range(30)]
        for job_id in ids[-5:]:
            assert jobs.wait(job_id, timeout=20).state is JobState.SUCCEEDED
        wait_for(lambda: len(events_of("user0")) == 2, 10, "the first job to end")
        assert len(jobs._futures) <= 5 and len(jobs._records) <= 5 and len(jobs._reports) <= 5
        assert [r.operation for r in jobs.reports(ids[-1])] == [PROBE]  # each step's report, for the demo
        assert jobs.reports(ids[0]) == []  # evicted with its record
        wait_for(lambda: not jobs._user_locks, 10, "every user's lock entry to go")
        with pytest.raises(JobError, match=r"unknown job id .* \(only the last 5 jobs are tracked\)"):
            jobs.wait(ids[0])


INLINE_PROBE = """\
name: inline_probe_op
description: An inline operation whose only step hangs at the probe gate.
mode: inline
inputs: [user_id]
steps:
  - jobs_probe: {hold_s: 60}
"""


def test_a_hung_step_of_an_inline_operation_times_out(tmp_path: Path, model_server: ScriptedServer) -> None:
    config = make_config(tmp_path, model_server, llm=False)
    (tmp_path / "ops" / "inline_probe_op.yaml").write_text(INLINE_PROBE, encoding="utf-8")
    config["operations"]["inline_step_timeout_s"] = 0.5
    with MemoryScope(config, background=False) as memory:
        started = time.monotonic()
        with pytest.raises(OperationRunError, match=r"step 1 \(worker 'jobs_probe'\).*longer than 0.5s"):
            memory.runtime.run("inline_probe_op", user_id="u1")
        assert time.monotonic() - started < 30  # the hold is 60 s: the call did not wait for it
        assert events_of("u1") == ["start"]
    assert time.monotonic() - started < 30  # nor did close()
    GATE.set()
    wait_for(lambda: events_of("u1") == ["start", "end"], 10, "the abandoned step to end")
