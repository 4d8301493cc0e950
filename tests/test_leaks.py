"""A long-lived process keeps its descriptors, threads and memory flat over thousands of calls.

The calls run in a subprocess under a low open-file limit, so a leak of one descriptor per call fails
there as it would in a chatbot that has run for hours.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from memscope.stores.sqlite import SqliteStore
from tests.support.scripted_server import ScriptedServer

pytestmark = pytest.mark.integration

CHILD = textwrap.dedent(
    """
    import json, os, resource, sys, threading
    resource.setrlimit(resource.RLIMIT_NOFILE, (160, 160))
    from memscope.api import MemoryScope
    from memscope.jobs.base import CONSOLIDATE

    def snapshot():
        with open("/proc/self/statm") as fh:
            rss = int(fh.read().split()[1]) * resource.getpagesize() / 2**20
        return {"fds": len(os.listdir("/proc/self/fd")), "threads": threading.active_count(), "rss_mb": rss}

    base_url, folder, retrieves, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    model = {"api_key": "unused", "base_url": base_url}
    settings = {"store": {"path": folder + "/m.db"}, "llm": {"backend": "none"},
                "embedding": {"backend": "openai", "model": "e", "dim": 64, **model}}
    with MemoryScope(settings, background=False) as memory:
        memory.add_messages("u0", ["I like hiking in the Alps.", "My sister lives in Lyon."])
        def work(n_retrieves, n_jobs):
            for n in range(n_retrieves):
                memory.retrieve(f"u{n % 3}", f"what does the user like {n % 5}?")
            for n in range(n_jobs):
                memory.jobs.wait(memory.jobs.submit(CONSOLIDATE, f"u{n % 3}"), timeout=30)
        work(100, 20)  # warm-up
        before = snapshot()
        work(retrieves, jobs)
        after = snapshot()
    print(json.dumps({"before": before, "after": after}))
    """
)


def test_retrieves_and_jobs_keep_fds_threads_and_rss_flat(tmp_path: Path, model_server: ScriptedServer) -> None:
    args = [model_server.openai_base_url, str(tmp_path), "5000", "1000"]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    before, after = figures["before"], figures["after"]
    assert after["fds"] - before["fds"] <= 2, figures
    assert after["threads"] - before["threads"] <= 1, figures
    assert after["rss_mb"] - before["rss_mb"] < 40, figures


def test_connections_of_ended_threads_are_released(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "m.db") as store:
        for _ in range(50):
            thread = threading.Thread(target=store.users_with_pending)
            thread.start()
            thread.join()
        store.users_with_pending()
        assert len(store._connections) <= 2  # this thread's, and at most one ended thread's not yet released
