"""Fault soak of the distributed mode: does every message get consolidated exactly once while things break?

Setup: a private redis-server on a free port, the scripted model server in its own process (answers
after `--latency`, and fails at random: 429 with Retry-After, 500, a hang past the client timeout,
invalid JSON, at `--rates`), `--workers` celery workers (one pool process each) plus beat, all on the
shipped job defaults (lock TTL, sweep interval, retries). For `--minutes`, `--users` users get
messages at random (1-3 every `--add-every` s); every `--kill-every` seconds a random worker is
SIGKILLed (and a new one started);
Redis is killed and restarted once, at 40% of the run. Then the faults stop being injected (kills and
Redis; the model keeps failing at its rates) and the run waits up to `--drain` seconds for the backlog.

Printed: messages added, consolidated and pending; lost messages (added but not stored, or still
pending after the drain, or consolidated without a memory); duplicate active memories (two memories
from one message); the longest time from a kill to the next progress of a user whose job the killed
worker was running; the drain time (last message added to nothing pending); throughput. Exits 1 on
any loss or duplicate.

    python -m benchmarks.soak [--minutes 2] [--users 8] [--workers 3] [--kill-every 20] [--json]
    memscope bench soak --minutes 30

Against Elasticsearch too when MEMSCOPE_ES_URL is set (a fresh index prefix, deleted afterwards).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmarks._common import emit

__all__ = ["SoakResult", "main", "run_soak"]

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RATES = "429=0.03,500=0.03,timeout=0.005,invalid_json=0.02"
LLM_TIMEOUT_S = 5.0


@dataclass
class SoakResult:
    """What one soak run measured."""

    store: str
    minutes: float
    users: int
    workers: int
    kills: int = 0
    redis_restarts: int = 0
    added: int = 0
    consolidated: int = 0
    pending: int = 0
    lost: int = 0
    duplicates: int = 0
    failed_jobs: int = 0
    lost_jobs: int = 0
    longest_kill_to_progress_s: float = 0.0
    drain_s: float = 0.0  # from the last message added until nothing was pending
    wall_s: float = 0.0
    messages_per_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No message lost and no memory duplicated."""
        return self.lost == 0 and self.duplicates == 0


class _Procs:
    """Named child processes, each in its own session, logging to `<folder>/<name>.log`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str], ready: str, timeout: float = 90) -> None:
        log_path = self.folder / f"{name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                    start_new_session=True)
        self.procs[name] = proc
        deadline = time.monotonic() + timeout
        while ready not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)

    def stop(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(folder: Path, queue: str, model_url: str, redis_url: str, store: str) -> Path:
    """The shipped job defaults, but: the private Redis, no reflection, and enough attempts for random kills."""
    models = {"base_url": f"{model_url}/v1", "api_key": "dummy-key"}
    store_cfg: dict[str, Any] = {"backend": "sqlite", "path": str(folder / "memscope.db")}
    if store == "elasticsearch":
        store_cfg = {"backend": "elasticsearch",
                     "elasticsearch": {"url": os.environ["MEMSCOPE_ES_URL"], "index_prefix": queue}}
    data = {
        "store": store_cfg,
        "jobs": {
            "backend": "celery",
            "reflect_min_observations": 100_000,  # the soak checks consolidation
            # random kills are not poison: a user hit by 3 kills in a row must not be parked
            "celery": {"broker_url": redis_url, "result_backend": redis_url, "queue": queue, "max_attempts": 20},
        },
        "llm": {"backend": "openai", "model": "gpt-4o-mini", "timeout_s": LLM_TIMEOUT_S, **models},
        "embedding": {"backend": "openai", "model": "text-embedding-3-small", "dim": 64,
                      "timeout_s": LLM_TIMEOUT_S, **models},
    }
    path = folder / "memscope.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


class _Run:
    """One soak: the processes, the producer, the killer and the progress monitor."""

    def __init__(self, folder: Path, args: argparse.Namespace, store: str, log: Callable[[str], None]) -> None:
        self.folder, self.args, self.store_kind, self.log = folder, args, store, log
        self.procs = _Procs(folder)
        self.queue = f"mssoak-{uuid.uuid4().hex[:8]}"
        self.redis_port = _free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        self.users = [f"soak-user-{n}" for n in range(args.users)]
        self.added: dict[str, list[str]] = {u: [] for u in self.users}
        self.watch: list[tuple[float, str, int]] = []  # (kill time, user, consolidated at the kill)
        self.kill_to_progress: list[float] = []
        self.result = SoakResult(store, args.minutes, args.users, args.workers)
        self._worker_seq = 0
        self._lock = threading.Lock()
        self.stop = threading.Event()

    # -- processes --------------------------------------------------------------------------------
    def start_redis(self) -> None:
        argv = ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no"]
        self.procs.start("redis", argv, self.env, ready="Ready to accept connections")

    def start_worker(self) -> str:
        name = f"soak{self._worker_seq}"
        self._worker_seq += 1
        argv = [sys.executable, "-m", "celery", "-A", "memscope.jobs.celery_app", "worker", "--loglevel=INFO",
                "--concurrency=1", f"--queues={self.queue}", f"--hostname={name}@%h", "--without-mingle",
                "--without-gossip", "--without-heartbeat"]
        self.procs.start(name, argv, self.config_env, ready="ready.")
        return name

    def workers(self) -> list[str]:
        return [n for n in self.procs.procs if n.startswith("soak")]

    # -- the loops --------------------------------------------------------------------------------
    def produce(self, memory: Any, until: float) -> None:
        """Add 1-3 messages to a random user every `add_every` seconds until `until`."""
        n = 0
        while time.monotonic() < until and not self.stop.is_set():
            user = random.choice(self.users)
            texts = [f"{user} note {n + i}: I keep item {n + i} in box {random.randint(1, 99)}"
                     for i in range(random.randint(1, 3))]
            n += len(texts)
            try:
                stored = memory.add_messages(user, texts)
                self.added[user].extend(m.id for m in stored)
            except Exception as exc:  # the store refused: counted as not added, reported
                self.result.problems.append(f"add_messages failed: {type(exc).__name__}: {exc}")
            time.sleep(self.args.add_every)

    def kill_loop(self, memory: Any, until: float) -> None:
        """Every `kill_every` seconds SIGKILL a random worker (noting its running users) and start another."""
        while not self.stop.wait(self.args.kill_every) and time.monotonic() < until:
            victim = random.choice(self.workers())
            try:
                running = {r.user_id for r in memory.jobs.status()
                           if r.state.value == "running" and str(r.summary.get("worker", "")).startswith(victim + "@")}
            except Exception:
                running = set()  # Redis is being restarted: no record to read
            at = time.monotonic()
            self.procs.kill(victim)
            self.result.kills += 1
            with self._lock:
                for user in running:
                    self.watch.append((at, user, self._consolidated(memory, user)))
            self.log(f"killed {victim} (running: {sorted(running) or '-'})")
            self.start_worker()

    def monitor(self, memory: Any) -> None:
        """Once a second, note the users that made progress since the kill that stopped their job."""
        while not self.stop.wait(1.0):
            with self._lock:
                waiting = list(self.watch)
            for entry in waiting:
                at, user, before = entry
                if self._consolidated(memory, user) > before or not self._pending(memory, user):
                    self.kill_to_progress.append(time.monotonic() - at)
                    with self._lock:
                        self.watch.remove(entry)

    def restart_redis(self, at: float) -> None:
        if self.stop.wait(max(0.0, at - time.monotonic())):
            return
        self.procs.kill("redis")
        time.sleep(2)
        self.start_redis()
        self.result.redis_restarts += 1
        self.log("restarted redis (its queue, locks and job records are gone)")

    @staticmethod
    def _consolidated(memory: Any, user: str) -> int:
        stats = memory.runtime.store.stats(user)
        return int(stats.total_messages - stats.pending_messages)

    @staticmethod
    def _pending(memory: Any, user: str) -> int:
        return int(memory.runtime.store.stats(user).pending_messages)

    # -- the whole run ----------------------------------------------------------------------------
    def run(self) -> SoakResult:
        from memscope.api import MemoryScope

        args = self.args
        self.start_redis()
        port = _free_port()
        model = [sys.executable, "-m", "tests.support.scripted_server", "--port", str(port), "--latency",
                 str(args.latency), "--default-mode", "consolidation", "--fault-rates", args.rates,
                 "--retry-after", "1", "--hang", str(LLM_TIMEOUT_S + 2), "--no-record"]
        self.procs.start("model", model, self.env, ready="listening")
        config = _config(self.folder, self.queue, f"http://127.0.0.1:{port}", self.redis_url, self.store_kind)
        self.config_env = dict(self.env, MEMSCOPE_CONFIG=str(config))
        for _ in range(args.workers):
            self.start_worker()
        beat = [sys.executable, "-m", "memscope.cli", "beat", f"--schedule={self.folder / 'beat-schedule'}"]
        self.procs.start("beat", beat, self.config_env, ready="beat: Starting")
        with MemoryScope(config, background=False) as memory:
            started = time.monotonic()
            until = started + args.minutes * 60
            threads = [
                threading.Thread(target=self.kill_loop, args=(memory, until), daemon=True),
                threading.Thread(target=self.monitor, args=(memory,), daemon=True),
                threading.Thread(target=self.restart_redis, args=(started + 0.4 * args.minutes * 60,), daemon=True),
            ]
            for thread in threads:
                thread.start()
            self.produce(memory, until)
            self.log("producing done; draining the backlog")
            drain_start = time.monotonic()
            deadline = drain_start + args.drain
            while any(self._pending(memory, u) for u in self.users) and time.monotonic() < deadline:
                time.sleep(1)
            wall = time.monotonic() - started
            self.result.drain_s = round(time.monotonic() - drain_start, 1)
            time.sleep(2)  # the monitor sees the last progress
            self.stop.set()
            for thread in threads:
                thread.join(timeout=20)
            self._tally(memory, wall)
        return self.result

    def _tally(self, memory: Any, wall: float) -> None:
        from memscope.models import MemoryStatus
        from memscope.stores.base import MemoryFilter, MessageFilter

        r, store = self.result, memory.runtime.store
        for user in self.users:
            messages = store.list_messages(user, MessageFilter())
            stored = {m.id for m in messages}
            pending = {m.id for m in messages if m.consolidated_at is None}
            cited: dict[str, int] = {}
            seen: set[tuple[str, tuple[str, ...]]] = set()
            for node in store.list_memories(user, MemoryFilter(statuses=(MemoryStatus.ACTIVE,))):
                key = (node.content, tuple(sorted(node.source_message_ids)))
                if key in seen:
                    r.duplicates += 1
                seen.add(key)
                for source in node.source_message_ids:
                    cited[source] = cited.get(source, 0) + 1
            missing = [i for i in self.added[user] if i not in stored]
            unremembered = [i for i in self.added[user] if i in stored and i not in pending and not cited.get(i)]
            r.duplicates += sum(n - 1 for n in cited.values() if n > 1)
            r.added += len(self.added[user])
            r.pending += len(pending)
            r.consolidated += len(stored) - len(pending)
            r.lost += len(missing) + len(pending) + len(unremembered)
            if missing or unremembered:
                r.problems.append(f"{user}: {len(missing)} not stored, {len(unremembered)} consolidated without memory")
        try:
            records = memory.jobs.status()
            r.failed_jobs = sum(1 for rec in records if rec.state.value == "failed")
            reasons = Counter((rec.error or "")[:160] for rec in records if rec.state.value == "failed")
            r.problems += [f"{n} failed job(s): {reason}" for reason, n in reasons.most_common(5)]
            r.lost_jobs = sum(1 for rec in records if rec.state.value == "lost")
        except Exception as exc:
            r.problems.append(f"could not read job records: {exc}")
        if self.watch:  # their messages still pending are counted as lost above
            r.problems.append(f"{len(self.watch)} killed users made no progress before the end")
        r.longest_kill_to_progress_s = round(max(self.kill_to_progress, default=0.0), 1)
        r.wall_s = round(wall, 1)
        r.messages_per_s = round(r.consolidated / wall, 2) if wall else 0.0

    def cleanup(self) -> None:
        self.stop.set()
        self.procs.stop()
        if self.store_kind == "elasticsearch":
            from memscope.stores.elasticsearch import ElasticsearchStore

            with ElasticsearchStore(os.environ["MEMSCOPE_ES_URL"], index_prefix=self.queue) as es:
                es.delete_indices()


def run_soak(minutes: float = 2.0, users: int = 8, workers: int = 3, kill_every: float = 20.0,
             rates: str = DEFAULT_RATES, latency: float = 0.05, drain: float = 180.0, store: str = "sqlite",
             log: Callable[[str], None] = lambda _: None, add_every: float = 0.3) -> SoakResult:
    """Run one soak against `store` ("sqlite" or "elasticsearch") and return what it measured."""
    args = argparse.Namespace(minutes=minutes, users=users, workers=workers, kill_every=kill_every, rates=rates,
                              latency=latency, drain=drain, add_every=add_every)
    with tempfile.TemporaryDirectory(prefix="memscope-soak-") as tmp:
        run = _Run(Path(tmp), args, store, log)
        try:
            return run.run()
        finally:
            run.cleanup()


COLUMNS = ["store", "added", "consolidated", "pending", "lost", "duplicates", "kills", "redis restarts",
           "longest kill->progress s", "drain s", "failed jobs", "lost jobs", "msgs/s", "wall s"]


def report(results: list[SoakResult], as_json: bool) -> int:
    """Print the results; 1 when any run lost or duplicated something."""
    rows = [[r.store, r.added, r.consolidated, r.pending, r.lost, r.duplicates, r.kills, r.redis_restarts,
             r.longest_kill_to_progress_s, r.drain_s, r.failed_jobs, r.lost_jobs, r.messages_per_s, r.wall_s]
            for r in results]
    emit("fault soak (celery workers, beat, Redis restart, model faults)", COLUMNS, rows,
         [asdict(r) | {"ok": r.ok} for r in results], as_json)
    if not as_json:
        for r in results:
            for problem in r.problems[:20]:
                print(f"  {r.store}: {problem}")
    return 0 if all(r.ok for r in results) else 1


def main(argv: list[str] | None = None) -> None:
    """Parse the options, run against SQLite (and Elasticsearch when MEMSCOPE_ES_URL is set), exit 1 on loss."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=20.0, help="seconds between worker kills")
    parser.add_argument("--rates", default=DEFAULT_RATES, help="model faults per call: 429, 500, timeout, invalid_json")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the model takes per answer")
    parser.add_argument("--drain", type=float, default=180.0, help="seconds to wait for the backlog at the end")
    parser.add_argument("--add-every", type=float, default=0.3, help="seconds between two adds of 1-3 messages")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    stores = ["sqlite"] + (["elasticsearch"] if os.environ.get("MEMSCOPE_ES_URL") else [])
    say = (lambda _: None) if args.json else (lambda text: print(f"[soak] {text}", file=sys.stderr, flush=True))
    results = [run_soak(args.minutes, args.users, args.workers, args.kill_every, args.rates, args.latency,
                        args.drain, store, say, args.add_every) for store in stores]
    sys.exit(report(results, args.json))


if __name__ == "__main__":
    main()
