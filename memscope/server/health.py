"""Readiness: can this process reach its store, its Redis (Celery mode) and its model server?"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any
from urllib.parse import urlsplit

from memscope.api import MemoryScope
from memscope.redact import scrub

__all__ = ["readiness"]

PROBE_USER = "__memscope_readyz__"


def _store(memory: MemoryScope) -> str:
    memory.runtime.store.stats(PROBE_USER)
    return "ok"


def _redis(memory: MemoryScope) -> str:
    from memscope.jobs.celery_dispatch import redis_client

    client = redis_client(memory.settings.jobs.celery.broker_url)
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


def _model(memory: MemoryScope, timeout_s: float) -> str:
    llm: Any = memory.runtime.llm
    if llm is None:
        return "not configured (messages stay pending)"
    url = getattr(llm, "base_url", None)
    if not url:
        return "ok (provider default URL, not probed)"
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout_s):
        return "ok"


def readiness(memory: MemoryScope, timeout_s: float) -> dict[str, str]:
    """One entry per dependency: "ok", a note, or "unavailable: why" (each check bounded by `timeout_s`)."""
    checks: dict[str, Any] = {"store": lambda: _store(memory), "model": lambda: _model(memory, timeout_s)}
    if memory.settings.jobs.backend == "celery":
        checks["redis"] = lambda: _redis(memory)
    results: dict[str, str] = {}
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="memscope-readyz")
    try:
        futures = {name: pool.submit(check) for name, check in checks.items()}
        for name, future in futures.items():
            try:
                results[name] = future.result(timeout=timeout_s)
            except FutureTimeout:
                results[name] = f"unavailable: no answer within {timeout_s:g}s"
            except Exception as exc:
                results[name] = scrub(f"unavailable: {type(exc).__name__}: {exc}")[:300]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return results
