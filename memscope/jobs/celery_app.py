"""The Celery app of the distributed mode, configured from memscope's settings (`jobs.celery`).

`celery -A memscope.jobs.celery_app worker` (or `memscope worker`) builds the app lazily from the
file named by `MEMSCOPE_CONFIG`; `make_celery(settings)` builds one for a given config (the
dispatcher of a MemoryScope does this). Everything memscope and kombu keep in Redis lives under the
prefix `<jobs.celery.queue>:` so several deployments can share one Redis database.

Reliability settings: `task_acks_late` and `task_reject_on_worker_lost` (a job whose worker dies is
delivered again; jobs are idempotent), `worker_prefetch_multiplier=1` (a worker reserves one job at a
time), JSON only, one explicit queue, soft/hard time limits from the config. Redis redelivers a job
that was not acknowledged within the visibility timeout, so that timeout is set above the hard time
limit, the lock TTL and the longest retry delay. A job that always hits the hard limit is delivered
again and again; the soft limit (which fails the job and records it) exists to stop that first.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from memscope.config import Settings, load_settings
from memscope.errors import JobError
from memscope.extras import install_hint
from memscope.redact import scrubbed_logger

try:
    import redis  # noqa: F401  (the broker's client, checked here too so its absence names the extra)
    from celery import Celery
except ImportError as exc:  # an extra: the embedded mode runs jobs in-process
    raise JobError(f"jobs.backend: celery needs Celery and Redis: {install_hint('celery')}") from exc

__all__ = [
    "REFLECT_DUE",
    "RUN_OPERATION",
    "SWEEP",
    "MemscopeCelery",
    "get_app",
    "key_namespace",
    "make_celery",
    "max_retry_delay_s",
]

RUN_OPERATION = "memscope.run_operation"
SWEEP = "memscope.sweep"
REFLECT_DUE = "memscope.reflect_due"
RETRY_DELAY_CAP_S = 300.0  # the longest backoff between two attempts of a transient failure
RESULT_EXPIRES_S = 24 * 3600
for _name in ("celery.app.trace", "celery.worker.request"):  # Celery logs failed tasks' tracebacks here
    scrubbed_logger(_name)


class MemscopeCelery(Celery):
    """A Celery app that carries the memscope settings it was made from (read by the tasks)."""

    memscope_settings: Settings


def key_namespace(settings: Settings) -> str:
    """The prefix of every key memscope puts in Redis: the queue name (`jobs.celery.queue`)."""
    return settings.jobs.celery.queue


def max_retry_delay_s(settings: Settings) -> float:
    """The longest a job waits between attempts: transient backoff or a busy user lock."""
    return min(RETRY_DELAY_CAP_S, float(settings.jobs.celery.lock_ttl_s))


def make_celery(settings: Settings | None = None, *, set_as_current: bool = False) -> MemscopeCelery:
    """A Celery app configured from `settings` (None: MEMSCOPE_CONFIG, else the defaults)."""
    s = load_settings(settings)
    c = s.jobs.celery
    prefix = f"{key_namespace(s)}:"
    app = MemscopeCelery(
        "memscope",
        broker=c.broker_url,
        backend=c.result_backend,
        include=["memscope.jobs.tasks"],
        set_as_current=set_as_current,
    )
    app.memscope_settings = s
    visibility = int(max(c.time_limit_s, c.lock_ttl_s, RETRY_DELAY_CAP_S) + 60)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_default_queue=c.queue,
        task_routes={"memscope.*": {"queue": c.queue}},
        task_soft_time_limit=float(c.soft_time_limit_s),
        task_time_limit=float(c.time_limit_s),
        task_track_started=True,
        result_expires=RESULT_EXPIRES_S,
        result_extended=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "global_keyprefix": prefix,
            "visibility_timeout": visibility,
            "socket_connect_timeout": 5,
            "socket_timeout": 30,
        },
        result_backend_transport_options={"global_keyprefix": prefix},
        redis_socket_connect_timeout=5,
        redis_socket_timeout=30,
        timezone="UTC",
        enable_utc=True,
        beat_schedule=beat_schedule(s),
    )
    return app


def beat_schedule(settings: Settings) -> dict[str, Any]:
    """The sweep (re-enqueue users with pending messages) and the reflection schedule."""
    jobs = settings.jobs
    queue = jobs.celery.queue
    return {
        "memscope-sweep": {
            "task": SWEEP,
            "schedule": timedelta(seconds=float(jobs.sweep_interval_s)),
            "options": {"queue": queue, "expires": float(jobs.sweep_interval_s)},
        },
        "memscope-reflect-due": {
            "task": REFLECT_DUE,
            "schedule": timedelta(seconds=float(jobs.reflect_interval_s)),
            "options": {"queue": queue, "expires": float(jobs.reflect_interval_s)},
        },
    }


_app: MemscopeCelery | None = None


def get_app() -> MemscopeCelery:
    """The process's app, built on first use from MEMSCOPE_CONFIG (what `celery -A` and the CLI use)."""
    global _app
    if _app is None:
        _app = make_celery(None, set_as_current=True)
    return _app


def __getattr__(name: str) -> Any:
    """`memscope.jobs.celery_app.app` is built lazily, so importing this module reads no config."""
    if name == "app":
        return get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
