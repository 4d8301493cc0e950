"""`memscope bench serve`: requests/s and p50/p95 of retrieve and add over HTTP (a real `memscope serve`
process on 127.0.0.1) at 1, 8 and 32 concurrent clients, beside the in-process API in the same run.

One SQLite store, no LLM (so add is the durable write and retrieve makes no model call), the built-in
local embedder for queries. Each client is a thread: in-process it calls `MemoryScope`, over HTTP it
holds one keep-alive `httpx.Client` with an API key. Server and clients share the machine's cores.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import emit, summarize
from benchmarks.retrieval import SyntheticCorpus

__all__ = ["ServeRow", "report", "run_serve_bench"]

KEY = "bench-key-0123456789abcdef"


@dataclass
class ServeRow:
    """One (mode, operation, clients) cell."""

    mode: str
    operation: str
    clients: int
    requests: int
    per_s: float
    p50_ms: float
    p95_ms: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(self.__dict__)


def _drive(clients: int, requests: int, make_call: Callable[[int], Callable[[int], None]]) -> tuple[float, list[float]]:
    """Run `requests` calls spread over `clients` threads; returns (wall seconds, latencies in ms)."""
    samples: list[float] = []
    lock = threading.Lock()
    per_client = max(1, requests // clients)

    def worker(n: int) -> None:
        call = make_call(n)
        mine = []
        for i in range(per_client):
            t0 = time.perf_counter()
            call(i)
            mine.append((time.perf_counter() - t0) * 1000)
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, samples


def _row(mode: str, op: str, clients: int, wall: float, samples: list[float]) -> ServeRow:
    lat = summarize(samples)
    return ServeRow(mode, op, clients, len(samples), round(len(samples) / wall, 1), round(lat.p50, 2),
                    round(lat.p95, 2))  # fmt: skip


def _start_server(config: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MEMSCOPE_API_KEYS": f"admin={KEY}"}  # admin: the same user ids as in-process
    argv = [sys.executable, "-m", "memscope.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--config", str(config)]  # fmt: skip
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"memscope serve exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"memscope serve did not answer within {timeout}s")


def run_serve_bench(
    requests: int = 320, clients: tuple[int, ...] = (1, 8, 32), prefill: int = 500
) -> list[ServeRow]:
    """Every (mode, operation, clients) cell, in-process first, then over HTTP against the same store."""
    import httpx
    import yaml

    from memscope.api import MemoryScope

    corpus = SyntheticCorpus(seed=5)
    texts = corpus.sentences(prefill + 64)
    queries = [corpus.sentences(1)[0][:80] for _ in range(64)]
    rows: list[ServeRow] = []
    with tempfile.TemporaryDirectory(prefix="memscope-bench-serve-") as tmp:
        cfg = {"store": {"path": str(Path(tmp) / "bench.db")}, "llm": {"backend": "none"}}
        config = Path(tmp) / "memscope.yaml"
        config.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        with MemoryScope(cfg, background=False) as memory:
            for chunk in range(0, prefill, 100):
                memory.add_messages("reader", texts[chunk : chunk + 100])
            for query in queries[:10]:  # warm-up: the embedder and the store's caches
                memory.retrieve("reader", query)
            for n in clients:
                wall, lat = _drive(n, requests, lambda c: lambda i: memory.retrieve("reader", queries[(c + i) % 64]))
                rows.append(_row("in-process", "retrieve", n, wall, lat))
                wall, lat = _drive(n, requests, lambda c: lambda i: memory.add_messages(f"w{c}", texts[i % 64]))
                rows.append(_row("in-process", "add", n, wall, lat))

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        url = f"http://127.0.0.1:{port}"
        proc = _start_server(config, port)
        try:
            _wait_ready(url, proc)
            headers = {"Authorization": f"Bearer {KEY}"}
            with httpx.Client(base_url=url, headers=headers, timeout=120) as warm:
                for query in queries[:10]:
                    warm.post("/v1/retrieve", json={"user_id": "reader", "query": query}).raise_for_status()
            for n in clients:
                for op in ("retrieve", "add"):
                    http_clients: list[httpx.Client] = []

                    def make(c: int, op: str = op, http_clients: list[httpx.Client] = http_clients) -> Any:
                        client = httpx.Client(base_url=url, headers=headers, timeout=120)
                        http_clients.append(client)
                        if op == "retrieve":
                            return lambda i: client.post("/v1/retrieve", json={
                                "user_id": "reader", "query": queries[(c + i) % 64]}).raise_for_status()  # fmt: skip
                        return lambda i: client.post("/v1/messages", json={
                            "user_id": f"w{c}", "messages": [texts[i % 64]]}).raise_for_status()  # fmt: skip

                    wall, lat = _drive(n, requests, make)
                    rows.append(_row("HTTP", op, n, wall, lat))
                    for client in http_clients:
                        client.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return rows


def report(rows: list[ServeRow], as_json: bool) -> None:
    """A table (one row per cell) or JSON."""
    table = [[r.mode, r.operation, r.clients, r.requests, r.per_s, r.p50_ms, r.p95_ms] for r in rows]
    columns = ["mode", "operation", "clients", "requests", "req/s", "p50 ms", "p95 ms"]
    load = os.getloadavg()[0]
    emit(f"retrieve and add: in-process vs HTTP (load average {load:.1f})", columns, table,
         {"rows": [r.to_dict() for r in rows], "load_average": load}, as_json)  # fmt: skip
