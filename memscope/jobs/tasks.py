"""The Celery tasks, thin: per-process Runtime, the user's Redis lock, `run_job`, and the job record.

Retries: only transient failures (model or store unreachable, Redis connection errors) are retried,
with exponential backoff and full jitter, up to `jobs.celery.max_retries` times; a busy user lock
(another job of the user is running) is waited for with short jittered delays that do not use up
that budget. Anything else, or a transient failure past the budget, is recorded as failed with its
error in the job book and raised, so Celery records it too. Nothing is swallowed.
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

import redis
from celery import Task, shared_task
from celery.signals import worker_process_shutdown

from memscope.config import Settings, load_settings
from memscope.errors import JobError, ModelUnavailable, StoreUnavailable
from memscope.jobs.base import CONSOLIDATE, JobState
from memscope.jobs.celery_app import REFLECT_DUE, RUN_OPERATION, SWEEP, key_namespace, max_retry_delay_s
from memscope.jobs.celery_dispatch import CeleryDispatcher, redis_client
from memscope.jobs.logic import run_job, summarize
from memscope.jobs.redis_lock import RedisLock, compare_and_delete
from memscope.jobs.status_book import JobBook
from memscope.models import utcnow
from memscope.redact import scrub, scrubbed_logger
from memscope.runtime import Runtime

__all__ = ["LockBusy", "reflect_due", "retry_delay", "run_operation", "sweep", "transient_cause", "worker_runtime"]

log = scrubbed_logger("memscope.jobs")
LOCK_WAIT_CAP_S = 30.0


class LockBusy(JobError):
    """Another job of this user holds the user's lock; this one runs later, never concurrently."""


TRANSIENT: tuple[type[BaseException], ...] = (
    ModelUnavailable,
    StoreUnavailable,
    redis.ConnectionError,
    redis.TimeoutError,
    LockBusy,
)

_state: dict[str, Any] = {}
_state_lock = threading.Lock()


def _settings_of(app: Any) -> Settings:
    settings = getattr(app, "memscope_settings", None)
    return settings if isinstance(settings, Settings) else load_settings()


def _process_state(app: Any) -> dict[str, Any]:
    """This process's Runtime and dispatcher, built on first use (after the pool forked)."""
    with _state_lock:
        if _state.get("pid") != os.getpid():
            _state.clear()
            runtime = Runtime(_settings_of(app))
            _state.update(pid=os.getpid(), runtime=runtime, dispatcher=CeleryDispatcher(runtime, app=app))
        return _state


def worker_runtime(app: Any) -> Runtime:
    """The Runtime of this worker process, built once from the settings the app was made with."""
    return _process_state(app)["runtime"]  # type: ignore[no-any-return]


def _dispatcher(app: Any) -> CeleryDispatcher:
    return _process_state(app)["dispatcher"]  # type: ignore[no-any-return]


@worker_process_shutdown.connect
def _close_runtime(**_: Any) -> None:
    with _state_lock:
        if _state.get("pid") == os.getpid():
            _state["runtime"].close()
            _state.clear()


def transient_cause(exc: BaseException) -> BaseException | None:
    """The transient error in `exc`'s cause chain (operation errors wrap the worker's), or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, TRANSIENT):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def retry_delay(attempt: int, cap: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, 2**attempt)] seconds."""
    return random.uniform(0.0, min(cap, 2.0 ** min(attempt, 30)))


def _describe(exc: BaseException) -> str:
    return scrub(f"{type(exc).__name__}: {exc}")


def _note(dispatcher: CeleryDispatcher, job_id: str, **changes: Any) -> None:
    """Update the job record; a Redis outage here is logged, the job's own outcome still counts."""
    try:
        dispatcher.book.update(job_id, **changes)
    except redis.RedisError as exc:
        log.warning("could not update the record of job %s: %s", job_id, exc)


def _runtime_failed(task: Task, job_id: str, attempt: int, exc: Exception) -> None:
    """The worker could not build its Runtime: retry if transient, else record the job failed."""
    settings = _settings_of(task.app)
    transient = transient_cause(exc) is not None and attempt < settings.jobs.celery.max_retries
    book = JobBook(redis_client(settings.jobs.celery.broker_url), key_namespace(settings))
    error = f"the worker could not start memscope: {_describe(exc)}"
    try:
        if transient:
            book.update(job_id, state=JobState.QUEUED, error=error)
        else:
            book.update(job_id, state=JobState.FAILED, finished_at=utcnow(), error=error)
    except redis.RedisError as book_exc:
        log.warning("could not update the record of job %s: %s", job_id, book_exc)
    finally:
        book.client.close()
    log.error("job %s: %s", job_id, error, exc_info=exc)
    if transient:
        delay = retry_delay(attempt, max_retry_delay_s(settings))
        raise task.retry(countdown=delay, exc=exc) from exc


@shared_task(bind=True, name=RUN_OPERATION, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def run_operation(
    self: Task,
    operation: str,
    user_id: str,
    agent_id: str | None = None,
    lock_waits: int = 0,
    lock_wait_since: float | None = None,
) -> dict[str, Any]:
    """Run `operation` for the user under the user's lock; returns the job summary."""
    job_id = str(self.request.id)
    attempt = int(self.request.retries) - lock_waits  # earlier attempts that failed transiently
    try:
        runtime, dispatcher = worker_runtime(self.app), _dispatcher(self.app)
    except Exception as exc:  # e.g. the store is unreachable, or the config names a bad model
        _runtime_failed(self, job_id, attempt, exc)
        raise
    celery = runtime.settings.jobs.celery
    lock = RedisLock(dispatcher.redis, dispatcher.namespace, user_id, float(celery.lock_ttl_s))
    args = [operation, user_id, agent_id]
    worker_name = str(self.request.hostname or "")
    try:
        if not lock.acquire():
            raise LockBusy(f"another job of user {user_id!r} is running")
        try:
            compare_and_delete(dispatcher.redis, dispatcher.queued_key(operation, user_id, agent_id), job_id)
            _note(dispatcher, job_id, state=JobState.RUNNING, started_at=utcnow(), attempts=attempt + 1,
                  summary={"worker": worker_name})
            with lock.keep_alive():
                reports = run_job(runtime, operation, user_id, agent_id)
        finally:
            try:
                lock.release()
            except redis.RedisError as exc:  # it expires after its TTL
                log.warning("could not release the lock of user %r: %s", user_id, exc)
    except LockBusy as exc:
        since = lock_wait_since or time.time()
        give_up_s = 2 * float(celery.lock_ttl_s) + float(celery.time_limit_s)
        if time.time() - since > give_up_s:
            error = f"gave up after waiting {give_up_s:.0f}s for the user's lock (the sweep will queue it again)"
            _note(dispatcher, job_id, state=JobState.FAILED, finished_at=utcnow(), error=error)
            raise JobError(error) from exc
        delay = 0.2 + retry_delay(lock_waits, min(LOCK_WAIT_CAP_S, max_retry_delay_s(runtime.settings)))
        kwargs: dict[str, Any] = {"lock_waits": lock_waits + 1, "lock_wait_since": since}
        raise self.retry(args=args, kwargs=kwargs, countdown=delay, exc=exc) from exc
    except Exception as exc:
        if transient_cause(exc) is not None and attempt < celery.max_retries:
            delay = retry_delay(attempt, max_retry_delay_s(runtime.settings))
            error = f"attempt {attempt + 1} failed, retrying in {delay:.1f}s: {_describe(exc)}"
            _note(dispatcher, job_id, state=JobState.QUEUED, error=error)
            log.warning("job %s %s for %r: %s", job_id, operation, user_id, error)
            same_waits = {"lock_waits": lock_waits, "lock_wait_since": None}
            raise self.retry(args=args, kwargs=same_waits, countdown=delay, exc=exc) from exc
        error = _describe(exc)
        if transient_cause(exc) is not None:
            error = f"gave up after {attempt + 1} attempts: {error}"
        _note(dispatcher, job_id, state=JobState.FAILED, finished_at=utcnow(), error=error)
        log.error("job %s %s for %r failed: %s", job_id, operation, user_id, error, exc_info=exc)
        raise
    summary = {**summarize(reports), "worker": worker_name}
    _note(dispatcher, job_id, state=JobState.SUCCEEDED, finished_at=utcnow(), summary=summary, error=None)
    if operation == CONSOLIDATE:
        try:
            dispatcher.note_consolidated(user_id, agent_id)
        except redis.RedisError as exc:
            log.warning("could not note %r for the next reflection round: %s", user_id, exc)
    return summary


@shared_task(bind=True, name=SWEEP)
def sweep(self: Task) -> int:
    """Queue consolidation for every user with pending messages (beat, every `jobs.sweep_interval_s`)."""
    return _dispatcher(self.app).sweep()


@shared_task(bind=True, name=REFLECT_DUE)
def reflect_due(self: Task) -> int:
    """Queue reflection for users consolidated since the last round (beat, every `jobs.reflect_interval_s`)."""
    return _dispatcher(self.app).reflect_due()
