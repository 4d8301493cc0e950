"""Fixtures of the job tests: our own Redis key namespace (DB 13), real OS processes (scripted model
server, celery workers, beat, a private redis-server) that are always killed at teardown, and a
config file written per test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from memscope.models import MemoryStatus
from memscope.stores.base import MemoryFilter, MessageFilter, Store
from tests.support.scripted_server import RemoteScript
from tests.support.services import service_missing

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/13"  # a database of our own; only our key prefix is ever deleted


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, on_fail: Callable[[], str] = str) -> Any:
    """Poll `predicate` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{on_fail()}")
        time.sleep(0.1)


class Processes:
    """OS processes started by one test, each in its own session; all are killed at teardown."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str], ready: str | None = None,
              timeout: float = 60) -> subprocess.Popen[bytes]:
        """Start `argv` logging to `<name>.log`; with `ready`, wait until that text appears in the log."""
        log = (self.folder / f"{name}.log").open("ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                start_new_session=True)
        log.close()
        self.procs[name] = proc
        if ready is not None:
            def is_ready() -> bool:
                if proc.poll() is not None:
                    pytest.fail(f"{name} exited with {proc.returncode}:\n{self.log(name)}")
                return ready in self.log(name)

            wait_for(is_ready, timeout, f"{name} to start", lambda: self.log(name))
        return proc

    def log(self, name: str, tail: int = 4000) -> str:
        """The end of a process's output."""
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def logs(self) -> str:
        """The end of every process's output, for failure messages."""
        return "\n".join(f"--- {name} ---\n{self.log(name, 2000)}" for name in self.procs)

    def kill(self, name: str, sig: int = signal.SIGKILL, timeout: float = 15) -> None:
        """Send `sig` to the process and its children (its whole session) and reap it."""
        proc = self.procs.pop(name)
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)

    def stop_all(self) -> None:
        """Terminate everything still running (SIGTERM, then SIGKILL after a grace period)."""
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM, timeout=10)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    """Processes of this test, killed at teardown even when the test fails."""
    group = Processes(tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


def child_env(config: Path | None = None) -> dict[str, str]:
    """The environment of a child process: this one's (already isolated), the repo on the path, a config."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("MEMSCOPE_CONFIG", None)
    if config is not None:
        env["MEMSCOPE_CONFIG"] = str(config)
    return env


def redis_client(url: str = REDIS_URL) -> redis.Redis:
    """A client of the test database, or a skip when no Redis runs on 127.0.0.1:6379."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        service_missing(f"these tests need Redis on 127.0.0.1:6379 ({exc})", "bash scripts/redis.sh start")
    return client


@pytest.fixture
def namespace() -> Iterator[str]:
    """A key prefix (and queue name) of this test's own; its keys are deleted afterwards."""
    client = redis_client()
    name = f"mstest-{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        keys = list(client.scan_iter(match=f"{name}*", count=500))
        if keys:
            client.delete(*keys)
        client.close()


def start_model_server(procs: Processes, latency: float = 0.0, mode: str = "consolidation") -> RemoteScript:
    """The scripted model server as its own process, answering any consolidation prompt plausibly."""
    port = free_port()
    argv = [sys.executable, "-m", "tests.support.scripted_server", "--port", str(port),
            "--latency", str(latency), "--default-mode", mode]
    procs.start("model", argv, child_env(), ready="listening")
    return RemoteScript(f"http://127.0.0.1:{port}")


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def write_config(folder: Path, namespace: str, model_url: str, broker: str = REDIS_URL,
                 **overrides: Any) -> Path:
    """A celery-mode config: SQLite file in `folder`, queue `namespace`, models at the scripted server."""
    data: dict[str, Any] = {
        "store": {"backend": "sqlite", "path": str(folder / "memscope.db")},
        "jobs": {
            "backend": "celery",
            "celery": {"broker_url": broker, "result_backend": broker, "queue": namespace,
                       "soft_time_limit_s": 60, "time_limit_s": 90, "max_retries": 1, "lock_ttl_s": 4},
            "sweep_interval_s": 60,
            "reflect_min_observations": 1000,  # these tests are about consolidation
        },
        "llm": {"backend": "openai", "base_url": f"{model_url}/v1", "api_key": "dummy-key",
                "model": "gpt-4o-mini", "max_retries": 0, "timeout_s": 20},
        "embedding": {"backend": "openai", "base_url": f"{model_url}/v1", "api_key": "dummy-key",
                      "model": "text-embedding-3-small", "dim": 64},
    }
    path = folder / "memscope.yaml"
    path.write_text(yaml.safe_dump(_merge(data, overrides), sort_keys=False), encoding="utf-8")
    return path


def start_worker(procs: Processes, name: str, config: Path, queue: str, cli: bool = False) -> None:
    """A real celery worker (prefork, one child) consuming `queue`; `cli` starts it via `memscope worker`."""
    celery_args = [f"--hostname={name}@%h", "--without-mingle", "--without-gossip", "--without-heartbeat"]
    if cli:
        argv = [sys.executable, "-m", "memscope.cli", "worker", "--concurrency=1", f"--queues={queue}",
                "--", *celery_args]
    else:
        argv = [sys.executable, "-m", "celery", "-A", "memscope.jobs.celery_app", "worker", "--loglevel=INFO",
                "--concurrency=1", f"--queues={queue}", *celery_args]
    procs.start(name, argv, child_env(config), ready=" ready.")


def consolidation_problems(store: Store, user_id: str, expected_messages: int) -> list[str]:
    """What breaks 'every message consolidated exactly once' for one user (empty when all is well).

    The scripted model gives one observation per user message, so each message is the source of
    exactly one active observation, each observation is written once (one `add` event), and no two
    active memories share content and sources.
    """
    problems = []
    messages = store.list_messages(user_id, MessageFilter())
    if len(messages) != expected_messages:
        problems.append(f"{user_id}: {len(messages)} messages stored, expected {expected_messages}")
    pending = [m.id for m in messages if m.consolidated_at is None]
    if pending:
        problems.append(f"{user_id}: {len(pending)} messages still pending")
    active = store.list_memories(user_id, MemoryFilter(statuses=(MemoryStatus.ACTIVE,)))
    seen: dict[tuple[str, tuple[str, ...]], str] = {}
    cited: dict[str, int] = {}
    for node in active:
        key = (node.content, tuple(sorted(node.source_message_ids)))
        if key in seen:
            problems.append(f"{user_id}: memories {seen[key]} and {node.id} share content and sources")
        seen[key] = node.id
        for source in node.source_message_ids:
            cited[source] = cited.get(source, 0) + 1
        adds = [e for e in store.history(user_id, node.id) if e.kind.value == "add"]
        if len(adds) != 1:
            problems.append(f"{user_id}: memory {node.id} was added {len(adds)} times")
    for message in messages:
        if message.role.value == "user" and cited.get(message.id, 0) != 1:
            problems.append(f"{user_id}: message {message.id} is the source of {cited.get(message.id, 0)} memories")
    return problems
