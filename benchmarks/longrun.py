"""`memscope bench longrun`: one long-lived process doing retrieves and jobs; are fds, threads and RSS flat?

A chatbot process lives for days, so a resource kept per call (a connection, a thread, a file) kills
it sooner or later. This run mimics one: for `--minutes`, one `MemoryScope` (embedded SQLite store,
local job threads) answers retrieves for a handful of users, and every `--job-every` retrieves adds a
message and waits for a consolidation job. A scripted OpenAI-compatible model server in its own
process (`tests.support.scripted_server`, so: run from a repository checkout) answers the model and
embedding calls, so no key is needed and the figures are memscope's own.

Each row is a sample: calls so far, open file descriptors (/proc/self/fd), threads, RSS. The last
row is the growth from the first sample (taken after a warm-up) to the last; flat means near zero.

    python -m benchmarks.longrun [--minutes 5] [--samples 6] [--json]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import emit, rss_mb

__all__ = ["Sample", "open_fds", "run_longrun"]

USERS = 4


@dataclass
class Sample:
    """The process's resources after `retrieves` retrieves and `jobs` consolidation jobs."""

    elapsed_s: float
    retrieves: int
    jobs: int
    fds: int
    threads: int
    rss_mb: float


def open_fds() -> int:
    """Open file descriptors of this process (Linux /proc; -1 elsewhere)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def _sample(started: float, retrieves: int, jobs: int) -> Sample:
    return Sample(round(time.perf_counter() - started, 1), retrieves, jobs, open_fds(),
                  threading.active_count(), round(rss_mb(), 1))  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(port: int) -> subprocess.Popen[bytes]:
    checkout = Path(__file__).resolve().parents[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.support.scripted_server", "--port", str(port), "--default-mode", "consolidation"],
        cwd=checkout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"the scripted model server did not start on 127.0.0.1:{port}")


def _settings(folder: Path, base_url: str) -> dict[str, Any]:
    model = {"api_key": "longrun-unused", "base_url": base_url}
    return {
        "store": {"path": str(folder / "longrun.db")},
        "llm": {"backend": "openai", "model": "scripted", **model},
        "embedding": {"backend": "openai", "model": "scripted-embed", "dim": 64, **model},
        "jobs": {"sweep_interval_s": 3600, "reflect_interval_s": 3600},
    }


def run_longrun(
    minutes: float = 5.0, samples: int = 6, job_every: int = 5, *, retrieves: int | None = None
) -> list[Sample]:
    """Run for `minutes` (or exactly `retrieves` retrieves); `samples` evenly spaced, after a warm-up."""
    from memscope.api import MemoryScope

    port = _free_port()
    server = _start_server(port)
    out: list[Sample] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="memscope-longrun-") as tmp,
            MemoryScope(_settings(Path(tmp), f"http://127.0.0.1:{port}/v1")) as memory,
        ):
            users = [f"user{n}" for n in range(USERS)]
            done = jobs = 0

            def step() -> None:
                nonlocal done, jobs
                user = users[done % USERS]
                memory.retrieve(user, f"what does {user} like about hiking number {done % 7}?")
                done += 1
                if done % job_every == 0:
                    memory.add_messages(user, f"I went hiking on trail {done} and loved it.")
                    memory.consolidate(user, wait=True, timeout=60)
                    jobs += 1

            for _ in range(job_every * 4):  # warm-up: connections, caches, worker instances
                step()
            started = time.perf_counter()
            out.append(_sample(started, done, jobs))
            budget = minutes * 60
            for index in range(1, samples):
                until = started + budget * index / (samples - 1)
                target = None if retrieves is None else done + retrieves // (samples - 1)
                while (time.perf_counter() < until) if target is None else (done < target):
                    step()
                out.append(_sample(started, done, jobs))
    finally:
        server.kill()
        server.wait()
    return out


def report(rows: list[Sample], as_json: bool) -> None:
    """A table of the samples and the growth from first to last, or JSON."""
    first, last = rows[0], rows[-1]
    growth = {"fds": last.fds - first.fds, "threads": last.threads - first.threads,
              "rss_mb": round(last.rss_mb - first.rss_mb, 1)}  # fmt: skip
    table: list[list[Any]] = [[r.elapsed_s, r.retrieves, r.jobs, r.fds, r.threads, r.rss_mb] for r in rows]
    table.append(["growth", last.retrieves - first.retrieves, last.jobs - first.jobs, growth["fds"],
                  growth["threads"], growth["rss_mb"]])  # fmt: skip
    columns = ["elapsed s", "retrieves", "jobs", "open fds", "threads", "RSS MB"]
    data = {"samples": [asdict(r) for r in rows], "growth": growth}
    emit("one long-lived process: retrieves and consolidation jobs", columns, table, data, as_json)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument("--job-every", type=int, default=5, help="retrieves per consolidation job")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report(run_longrun(args.minutes, max(args.samples, 2), max(args.job_every, 1)), args.json)


if __name__ == "__main__":
    main()
