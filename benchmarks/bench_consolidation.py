"""Consolidation throughput on Celery workers, and memscope's own overhead next to the model's latency.

For 1, 2 and 4 worker processes (`--workers`): a scripted OpenAI-compatible model server in its own
process answers every model call after a fixed `--latency`; `--users` x `--messages` are added through
`MemoryScope.add_messages` (which queues the jobs) and the clock runs until every message is
consolidated. Reported per row:

  msgs/s        messages consolidated per second of wall time
  model calls   chat + embedding requests the server answered
  model wait    model calls x latency: the time the workers spent waiting for the model
  overhead      worker-seconds not spent waiting for the model: workers x wall - model wait
                (memscope, Celery, Redis, SQLite, HTTP, and idle time at the end of the run)
  per job       overhead / consolidation jobs run

Needs Redis (`--redis`, default DB 14; only this run's key prefix is used and deleted) and runs from
a repository checkout (the model server is `tests.support.scripted_server`). Each worker count gets a
warm-up round first, so the one-off start of each worker process is not counted.

    python -m benchmarks.bench_consolidation [--workers 1,2,4] [--users 16] [--messages 40]
                                             [--latency 0.05] [--json]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks._common import emit

__all__ = ["ConsolidationRow", "main", "run_consolidation_bench"]

REPO = Path(__file__).resolve().parents[1]
REDIS_URL = "redis://127.0.0.1:6379/14"


@dataclass
class ConsolidationRow:
    """One worker count's result."""

    workers: int
    messages: int
    wall_s: float
    messages_per_s: float
    jobs: int
    model_calls: int
    model_wait_s: float
    overhead_s: float
    overhead_per_job_ms: float


class _Processes:
    """Child processes of one run, each in its own session; `stop()` kills them all."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder, self.env = folder, env
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], ready: str, timeout: float = 90) -> None:
        log_path = self.folder / f"{name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=REPO, start_new_session=True
            )
        self.procs.append(proc)
        deadline = time.monotonic() + timeout
        while ready not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(folder: Path, queue: str, model_url: str, redis_url: str) -> Path:
    models = {"base_url": f"{model_url}/v1", "api_key": "dummy-key"}
    data = {
        "store": {"backend": "sqlite", "path": str(folder / "memscope.db")},
        "jobs": {
            "backend": "celery",
            "reflect_min_observations": 100_000,
            "celery": {"broker_url": redis_url, "result_backend": redis_url, "queue": queue},
        },
        "llm": {"backend": "openai", "model": "gpt-4o-mini", "max_retries": 0, **models},
        "embedding": {"backend": "openai", "model": "text-embedding-3-small", "dim": 64, **models},
    }
    path = folder / "memscope.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _wait_consolidated(memory: Any, users: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(memory.list_messages(u, pending=True) for u in users):
        if time.monotonic() > deadline:
            raise RuntimeError(f"messages still pending after {timeout:.0f}s; see the worker logs")
        time.sleep(0.05)


def _wait_records_final(memory: Any, timeout: float) -> None:
    """Job records are written just after a job's messages are marked consolidated: wait for them."""
    deadline = time.monotonic() + timeout
    while any(r.state.value in ("queued", "running") for r in memory.jobs.status()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs still queued or running after {timeout:.0f}s; see the worker logs")
        time.sleep(0.05)


def _model_calls(script: Any) -> int:
    return sum(1 for r in script.requests() if r["path"].split("?")[0].endswith(("/chat/completions", "/embeddings")))


def run_once(workers: int, users: int, messages: int, latency: float, redis_url: str = REDIS_URL) -> ConsolidationRow:
    """Start a model server and `workers` celery workers, consolidate users x messages, measure."""
    import redis

    from memscope.api import MemoryScope
    from memscope.jobs.base import JobState
    from tests.support.scripted_server import RemoteScript

    queue = f"msbench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="memscope-bench-") as tmp:
        folder = Path(tmp)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        port = _free_port()
        procs = _Processes(folder, env)
        try:
            procs.start(
                "model",
                [
                    sys.executable,
                    "-m",
                    "tests.support.scripted_server",
                    "--port",
                    str(port),
                    "--latency",
                    str(latency),
                    "--default-mode",
                    "consolidation",
                ],
                ready="listening",
            )
            script = RemoteScript(f"http://127.0.0.1:{port}")
            config = _config(folder, queue, script.url, redis_url)
            procs.env = dict(env, MEMSCOPE_CONFIG=str(config))
            for n in range(workers):
                procs.start(
                    f"worker{n}",
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "memscope.jobs.celery_app",
                        "worker",
                        "--loglevel=INFO",
                        "--concurrency=1",
                        f"--queues={queue}",
                        f"--hostname=bench{n}@%h",
                        "--without-mingle",
                        "--without-gossip",
                        "--without-heartbeat",
                    ],
                    ready="ready.",
                )
            with MemoryScope(config, background=False) as memory:
                warm = [f"warmup-{n}" for n in range(2 * workers)]  # each worker process builds its runtime
                for user in warm:
                    memory.add_messages(user, "I warm up the workers")
                _wait_consolidated(memory, warm, 300)
                calls_before = _model_calls(script)
                names = [f"user-{n}" for n in range(users)]
                start = time.perf_counter()
                for user in names:
                    memory.add_messages(user, [f"{user} fact {i}: I keep item {i} in my shed" for i in range(messages)])
                _wait_consolidated(memory, names, 600)
                wall = time.perf_counter() - start
                _wait_records_final(memory, 60)
                jobs = sum(1 for r in memory.jobs.status() if r.user_id in names and r.state is JobState.SUCCEEDED)
            calls = _model_calls(script) - calls_before
        finally:
            procs.stop()
            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(match=f"{queue}*", count=500))
            if keys:
                client.delete(*keys)
            client.close()
    total = users * messages
    model_wait = calls * latency
    overhead = workers * wall - model_wait
    return ConsolidationRow(
        workers=workers,
        messages=total,
        wall_s=round(wall, 3),
        messages_per_s=round(total / wall, 1),
        jobs=jobs,
        model_calls=calls,
        model_wait_s=round(model_wait, 3),
        overhead_s=round(overhead, 3),
        overhead_per_job_ms=round(1000 * overhead / jobs, 1) if jobs else float("nan"),
    )


def run_consolidation_bench(
    worker_counts: list[int], users: int, messages: int, latency: float, redis_url: str = REDIS_URL
) -> list[ConsolidationRow]:
    """One row per worker count."""
    return [run_once(n, users, messages, latency, redis_url) for n in worker_counts]


def main(argv: list[str] | None = None) -> None:
    """Parse the options, run, and print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker process counts")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--messages", type=int, default=40, help="messages per user")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the model takes per answer")
    parser.add_argument("--redis", default=REDIS_URL, help="Redis URL (only this run's keys are touched)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",") if n.strip()]
    rows = run_consolidation_bench(counts, args.users, args.messages, args.latency, args.redis)
    columns = [
        "workers",
        "messages",
        "wall s",
        "msgs/s",
        "jobs",
        "model calls",
        "model wait s",
        "overhead s",
        "overhead/job ms",
    ]
    table = [
        [
            r.workers,
            r.messages,
            r.wall_s,
            r.messages_per_s,
            r.jobs,
            r.model_calls,
            r.model_wait_s,
            r.overhead_s,
            r.overhead_per_job_ms,
        ]
        for r in rows
    ]
    data = {
        "latency_s": args.latency,
        "users": args.users,
        "messages_per_user": args.messages,
        "rows": [asdict(r) for r in rows],
    }
    emit(
        f"consolidation on Celery workers (model latency {args.latency * 1000:.0f} ms)", columns, table, data, args.json
    )


if __name__ == "__main__":
    main()
