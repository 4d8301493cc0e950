"""The distributed job backend against real Redis, real celery worker processes and the scripted model
server in its own process: consolidation at scale, a worker killed mid-job, Redis down, retries."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memscope.api import MemoryScope
from memscope.config import load_settings
from memscope.errors import JobError
from memscope.jobs.base import CONSOLIDATE, REFLECT, JobRecord, JobState
from memscope.jobs.celery_app import SWEEP, make_celery
from memscope.jobs.celery_dispatch import CeleryDispatcher
from memscope.jobs.redis_lock import RedisLock
from memscope.messages import to_messages
from memscope.models import MemoryNode
from memscope.runtime import Runtime
from tests.jobs.conftest import (
    REDIS_URL,
    Processes,
    child_env,
    consolidation_problems,
    free_port,
    redis_client,
    start_model_server,
    start_worker,
    wait_for,
    write_config,
)
from tests.support.scripted_server import Fault

USERS = [f"user-{n}" for n in range(5)]


def add_conversations(memory: MemoryScope, users: list[str], per_user: int, chunk: int) -> None:
    """Add `per_user` distinct messages per user, `chunk` at a time, the users interleaved."""
    for start in range(0, per_user, chunk):
        for user in users:
            texts = [f"{user} note {i}: I keep item {user}-{i} in my garage" for i in range(start, start + chunk)]
            memory.add_messages(user, texts)


def pending(memory: MemoryScope, users: list[str]) -> int:
    """How many messages of these users are still pending."""
    return sum(len(memory.list_messages(u, pending=True)) for u in users)


def finished(memory: MemoryScope) -> list[JobRecord]:
    """The job records, once none is queued or running any more (else an empty list)."""
    records = memory.jobs.status()
    return records if all(r.state in (JobState.SUCCEEDED, JobState.FAILED) for r in records) else []


def all_problems(memory: MemoryScope, users: list[str], per_user: int) -> list[str]:
    return [p for u in users for p in consolidation_problems(memory.runtime.store, u, per_user)]


# -- at scale ----------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_workers_consolidate_every_message(tmp_path: Path, procs: Processes, namespace: str) -> None:
    model = start_model_server(procs, latency=0.02)
    config = write_config(tmp_path, namespace, model.url)
    start_worker(procs, "w1", config, namespace)
    start_worker(procs, "w2", config, namespace)
    with MemoryScope(config, background=False) as memory:
        add_conversations(memory, USERS, per_user=40, chunk=8)
        wait_for(lambda: pending(memory, USERS) == 0, 150, "all 200 messages to be consolidated", procs.logs)
        assert all_problems(memory, USERS, 40) == []
        records = wait_for(lambda: finished(memory), 60, "every job record to be final", procs.logs)
        assert [r.error for r in records if r.state is JobState.FAILED] == []
        assert {r.user_id for r in records if r.state is JobState.SUCCEEDED} == set(USERS)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_worker_killed_mid_job_loses_and_repeats_nothing(tmp_path: Path, procs: Processes, namespace: str) -> None:
    model = start_model_server(procs, latency=0.15)  # jobs last long enough to be caught running
    config = write_config(tmp_path, namespace, model.url)
    start_worker(procs, "w1", config, namespace)
    start_worker(procs, "w2", config, namespace)
    with MemoryScope(config, background=False) as memory:
        add_conversations(memory, USERS, per_user=40, chunk=10)

        def w1_running() -> bool:
            return any(r.state is JobState.RUNNING and str(r.summary.get("worker", "")).startswith("w1@")
                       for r in memory.jobs.status())

        wait_for(w1_running, 90, "a job running on w1", procs.logs)
        procs.kill("w1", signal.SIGKILL)  # the worker and its pool child die mid-job
        assert pending(memory, USERS) > 0
        start_worker(procs, "w1-restarted", config, namespace)
        memory.jobs.app.send_task(SWEEP, queue=namespace)  # what beat does every sweep_interval_s
        wait_for(lambda: pending(memory, USERS) == 0, 150, "all messages consolidated after the restart",
                 procs.logs)
        assert all_problems(memory, USERS, 40) == []


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_redis_down_during_add_messages(
    tmp_path: Path, procs: Processes, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    redis_argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    procs.start("redis", redis_argv, child_env(), ready="Ready to accept connections")
    broker = f"redis://127.0.0.1:{port}/0"
    model = start_model_server(procs)
    config = write_config(tmp_path, namespace, model.url, broker=broker, jobs={"sweep_interval_s": 2})
    start_worker(procs, "w1", config, namespace, cli=True)
    beat = [sys.executable, "-m", "memscope.cli", "beat", f"--schedule={tmp_path / 'beat-schedule'}"]
    procs.start("beat", beat, child_env(config), ready="beat: Starting")
    with MemoryScope(config, background=False) as memory:
        procs.kill("redis", signal.SIGKILL)
        with caplog.at_level(logging.WARNING, logger="memscope"):
            added = memory.add_messages("carol", [f"I collect stamp number {i}" for i in range(6)])
        assert len(added) == 6
        assert len(memory.list_messages("carol", pending=True)) == 6  # stored, durable, pending
        assert "could not queue consolidation" in caplog.text
        procs.start("redis", redis_argv, child_env(), ready="Ready to accept connections")  # empty: no queue
        wait_for(lambda: not memory.list_messages("carol", pending=True), 120,
                 "the sweep to consolidate the messages added while Redis was down", procs.logs)
        assert all_problems(memory, ["carol"], 6) == []


# -- retries and failures --------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_transient_model_error_is_retried(tmp_path: Path, procs: Processes, namespace: str) -> None:
    model = start_model_server(procs)
    model.script("filter_informative", Fault.status(500))  # the first answer fails, the rest are fine
    config = write_config(tmp_path, namespace, model.url)
    start_worker(procs, "w1", config, namespace)
    with MemoryScope(config, background=False) as memory:
        memory.add_messages("dave", ["I am a beekeeper", "I live in Lyon"])
        record = memory.jobs.wait(memory.consolidate("dave"), timeout=60)
        assert (record.state, record.attempts) == (JobState.SUCCEEDED, 2), record
        assert not memory.list_messages("dave", pending=True)
    tags = [r["tag"] for r in model.requests()]
    assert tags.count("filter_informative") == 2


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_job_waits_for_the_users_lock(tmp_path: Path, procs: Processes, namespace: str) -> None:
    model = start_model_server(procs)
    config = write_config(tmp_path, namespace, model.url)
    start_worker(procs, "w1", config, namespace)
    with MemoryScope(config, background=False) as memory:
        held = RedisLock(memory.jobs.redis, namespace, "maya", ttl_s=60)  # as if another job ran for maya
        assert held.acquire()
        memory.add_messages("maya", ["I speak Basque"])
        job_id = memory.jobs.submit(CONSOLIDATE, "maya")
        wait_for(lambda: "LockBusy" in procs.log("w1"), 30, "the worker to find the lock busy", procs.logs)
        record = memory.jobs.wait(job_id, timeout=1)
        assert record.state is JobState.QUEUED and record.started_at is None
        assert not [r for r in model.requests() if r["tag"]]  # no model call while the lock is held
        assert held.release()
        record = memory.jobs.wait(job_id, timeout=60)
        assert (record.state, record.attempts) == (JobState.SUCCEEDED, 1)  # waiting is not a failed attempt
        assert not memory.list_messages("maya", pending=True)


@pytest.mark.integration
@pytest.mark.timeout(150)
def test_failing_jobs_are_recorded_with_their_error(tmp_path: Path, procs: Processes, namespace: str) -> None:
    model = start_model_server(procs, mode="error")  # every chat answer is HTTP 500
    config = write_config(tmp_path, namespace, model.url)  # max_retries: 1
    start_worker(procs, "w1", config, namespace)
    with MemoryScope(config, background=False) as memory:
        memory.add_messages("erin", ["I am a nurse"])
        transient = memory.jobs.wait(memory.consolidate("erin"), timeout=60)
        model.default(None, "invalid_json")  # not transient: no retry
        memory.add_messages("fred", ["I am a pilot"])
        invalid = memory.jobs.wait(memory.consolidate("fred"), timeout=60)
        stats = memory.stats("erin")
        assert len(memory.list_messages("erin", pending=True)) == 1  # nothing lost
    assert (transient.state, transient.attempts) == (JobState.FAILED, 2)
    assert "gave up after 2 attempts" in (transient.error or "")
    assert "ModelUnavailable" in (transient.error or "")
    assert (invalid.state, invalid.attempts) == (JobState.FAILED, 1)
    assert "ModelOutputError" in (invalid.error or "")
    assert [j["id"] for j in stats["failed_jobs"]] == [transient.id]
    result = CliRunner().invoke(app_cli(), ["jobs", "status", "--user", "erin", "--json"],
                                env={"MEMSCOPE_CONFIG": str(config)})
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown[0]["state"] == "failed" and "ModelUnavailable" in shown[0]["error"]
    table = CliRunner().invoke(app_cli(), ["jobs", "status"], env={"MEMSCOPE_CONFIG": str(config)})
    assert "erin" in table.stdout and "fred" in table.stdout and "ModelOutputError" in table.stdout


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_worker_that_cannot_start_memscope_records_why(tmp_path: Path, procs: Processes, namespace: str) -> None:
    model = start_model_server(procs)
    config = write_config(tmp_path, namespace, model.url)
    (tmp_path / "worker").mkdir()
    other_model = write_config(tmp_path / "worker", namespace, model.url,
                               store={"path": str(tmp_path / "memscope.db")}, embedding={"dim": 32})
    start_worker(procs, "w1", other_model, namespace)  # its embedder does not match the store's
    with MemoryScope(config, background=False) as memory:
        memory.add_messages("nina", ["I am a luthier"])
        record = memory.jobs.wait(memory.consolidate("nina"), timeout=60)
    assert record.state is JobState.FAILED
    assert "could not start memscope" in (record.error or "") and "EmbeddingMismatch" in (record.error or "")


def app_cli():  # type: ignore[no-untyped-def]
    from memscope.cli import app

    return app


# -- the dispatcher without workers ----------------------------------------------------------------


@pytest.fixture
def idle_dispatcher(tmp_path: Path, namespace: str, scripted_server) -> CeleryDispatcher:  # type: ignore[no-untyped-def]
    """A dispatcher whose queue no worker consumes (its jobs stay queued)."""
    config = write_config(tmp_path, namespace, scripted_server.url)
    runtime = Runtime(load_settings(config))
    dispatcher = CeleryDispatcher(runtime)
    yield dispatcher
    dispatcher.close()
    runtime.close()


@pytest.mark.integration
def test_a_still_queued_job_is_reused(idle_dispatcher: CeleryDispatcher) -> None:
    first = idle_dispatcher.submit(CONSOLIDATE, "gina")
    assert idle_dispatcher.submit(CONSOLIDATE, "gina") == first
    assert idle_dispatcher.submit(CONSOLIDATE, "gina", agent_id="other") != first
    assert idle_dispatcher.submit(CONSOLIDATE, "hank") != first
    record = idle_dispatcher.wait(first, timeout=0.2)  # nobody runs it: still queued after the timeout
    assert (record.state, record.user_id, record.operation) == (JobState.QUEUED, "gina", CONSOLIDATE)
    assert [r.id for r in idle_dispatcher.status("gina")][-1] == first
    with pytest.raises(JobError, match="unknown job id"):
        idle_dispatcher.wait("no-such-job", timeout=0.1)


@pytest.mark.integration
def test_sweep_and_reflection_rounds_queue_from_the_store(idle_dispatcher: CeleryDispatcher) -> None:
    store = idle_dispatcher.runtime.store
    store.add_messages(to_messages("jill", ["I run marathons"]))
    assert idle_dispatcher.sweep() == 1
    (queued,) = idle_dispatcher.status("jill")
    assert (queued.operation, queued.state) == (CONSOLIDATE, JobState.QUEUED)
    assert idle_dispatcher.sweep() == 1 and len(idle_dispatcher.status("jill")) == 1  # still queued: reused
    store.write_memories([MemoryNode(user_id="kim", content="Kim keeps bees")])
    idle_dispatcher.note_consolidated("kim", None)
    idle_dispatcher.note_consolidated("lou", None)  # nothing unreflected: no reflection for lou
    assert idle_dispatcher.reflect_due() == 1
    assert [r.operation for r in idle_dispatcher.status("kim")] == [REFLECT]
    assert idle_dispatcher.reflect_due() == 0  # the round consumed the noted users


@pytest.mark.integration
def test_redis_unreachable_is_a_clear_job_error(tmp_path: Path, namespace: str, scripted_server) -> None:  # type: ignore[no-untyped-def]
    config = write_config(tmp_path, namespace, scripted_server.url, broker=f"redis://127.0.0.1:{free_port()}/0")
    with MemoryScope(config, background=False) as memory:
        with pytest.raises(JobError, match=r"Redis at redis://127\.0\.0\.1:\d+/0 is unavailable"):
            memory.jobs.submit(CONSOLIDATE, "ivan")
        assert [m.content for m in memory.add_messages("ivan", "I play the cello")] == ["I play the cello"]
        assert len(memory.list_messages("ivan", pending=True)) == 1


@pytest.mark.unit
def test_celery_app_is_configured_from_settings() -> None:
    settings = load_settings({"jobs": {"backend": "celery", "sweep_interval_s": 7, "reflect_interval_s": 70,
                                       "celery": {"broker_url": REDIS_URL, "queue": "q1", "soft_time_limit_s": 5,
                                                  "time_limit_s": 9, "lock_ttl_s": 30}}})
    conf = make_celery(settings).conf
    assert (conf.task_acks_late, conf.task_reject_on_worker_lost, conf.worker_prefetch_multiplier) == (True, True, 1)
    assert (conf.task_serializer, list(conf.accept_content), conf.task_default_queue) == ("json", ["json"], "q1")
    assert (conf.task_soft_time_limit, conf.task_time_limit) == (5, 9)
    assert conf.broker_transport_options["global_keyprefix"] == "q1:"
    assert conf.broker_transport_options["visibility_timeout"] > 300  # beyond the longest retry delay
    schedule = {entry["task"]: entry["schedule"].total_seconds() for entry in conf.beat_schedule.values()}
    assert schedule == {"memscope.sweep": 7, "memscope.reflect_due": 70}


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_consolidation_benchmark_smoke() -> None:
    from benchmarks.bench_consolidation import run_consolidation_bench

    redis_client().close()  # skips without Redis
    (row,) = run_consolidation_bench([1], users=2, messages=3, latency=0.0, redis_url=REDIS_URL)
    assert (row.workers, row.messages, row.jobs) == (1, 6, 2)
    assert row.model_calls >= 2 * 3  # per job at least: embeddings, filter, extract x2, ...
    assert row.messages_per_s > 0
