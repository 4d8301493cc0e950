"""`memscope demo` with `jobs.backend: celery`: it never again writes where the workers do not read."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from memscope.demo import run_demo
from tests.jobs.conftest import Processes, start_model_server, start_worker, write_config

pytestmark = pytest.mark.integration


@pytest.mark.timeout(180)
def test_demo_on_its_temporary_store_runs_its_jobs_in_process(tmp_path: Path, procs: Processes,
                                                              namespace: str) -> None:
    model = start_model_server(procs)
    config = write_config(tmp_path, namespace, model.url)  # celery; no worker consumes the queue
    out = io.StringIO()
    outcome = run_demo(config, console=Console(file=out, width=2000))
    assert "the demo runs its jobs in this process" in out.getvalue()
    assert f"--store {tmp_path / 'memscope.db'}" in out.getvalue()
    assert outcome["memories"] and outcome["stats"]["pending_messages"] == 0


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_demo_on_the_configured_store_is_run_by_the_workers(tmp_path: Path, procs: Processes,
                                                            namespace: str) -> None:
    model = start_model_server(procs)
    config = write_config(tmp_path, namespace, model.url)
    start_worker(procs, "w1", config, namespace)
    out = io.StringIO()
    outcome = run_demo(config, store_path=tmp_path / "memscope.db", console=Console(file=out, width=2000))
    assert "on a Celery worker" in out.getvalue(), out.getvalue()
    assert outcome["memories"] and outcome["stats"]["pending_messages"] == 0
