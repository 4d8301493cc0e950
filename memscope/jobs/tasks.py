"""The Celery tasks, thin: per-process Runtime, the user's Redis lock and store lease, `run_job`, and
the job record.

A job runs only on the store it was queued for (refused otherwise, naming both stores), holds the
user's Redis lock and the user's lease in the store (its fence: a job that lost it cannot write),
both kept alive with the record's heartbeat every third of `jobs.celery.lock_ttl_s`. A job whose
starts keep ending without reaching this code (killed worker, hard time limit) is stopped after
`jobs.celery.max_attempts` (`attempts`).

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
from memscope.engine import RunReport
from memscope.errors import JobError, LeaseLost, ModelUnavailable, StoreUnavailable
from memscope.jobs.base import CONSOLIDATE, JobState
from memscope.jobs.celery_app import REFLECT_DUE, RUN_OPERATION, SWEEP, key_namespace, max_retry_delay_s
from memscope.jobs.celery_dispatch import CeleryDispatcher, redis_client
from memscope.jobs.lease import UserLease, holder_name, kept_alive
from memscope.jobs.logic import run_job, summarize
from memscope.jobs.redis_lock import RedisLock, compare_and_delete
from memscope.jobs.status_book import JobBook
from memscope.models import utcnow
from memscope.redact import scrub, scrubbed_logger
from memscope.runtime import Runtime

__all__ = ["LockBusy", "reflect_due", "retry_delay", "run_operation", "sweep", "transient_cause", "worker_runtime"]

log = scrubbed_logger("memscope.jobs")
LOCK_WAIT_CAP_S = 5.0  # a waiting job looks again soon: a dead holder's lock expires within its TTL


class LockBusy(JobError):
    """Another job of this user holds the user's lock; this one runs later, never concurrently."""


TRANSIENT: tuple[type[BaseException], ...] = (
    ModelUnavailable,
    StoreUnavailable,
    LeaseLost,  # another job took the user over; this one runs again later and finds what is left
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
    store_id: str | None = None,
    store: str | None = None,
) -> dict[str, Any]:
    """Run `operation` for the user under the user's lock and store lease; returns the job summary."""
    job_id = str(self.request.id)
    attempt = int(self.request.retries) - lock_waits  # earlier attempts that failed transiently
    try:
        runtime, dispatcher = worker_runtime(self.app), _dispatcher(self.app)
    except Exception as exc:  # e.g. the store is unreachable, or the config names a bad model
        _runtime_failed(self, job_id, attempt, exc)
        raise
    celery = runtime.settings.jobs.celery
    origin: dict[str, Any] = {"store_id": store_id, "store": store}
    args = [operation, user_id, agent_id]
    worker_name = str(self.request.hostname or "")
    ttl = float(celery.lock_ttl_s)
    lock = RedisLock(dispatcher.redis, dispatcher.namespace, user_id, ttl)
    lease = UserLease(runtime.store, user_id, holder_name(job_id), ttl)
    try:
        _refuse_other_store(dispatcher, job_id, store_id, store)  # JobError: recorded failed below, not retried
        _stop_poison(dispatcher, job_id, operation, user_id, agent_id)
        if not lock.acquire():
            raise LockBusy(f"another job of user {user_id!r} is running")
        try:
            if not lease.acquire():
                raise LockBusy(f"another job of user {user_id!r} holds the user's lease in the store")
            reports = _run_leased(dispatcher, job_id, args, attempt, worker_name, lock, lease)
        finally:
            lease.release()
            try:
                lock.release()
            except redis.RedisError as exc:  # it expires after its TTL
                log.warning("could not release the lock of user %r: %s", user_id, exc)
    except LockBusy as exc:
        since = lock_wait_since or time.time()
        give_up_s = 2 * ttl + float(celery.time_limit_s)
        if time.time() - since > give_up_s:
            error = f"gave up after waiting {give_up_s:.0f}s for the user's lock (the sweep will queue it again)"
            _note(dispatcher, job_id, state=JobState.FAILED, finished_at=utcnow(), error=error)
            raise JobError(error) from exc
        delay = 0.2 + retry_delay(lock_waits, min(LOCK_WAIT_CAP_S, max_retry_delay_s(runtime.settings)))
        kwargs: dict[str, Any] = {"lock_waits": lock_waits + 1, "lock_wait_since": since, **origin}
        raise self.retry(args=args, kwargs=kwargs, countdown=delay, exc=exc) from exc
    except Exception as exc:
        if transient_cause(exc) is not None and attempt < celery.max_retries:
            delay = retry_delay(attempt, max_retry_delay_s(runtime.settings))
            error = f"attempt {attempt + 1} failed, retrying in {delay:.1f}s: {_describe(exc)}"
            _note(dispatcher, job_id, state=JobState.QUEUED, error=error)
            log.warning("job %s %s for %r: %s", job_id, operation, user_id, error)
            same_waits = {"lock_waits": lock_waits, "lock_wait_since": None, **origin}
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


def _run_leased(
    dispatcher: CeleryDispatcher, job_id: str, args: list[Any], attempt: int, worker_name: str,
    lock: RedisLock, lease: UserLease,
) -> list[RunReport]:
    """Run the job holding the lock and lease: its start is counted (poison), its record heartbeats."""
    operation, user_id, agent_id = args
    dispatcher.attempts.start(operation, user_id, agent_id)
    try:
        compare_and_delete(dispatcher.redis, dispatcher.queued_key(operation, user_id, agent_id), job_id)
        now = utcnow()
        _note(dispatcher, job_id, state=JobState.RUNNING, started_at=now, heartbeat_at=now, attempts=attempt + 1,
              finished_at=None, summary={"worker": worker_name})

        def heartbeat() -> None:
            _note(dispatcher, job_id, heartbeat_at=utcnow())

        with kept_alive(lease.ttl_s / 3, lock.extend, lease.renew, heartbeat):
            return run_job(dispatcher.runtime, operation, user_id, agent_id, lease.fence)
    finally:
        try:
            dispatcher.attempts.finish(operation, user_id, agent_id)
        except redis.RedisError as exc:
            log.warning("could not clear the unfinished starts of job %s: %s", job_id, exc)


def _refuse_other_store(dispatcher: CeleryDispatcher, job_id: str, store_id: str | None, store: str | None) -> None:
    """Raise JobError (recorded, never retried) for a job queued for another store than this worker's."""
    mine = dispatcher.store_id
    if store_id is None or store_id == mine:
        return
    error = (
        f"this job was queued for the store {store or '?'} (store id {store_id}), but this worker is configured"
        f" with the store {dispatcher.store_label} (store id {mine}); run the API and the workers with the same"
        " store settings (one store per deployment)"
    )
    raise JobError(error)


def _stop_poison(dispatcher: CeleryDispatcher, job_id: str, operation: str, user_id: str, agent_id: str | None) -> None:
    """Past `max_attempts` starts that never finished, park the work and raise JobError (recorded failed)."""
    limit = dispatcher.runtime.settings.jobs.celery.max_attempts
    try:
        unfinished = dispatcher.attempts.unfinished(operation, user_id, agent_id)
    except redis.RedisError as exc:
        log.warning("could not read the unfinished starts of job %s: %s", job_id, exc)
        return
    if unfinished < limit:
        return
    time_limit = dispatcher.runtime.settings.jobs.celery.time_limit_s
    error = (
        f"stopped after {unfinished} attempts that never finished: each killed its worker or hit the hard time"
        f" limit (jobs.celery.time_limit_s={time_limit}); its messages stay pending. Fix the cause, then run"
        f" `memscope jobs retry {job_id}`"
    )
    dispatcher.attempts.park(job_id, operation, user_id, agent_id)
    raise JobError(error)


@shared_task(bind=True, name=SWEEP)
def sweep(self: Task) -> int:
    """Queue consolidation for every user with pending messages (beat, every `jobs.sweep_interval_s`)."""
    return _dispatcher(self.app).sweep()


@shared_task(bind=True, name=REFLECT_DUE)
def reflect_due(self: Task) -> int:
    """Queue reflection for users consolidated since the last round (beat, every `jobs.reflect_interval_s`)."""
    return _dispatcher(self.app).reflect_due()
