"""Crash recovery of the distributed mode with real celery workers, Redis and the scripted model
server: a paused worker is fenced out, a killed worker's job is marked lost and its user resumes,
a job that kills its worker stops after `max_attempts`, and a worker refuses another store's jobs."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memscope.api import MemoryScope
from memscope.cli import app as cli_app
from memscope.jobs.base import CONSOLIDATE, JobRecord, JobState
from memscope.jobs.celery_app import SWEEP
from memscope.messages import to_messages
from tests.jobs.conftest import (
    Processes,
    consolidation_problems,
    start_model_server,
    start_worker,
    wait_for,
    write_config,
)
from tests.jobs.probe_workers import CRASH_OPERATION

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def running_on(memory: MemoryScope, user_id: str) -> JobRecord | None:
    """The user's job running now, if any."""
    return next((r for r in memory.jobs.status(user_id) if r.state is JobState.RUNNING), None)


def worker_of(record: JobRecord) -> str:
    """The process name (`w1`, `w2`) a record's worker hostname starts with."""
    return str(record.summary.get("worker", "")).split("@")[0]


@pytest.mark.timeout(240)
def test_a_paused_worker_cannot_write_after_another_took_over(
    tmp_path: Path, procs: Processes, namespace: str
) -> None:
    model = start_model_server(procs, latency=1.0, mode="varied_consolidation")  # each run words memories anew
    config = write_config(tmp_path, namespace, model.url, jobs={"celery": {"lock_ttl_s": 2}})
    start_worker(procs, "w1", config, namespace)
    start_worker(procs, "w2", config, namespace)
    with MemoryScope(config, background=False) as memory:
        memory.add_messages("paula", [f"I keep violin number {i} in the attic" for i in range(8)])
        first = wait_for(lambda: running_on(memory, "paula"), 60, "paula's job to run", procs.logs)
        paused = worker_of(first)
        time.sleep(1.5)  # mid-job: waiting for a model answer
        os.killpg(procs.procs[paused].pid, signal.SIGSTOP)
        try:
            time.sleep(6)  # well past the TTL: the lock and the lease expire
            memory.jobs.app.send_task(SWEEP, queue=namespace)  # the other worker takes the user over
            wait_for(lambda: not memory.list_messages("paula", pending=True), 90,
                     "the other worker to consolidate paula", procs.logs)
        finally:
            os.killpg(procs.procs[paused].pid, signal.SIGCONT)
        assert memory.jobs.wait(first.id, timeout=1).state is JobState.LOST  # the sweep saw its heartbeat stop
        wait_for(lambda: memory.jobs.wait(first.id, timeout=1).state in (JobState.SUCCEEDED, JobState.FAILED), 90,
                 "the resumed job to end", procs.logs)
        assert consolidation_problems(memory.runtime.store, "paula", 8) == []
        assert "LeaseLost" in procs.log(paused, tail=200_000), procs.logs()  # its write was refused


@pytest.mark.timeout(240)
def test_a_killed_workers_job_is_marked_lost_and_its_user_resumes(
    tmp_path: Path, procs: Processes, namespace: str
) -> None:
    model = start_model_server(procs, latency=0.5)
    config = write_config(tmp_path, namespace, model.url, jobs={"celery": {"lock_ttl_s": 2}})
    start_worker(procs, "w1", config, namespace)
    start_worker(procs, "w2", config, namespace)
    with MemoryScope(config, background=False) as memory:
        memory.add_messages("quinn", [f"I sail boat number {i} on the lake" for i in range(6)])
        first = wait_for(lambda: running_on(memory, "quinn"), 60, "quinn's job to run", procs.logs)
        time.sleep(1)
        procs.kill(worker_of(first), signal.SIGKILL)  # the worker and its pool child die mid-job
        time.sleep(5)  # its heartbeat is older than 2 x the TTL now
        memory.jobs.app.send_task(SWEEP, queue=namespace)
        lost = wait_for(lambda: memory.jobs.wait(first.id, timeout=0.5).state is JobState.LOST and
                        memory.jobs.wait(first.id, timeout=0.5), 30, "the job to be marked lost", procs.logs)
        assert "no heartbeat since" in (lost.error or "")
        table = CliRunner().invoke(cli_app, ["jobs", "status", "--user", "quinn"],
                                   env={"MEMSCOPE_CONFIG": str(config)})
        assert table.exit_code == 0 and "lost" in table.stdout.splitlines()[0], table.output
        assert table.stdout.splitlines()[1].split()[5] == "1"  # the lost column counts it
        wait_for(lambda: not memory.list_messages("quinn", pending=True), 90,
                 "the surviving worker to consolidate quinn", procs.logs)
        assert consolidation_problems(memory.runtime.store, "quinn", 6) == []


@pytest.mark.timeout(240)
def test_a_job_that_kills_its_worker_stops_after_max_attempts(
    tmp_path: Path, procs: Processes, namespace: str
) -> None:
    model = start_model_server(procs)
    flag = tmp_path / "crash-while-this-exists"
    flag.touch()
    ops = tmp_path / "ops"
    ops.mkdir()
    (ops / "jobs_crash_op.yaml").write_text(CRASH_OPERATION.replace("FLAG", str(flag)), encoding="utf-8")
    config = write_config(tmp_path, namespace, model.url, operations={"paths": [str(ops)]},
                          workers={"modules": ["tests.jobs.probe_workers"]},
                          jobs={"celery": {"max_attempts": 2}})
    start_worker(procs, "w1", config, namespace)
    with MemoryScope(config, background=False) as memory:
        job_id = memory.jobs.submit("jobs_crash_op", "rita")
        record = wait_for(lambda: memory.jobs.wait(job_id, timeout=1).state is JobState.FAILED and
                          memory.jobs.wait(job_id, timeout=0.1), 150, "the poison job to be stopped", procs.logs)
        assert "stopped after 2 attempts that never finished" in (record.error or "")
        assert procs.procs["w1"].poll() is None  # the worker itself lives on (its pool child was replaced)
        env = {"MEMSCOPE_CONFIG": str(config)}
        listed = CliRunner().invoke(cli_app, ["jobs", "failed", "--json"], env=env)
        assert listed.exit_code == 0, listed.output
        assert [r["id"] for r in json.loads(listed.stdout)] == [job_id]
        flag.unlink()  # the cause is fixed
        retried = CliRunner().invoke(cli_app, ["jobs", "retry", job_id], env=env)
        assert retried.exit_code == 0, retried.output
        new_id = retried.stdout.split("->")[1].strip()
        assert memory.jobs.wait(new_id, timeout=60).state is JobState.SUCCEEDED
        assert "retried as job" in (memory.jobs.wait(job_id, timeout=0.1).error or "")


@pytest.mark.timeout(180)
def test_a_worker_on_another_store_refuses_the_job(tmp_path: Path, procs: Processes, namespace: str) -> None:
    model = start_model_server(procs)
    config = write_config(tmp_path, namespace, model.url)
    (tmp_path / "elsewhere").mkdir()
    other = write_config(tmp_path / "elsewhere", namespace, model.url)  # same queue, its own SQLite file
    start_worker(procs, "w1", other, namespace)
    with MemoryScope(config, background=False) as memory:
        memory.add_messages("sam", ["I repair clocks"])
        record = memory.jobs.wait(memory.consolidate("sam"), timeout=60)
        assert len(memory.list_messages("sam", pending=True)) == 1
    assert record.state is JobState.FAILED
    error = record.error or ""
    assert str(tmp_path / "memscope.db") in error and str(tmp_path / "elsewhere" / "memscope.db") in error
    assert "same store settings" in error


@pytest.mark.timeout(60)
def test_the_sweep_skips_work_parked_as_poison(tmp_path: Path, namespace: str, scripted_server) -> None:  # type: ignore[no-untyped-def]
    config = write_config(tmp_path, namespace, scripted_server.url)
    with MemoryScope(config, background=False) as memory:
        memory.runtime.store.add_messages(to_messages("tess", ["I build kites"]))
        memory.runtime.store.add_messages(to_messages("uma", ["I bake bread"]))
        memory.jobs.attempts.park("job-1", CONSOLIDATE, "tess", "default")
        assert memory.jobs.sweep() == 1
        assert [r.user_id for r in memory.jobs.status()] == ["uma"]
        assert len(memory.list_messages("tess", pending=True)) == 1
