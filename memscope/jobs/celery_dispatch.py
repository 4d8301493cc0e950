"""The distributed job backend: jobs go to Celery workers over Redis; their records live in Redis too.

`submit` sends the task `memscope.run_operation` by name with ids only (operation, user, agent) and
reuses a job of the same operation and user still waiting in the queue (a short-lived Redis key, so a
queue message lost with a Redis restart blocks nothing for long: the sweep re-enqueues the user).
`wait` follows the Celery result and must never run inside a task. `status` reads the job book.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from memscope.config import settings_to_dict
from memscope.errors import JobError
from memscope.extras import install_hint

try:
    import redis
    from celery.exceptions import TimeoutError as CeleryTimeout
    from celery.result import AsyncResult
    from kombu.exceptions import KombuError
except ImportError as exc:  # an extra: the embedded mode runs jobs in-process
    raise JobError(f"jobs.backend: celery needs Celery and Redis: {install_hint('celery')}") from exc

from memscope.jobs.attempts import AttemptLog
from memscope.jobs.base import CONSOLIDATE, FINAL_STATES, JobRecord, JobState
from memscope.jobs.celery_app import RUN_OPERATION, MemscopeCelery, key_namespace, make_celery
from memscope.jobs.logic import queue_pending, queue_reflections
from memscope.jobs.redis_lock import compare_and_delete, hashed_key
from memscope.jobs.status_book import JobBook
from memscope.models import new_id, utcnow
from memscope.runtime import Runtime, store_label

__all__ = ["CeleryDispatcher", "redis_client"]

log = logging.getLogger("memscope.jobs")
MIN_DEDUPE_TTL_S = 5


def redis_client(url: str) -> redis.Redis:
    """A Redis client that fails fast when the server is down (no request may hang on it)."""
    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)


class CeleryDispatcher:
    """Queues jobs on Celery workers; per-job records (with errors) are kept in Redis."""

    def __init__(self, runtime: Runtime, *, app: MemscopeCelery | None = None) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.app = app or make_celery(settings)
        self._owns_app = app is None
        self.namespace = key_namespace(settings)
        self.queue = settings.jobs.celery.queue
        self.redis = redis_client(settings.jobs.celery.broker_url)
        self._shown_url = settings_to_dict(settings)["jobs"]["celery"]["broker_url"]  # password masked
        self.book = JobBook(self.redis, self.namespace)
        self.attempts = AttemptLog(self.redis, self.namespace)
        self.store_label = store_label(settings)
        self._store_id: str | None = None
        self.dedupe_ttl_s = max(MIN_DEDUPE_TTL_S, int(settings.jobs.sweep_interval_s))
        self._recent_key = f"{self.namespace}:recent"
        self._closed = False

    @property
    def store_id(self) -> str:
        """The identity of this dispatcher's store; every job carries it, workers check it."""
        if self._store_id is None:
            self._store_id = self.runtime.store.store_id()
        return self._store_id

    # -- submitting ------------------------------------------------------------------------------
    def queued_key(self, operation: str, user_id: str, agent_id: str | None) -> str:
        """The dedupe key naming the job of (operation, user, agent) still waiting in the queue."""
        return hashed_key(self.namespace, "queued", operation, user_id, agent_id)

    def submit(self, operation: str, user_id: str, agent_id: str | None = None) -> str:
        """Queue a job; a job of the same operation and user still waiting to start is reused."""
        if self._closed:
            raise JobError("the job dispatcher is closed; open a new MemoryScope to queue work")
        key = self.queued_key(operation, user_id, agent_id)
        with self._redis_errors("queue a job"):
            for _ in range(3):
                existing = self._claim(key)
                if existing is not None:
                    return existing
                job_id = new_id()
                if self.redis.set(key, job_id, nx=True, ex=self.dedupe_ttl_s):
                    break  # a new job; otherwise another submitter just won: reuse theirs
            else:
                raise JobError(f"could not queue {operation} for {user_id!r}: the dedupe key kept changing")
            self.book.put(JobRecord(operation=operation, user_id=user_id, agent_id=agent_id, id=job_id))
        try:
            origin = {"store_id": self.store_id, "store": self.store_label}
            self.app.send_task(
                RUN_OPERATION, args=[operation, user_id, agent_id], kwargs=origin, task_id=job_id, queue=self.queue
            )
        except (KombuError, redis.RedisError, OSError) as exc:
            self._forget(key, job_id, exc)
            raise JobError(f"could not queue {operation} for {user_id!r} on {self._where()}: {exc}") from exc
        return job_id

    def _claim(self, key: str) -> str | None:
        """The id of a still-queued job under `key`; None when there is none (stale keys are removed)."""
        raw = self.redis.get(key)
        if raw is None:
            return None
        job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        record = self.book.get(job_id)
        if record is None or record.state is JobState.QUEUED:
            return job_id  # queued (a record missing for a moment is being written by its submitter)
        compare_and_delete(self.redis, key, job_id)  # its task started or ended without clearing it
        return None

    def _forget(self, key: str, job_id: str, exc: BaseException) -> None:
        try:
            compare_and_delete(self.redis, key, job_id)
            self.book.update(job_id, state=JobState.FAILED, finished_at=utcnow(), error=f"not queued: {exc}")
        except redis.RedisError:
            pass  # Redis is down too; the key expires and the sweep re-enqueues the user

    # -- waiting and status ----------------------------------------------------------------------
    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        """Block until the job ends or `timeout` seconds pass; returns its record either way.

        Never call this inside a Celery task (a worker waiting on another job can deadlock the pool).
        """
        from celery import current_task

        if current_task and current_task.request.id:
            raise JobError("do not wait for a job inside a Celery task; queue it and return instead")
        record = self._record(job_id)
        if record.state in FINAL_STATES:
            return record
        try:
            AsyncResult(job_id, app=self.app).get(timeout=timeout, propagate=False, interval=0.1)
        except CeleryTimeout:
            pass
        except (KombuError, redis.RedisError, OSError) as exc:
            raise JobError(f"lost the result backend while waiting for job {job_id}: {exc}") from exc
        return self._record(job_id)

    def _record(self, job_id: str) -> JobRecord:
        with self._redis_errors("read the job record"):
            record = self.book.get(job_id)
        if record is None:
            raise JobError(f"unknown job id {job_id!r} (records are kept for 7 days, the newest 1000)")
        return record

    def status(self, user_id: str | None = None) -> list[JobRecord]:
        """Recent jobs, newest first, optionally of one user."""
        with self._redis_errors("read job records"):
            return self.book.recent(user_id)

    # -- schedules (run by the beat tasks) -------------------------------------------------------
    def sweep(self) -> int:
        """Mark jobs whose heartbeat stopped as lost, then queue consolidation for every user with pending
        messages (but work parked as poison); returns how many were queued."""
        stale_s = 2 * float(self.runtime.settings.jobs.celery.lock_ttl_s)
        for record in self.book.mark_lost(stale_s):
            log.warning("job %s %s for %r was lost: %s", record.id, record.operation, record.user_id, record.error)
        return queue_pending(self.runtime, self.submit, self._parked)

    def _parked(self, user_id: str, agent_id: str | None) -> bool:
        return self.attempts.parked(CONSOLIDATE, user_id, agent_id)

    def failed(self, limit: int = 1000) -> list[JobRecord]:
        """Failed jobs, newest first: parked poison jobs and any other recorded failure."""
        with self._redis_errors("read job records"):
            return [r for r in self.book.recent(limit=limit) if r.state is JobState.FAILED]

    def retry(self, job_id: str) -> str:
        """Queue a failed job's work again (unparking poison); returns the new job's id."""
        record = self._record(job_id)
        if record.state is not JobState.FAILED:
            raise JobError(f"job {job_id} is {record.state.value}, not failed; only failed jobs are retried")
        with self._redis_errors("unpark the job"):
            self.attempts.release(job_id, record.operation, record.user_id, record.agent_id)
        new_id = self.submit(record.operation, record.user_id, record.agent_id)
        with self._redis_errors("note the retry"):
            self.book.update(job_id, error=f"{record.error} [retried as job {new_id}]")
        return new_id

    def note_consolidated(self, user_id: str, agent_id: str | None) -> None:
        """Remember a user consolidated since the last reflection round."""
        self.redis.sadd(self._recent_key, json.dumps([user_id, agent_id]))

    def reflect_due(self) -> int:
        """Queue reflection for users consolidated since the last round who have unreflected observations."""
        pipe = self.redis.pipeline()
        pipe.smembers(self._recent_key)
        pipe.delete(self._recent_key)
        members, _ = pipe.execute()
        return queue_reflections(self.runtime, self.submit, (tuple(json.loads(raw)) for raw in members))

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self, wait: bool = True) -> None:
        """Stop taking jobs; queued jobs stay in Redis for the workers, their messages pending in the store."""
        if self._closed:
            return
        self._closed = True
        self.redis.close()
        if self._owns_app:
            self.app.close()

    @contextmanager
    def _redis_errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise JobError(
                f"could not {what}: Redis at {self._where()} is unavailable ({exc}); "
                "check jobs.celery.broker_url and that Redis is running"
            ) from exc

    def _where(self) -> str:
        return str(self._shown_url)

