"""`memscope bench ingest`: how fast `add_messages` acknowledges, embedded and with Celery over Redis.

Embedded: the default SQLite store with no LLM, so the call is only the durable write. Celery: the
same with `jobs.backend: celery`, so each call also queues a consolidation job in Redis; an LLM is
named (an unreachable 127.0.0.1 address, never called here) because jobs are only queued when one is
configured. The Celery row runs on a private Redis database and queue name, removed afterwards, and
reports "unavailable" with the reason when Redis or the dispatcher is not there.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import emit, peak_rss_mb, progress, summarize
from benchmarks.retrieval import SyntheticCorpus

__all__ = ["IngestRow", "run_ingest_bench"]

REDIS_URL = "redis://127.0.0.1:6379/15"


@dataclass
class IngestRow:
    """One mode's acknowledgement latency, or why it could not run."""

    mode: str
    messages: int
    latency: dict[str, float] | None = None
    throughput_per_s: float | None = None
    unavailable: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(self.__dict__)


def _time_adds(settings: dict[str, Any], messages: int, users: int, label: str, show: bool) -> IngestRow:
    from memscope.api import MemoryScope

    corpus = SyntheticCorpus(seed=11)
    texts = corpus.sentences(messages + 10)
    samples: list[float] = []
    with MemoryScope(settings, background=False) as memory:
        for n in range(10):  # warm-up: connections, prepared statements
            memory.add_messages(f"warm{n}", texts[n])
        started = time.perf_counter()
        with progress(f"add_messages ({label})", messages, show) as advance:
            for n, text in enumerate(texts[10:]):
                t0 = time.perf_counter()
                memory.add_messages(f"user{n % users:03d}", {"role": "user", "content": text}, session_id="s1")
                samples.append((time.perf_counter() - t0) * 1000)
                advance()
        elapsed = time.perf_counter() - started
    return IngestRow(label, messages, summarize(samples).to_dict(), round(messages / elapsed, 1))


def _redis_problem(url: str) -> str | None:
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2).ping()
    except Exception as exc:
        return f"Redis at {url} does not answer ({type(exc).__name__}: {exc})"
    try:
        import memscope.jobs.celery_dispatch  # noqa: F401
    except Exception as exc:
        return f"the Celery dispatcher cannot be imported ({type(exc).__name__}: {exc})"
    return None


def _cleanup_redis(url: str, queue: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
    keys = [*client.scan_iter(f"{queue}*"), *client.scan_iter(f"_kombu.binding.{queue}*")]
    if keys:
        client.delete(*keys)


def run_ingest_bench(messages: int = 1000, users: int = 10, show_progress: bool = True) -> list[IngestRow]:
    """Time `messages` single-message add_messages calls embedded, then with Celery if Redis answers."""
    rows: list[IngestRow] = []
    with tempfile.TemporaryDirectory(prefix="memscope-bench-") as tmp:
        base: dict[str, Any] = {
            "store": {"path": str(Path(tmp) / "embedded.db")},
            "llm": {"backend": "none"},
            "embedding": {"backend": "local"},  # never loaded: nothing embeds on this path
        }
        rows.append(_time_adds(base, messages, users, "embedded (sqlite, local jobs, no LLM)", show_progress))
        label = "celery over Redis (sqlite store)"
        problem = _redis_problem(REDIS_URL)
        if problem is not None:
            rows.append(IngestRow(label, 0, unavailable=problem))
            return rows
        queue = f"memscope-bench-{uuid.uuid4().hex[:8]}"
        celery = {
            **base,
            "store": {"path": str(Path(tmp) / "celery.db")},
            "jobs": {"backend": "celery", "celery": {"broker_url": REDIS_URL, "result_backend": REDIS_URL,
                                                     "queue": queue}},
            "llm": {"backend": "openai", "api_key": "bench-unused", "base_url": "http://127.0.0.1:9/v1",
                    "model": "bench-unused"},
        }  # fmt: skip
        try:
            rows.append(_time_adds(celery, messages, users, label, show_progress))
        except Exception as exc:
            rows.append(IngestRow(label, 0, unavailable=f"{type(exc).__name__}: {exc}"))
        finally:
            with contextlib.suppress(Exception):
                _cleanup_redis(REDIS_URL, queue)
    return rows


def report(rows: list[IngestRow], as_json: bool) -> None:
    """A rich table (one row per mode) or JSON."""
    table = []
    for r in rows:
        if r.latency is None:
            table.append([r.mode, "-", "-", "-", "-", "-", f"unavailable: {r.unavailable}"])
        else:
            lat = r.latency
            table.append([r.mode, r.messages, lat["p50"], lat["p95"], lat["p99"], lat["mean"], r.throughput_per_s])
    columns = ["mode", "calls", "p50 ms", "p95 ms", "p99 ms", "mean ms", "calls/s"]
    data = {"rows": [r.to_dict() for r in rows], "peak_rss_mb": round(peak_rss_mb(), 1)}
    emit("add_messages acknowledgement latency (one message per call)", columns, table, data, as_json)
