"""Crash recovery of the in-process executor: a job thread that crashes, close() while a job waits
for another process's lease, and a process killed mid-job whose pending work resumes on the next start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from memscope.api import MemoryScope
from memscope.jobs.base import CONSOLIDATE, JobState
from memscope.models import Message
from tests.jobs.conftest import Processes, child_env, consolidation_problems, start_model_server, wait_for
from tests.jobs.probe_workers import EXIT_OPERATION
from tests.jobs.test_cross_process import embedded_config

pytestmark = pytest.mark.integration


def with_probe_ops(config: Path, folder: Path) -> Path:
    """The config plus the probe operations and workers."""
    ops = folder / "ops"
    ops.mkdir(exist_ok=True)
    (ops / "jobs_exit_op.yaml").write_text(EXIT_OPERATION, encoding="utf-8")
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data |= {"operations": {"paths": [str(ops)]}, "workers": {"modules": ["tests.jobs.probe_workers"]}}
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    return config


@pytest.mark.timeout(120)
def test_a_crashed_job_thread_is_recorded_and_the_user_carries_on(tmp_path: Path, procs: Processes) -> None:
    model = start_model_server(procs)
    config = with_probe_ops(embedded_config(tmp_path, model.url), tmp_path)
    with MemoryScope(config, background=False) as memory:
        # The crash comes first: a consolidation queued by add_messages could otherwise run right after it
        # and hold the user's lease when the test looks.
        crashed = memory.jobs.wait(memory.jobs.submit("jobs_exit_op", "vic"), timeout=30)
        assert crashed.state is JobState.FAILED and "SystemExit" in (crashed.error or ""), crashed
        assert memory.runtime.store.acquire_lease("vic", "someone-else", 0.01) is not None  # released, not stuck
        time.sleep(0.05)
        memory.add_messages("vic", ["I restore old radios", "I live in Turin"])
        record = memory.consolidate("vic", wait=True, timeout=60)
        assert record.state is JobState.SUCCEEDED  # type: ignore[union-attr]
        assert consolidation_problems(memory.runtime.store, "vic", 2) == []


@pytest.mark.timeout(120)
def test_close_stops_a_job_waiting_for_another_process_lease(tmp_path: Path, procs: Processes) -> None:
    model = start_model_server(procs)
    config = embedded_config(tmp_path, model.url)
    memory = MemoryScope(config, background=False)
    try:
        assert memory.runtime.store.acquire_lease("wes", "another-process", 60) is not None
        # Into the store, not through add_messages: the job that would queue could start before the one
        # submitted here, which would then wait behind it, queued, never running.
        memory.runtime.store.add_messages([Message(user_id="wes", content="I grow bonsai")])
        job_id = memory.jobs.submit(CONSOLIDATE, "wes")
        wait_for(lambda: memory.jobs.wait(job_id, timeout=0.1).state is JobState.RUNNING, 60, "the job to wait")
        started = time.monotonic()
        memory.jobs.close(wait=True)
        assert time.monotonic() - started < 10  # it stopped waiting for the lease
        record = memory.jobs.wait(job_id, timeout=1)
        assert record.state is JobState.FAILED and "lease" in (record.error or ""), record
        assert len(memory.list_messages("wes", pending=True)) == 1
    finally:
        memory.close()


@pytest.mark.timeout(180)
def test_a_process_killed_mid_job_resumes_on_the_next_start(tmp_path: Path, procs: Processes) -> None:
    model = start_model_server(procs, latency=0.3, mode="varied_consolidation")
    with MemoryScope(embedded_config(tmp_path, model.url, llm=False)) as memory:
        memory.add_messages("xia", [f"I keep lamp number {i} in the hall" for i in range(20)])
    config = embedded_config(tmp_path, model.url)  # lease TTL 5 s, batches of 5
    argv = [sys.executable, "-m", "tests.jobs.consolidate_once", str(config), "xia", str(time.time())]
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env(),
                             start_new_session=True)
    try:
        with MemoryScope(embedded_config(tmp_path, model.url, llm=False)) as reader:
            wait_for(lambda: len(reader.list_messages("xia", pending=True)) <= 15, 60, "a first batch")
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # mid-job: its lease stays in the store until it expires
        child.wait(timeout=10)
    with MemoryScope(config) as restarted:  # the start-up sweep queues xia; the job waits out the dead lease
        assert restarted.list_messages("xia", pending=True)
        wait_for(lambda: not restarted.list_messages("xia", pending=True), 90, "the restart to resume xia")
        assert consolidation_problems(restarted.runtime.store, "xia", 20) == []
