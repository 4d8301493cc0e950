"""Embedded mode, several processes on one SQLite store: the per-user lease in the store makes each
message consolidated once, whatever the number of processes (issue 11, item 2)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from memscope.api import MemoryScope
from tests.jobs.conftest import Processes, child_env, consolidation_problems, start_model_server

pytestmark = pytest.mark.integration


def embedded_config(folder: Path, model_url: str, llm: bool = True) -> Path:
    """Embedded mode (local jobs) on a SQLite file in `folder`, models at the scripted server process."""
    models = {"base_url": f"{model_url}/v1", "api_key": "dummy-key"}
    data = {
        "store": {"backend": "sqlite", "path": str(folder / "memscope.db")},
        "jobs": {"backend": "local", "sweep_interval_s": 3600, "reflect_min_observations": 1000,
                 "consolidate_batch": 5, "local": {"lease_ttl_s": 5}},
        "llm": {"backend": "openai", "model": "gpt-4o-mini", **models} if llm else {"backend": "none"},
        "embedding": {"backend": "openai", "model": "text-embedding-3-small", "dim": 64, **models},
    }
    path = folder / ("memscope.yaml" if llm else "no-llm.yaml")
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.timeout(180)
def test_two_processes_consolidate_each_message_once(tmp_path: Path, procs: Processes) -> None:
    model = start_model_server(procs, latency=0.2, mode="varied_consolidation")  # words each answer anew
    with MemoryScope(embedded_config(tmp_path, model.url, llm=False)) as memory:  # stored, kept pending
        memory.add_messages("ann", [f"I keep tool number {i} in the blue shed" for i in range(20)])
    config = embedded_config(tmp_path, model.url)
    start_at = time.time() + 8  # both processes have opened the store and swept by then
    argv = [sys.executable, "-m", "tests.jobs.consolidate_once", str(config), "ann", str(start_at)]
    children = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(), text=True)
                for _ in range(2)]
    outputs = [child.communicate(timeout=150) for child in children]
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err[-3000:]
        assert json.loads(out.strip().splitlines()[-1])["state"] == "succeeded", out
    with MemoryScope(embedded_config(tmp_path, model.url, llm=False)) as memory:
        assert consolidation_problems(memory.runtime.store, "ann", 20) == []
