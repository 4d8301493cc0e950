"""The embedded job backend: a thread pool, a lock per user, and a periodic sweep of pending work."""

from __future__ import annotations

import contextlib
import threading
import traceback
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from memscope.engine import RunReport
from memscope.errors import JobError
from memscope.jobs.base import CONSOLIDATE, REFLECT, JobRecord, JobState
from memscope.jobs.lease import UserLease, holder_name, kept_alive
from memscope.jobs.logic import queue_pending, queue_reflections, run_job, summarize
from memscope.models import utcnow
from memscope.redact import scrub, scrubbed_logger
from memscope.runtime import Runtime

__all__ = ["LocalDispatcher"]

log = scrubbed_logger("memscope.jobs")
KEEP_RECORDS = 1000


class LocalDispatcher:
    """Runs jobs in-process. The store is the source of truth: a restart's first sweep resumes work."""

    def __init__(self, runtime: Runtime, *, threads: int | None = None, start_timers: bool = True) -> None:
        self.runtime = runtime
        jobs = runtime.settings.jobs
        self._pool = ThreadPoolExecutor(
            max_workers=threads or jobs.local.threads, thread_name_prefix="memscope-job"
        )
        self._user_locks: dict[str, tuple[threading.Lock, list[int]]] = {}  # lock, jobs holding or waiting
        self._lock = threading.Lock()
        self._records: OrderedDict[str, JobRecord] = OrderedDict()
        self._futures: dict[str, Future[None]] = {}
        self._reports: dict[str, list[RunReport]] = {}  # each step's report of a finished job, kept like its record
        self._queued: dict[tuple[str, str, str | None], str] = {}
        self._recent_users: set[tuple[str, str | None]] = set()
        self._closed = threading.Event()
        self._timers: list[threading.Thread] = []
        if start_timers:
            self._start_timer("sweep", float(jobs.sweep_interval_s), self.sweep, run_now=True)
            self._start_timer("reflect", float(jobs.reflect_interval_s), self.reflect_recent)

    # -- submitting ------------------------------------------------------------------------------
    def submit(self, operation: str, user_id: str, agent_id: str | None = None) -> str:
        """Queue a job; a job of the same operation and user still waiting to start is reused."""
        if self._closed.is_set():
            raise JobError("the job executor is closed; open a new MemoryScope to queue work")
        key = (operation, user_id, agent_id)
        with self._lock:
            existing = self._queued.get(key)
            if existing is not None:
                return existing
            record = JobRecord(operation=operation, user_id=user_id, agent_id=agent_id)
            self._records[record.id] = record
            while len(self._records) > KEEP_RECORDS:
                evicted, _ = self._records.popitem(last=False)
                self._futures.pop(evicted, None)  # bounded like the records it belongs to
                self._reports.pop(evicted, None)
            self._queued[key] = record.id
            self._futures[record.id] = self._pool.submit(self._execute, record)
        return record.id

    @contextlib.contextmanager
    def _user_lock(self, user_id: str) -> Iterator[None]:
        # per user, not per (user, agent): a job for agent None covers every agent's messages;
        # the entry lives while some job holds or waits for it, so the dict stays bounded
        with self._lock:
            entry = self._user_locks.setdefault(user_id, (threading.Lock(), [0]))
            entry[1][0] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1][0] -= 1
                if entry[1][0] == 0:
                    del self._user_locks[user_id]

    def _execute(self, record: JobRecord) -> None:
        with self._user_lock(record.user_id):  # one consolidation/reflection per user in this process
            with self._lock:
                self._queued.pop((record.operation, record.user_id, record.agent_id), None)
            if self._closed.is_set() and record.operation in (CONSOLIDATE, REFLECT):
                record.state, record.error = (
                    JobState.FAILED,
                    "not started: executor closed (work stays pending)",
                )
                return
            record.state, record.started_at, record.attempts = JobState.RUNNING, utcnow(), record.attempts + 1
            local = self.runtime.settings.jobs.local
            lease = UserLease(self.runtime.store, record.user_id, holder_name(record.id), float(local.lease_ttl_s))
            try:  # and one per user across processes sharing the store: the lease fences every write
                if not lease.wait(float(local.lease_wait_s), stop=self._closed):
                    raise JobError(
                        f"another process held the lease of user {record.user_id!r} for {local.lease_wait_s}s"
                        " (or the executor closed); the work stays pending and the sweep queues it again"
                    )
                with kept_alive(lease.ttl_s / 3, lease.renew):
                    reports = run_job(self.runtime, record.operation, record.user_id, record.agent_id, lease.fence)
            except BaseException as exc:  # recorded with its error and logged, even a SystemExit from a worker:
                # the pool thread lives on, the lease is released, the messages stay pending
                record.state, record.error = JobState.FAILED, scrub(f"{type(exc).__name__}: {exc}")
                log.error(
                    "job %s %s for %r failed:\n%s",
                    record.id,
                    record.operation,
                    record.user_id,
                    traceback.format_exc(),
                )
            else:
                record.state, record.summary = JobState.SUCCEEDED, summarize(reports)
                with self._lock:
                    if record.id in self._records:
                        self._reports[record.id] = reports
                    self._recent_users.add((record.user_id, record.agent_id))
            finally:
                lease.release()
                record.finished_at = utcnow()

    # -- waiting and status ----------------------------------------------------------------------
    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        """Block until the job ends or `timeout` seconds pass; returns its record either way."""
        future = self._futures.get(job_id)
        if future is None:
            raise JobError(f"unknown job id {job_id!r} (only the last {KEEP_RECORDS} jobs are tracked)")
        with contextlib.suppress(FutureTimeout, CancelledError):  # still running, or dropped by close()
            future.result(timeout=timeout)
        record = self._records.get(job_id)
        if record is None:
            raise JobError(f"unknown job id {job_id!r} (only the last {KEEP_RECORDS} jobs are tracked)")
        return record

    def reports(self, job_id: str) -> list[RunReport]:
        """The run reports (each step's time, model calls, writes) of a job that succeeded; [] otherwise."""
        with self._lock:
            return list(self._reports.get(job_id, []))

    def status(self, user_id: str | None = None) -> list[JobRecord]:
        """Recent jobs, newest first."""
        with self._lock:
            records = list(self._records.values())
        return [r for r in reversed(records) if user_id is None or r.user_id == user_id]

    # -- schedules -------------------------------------------------------------------------------
    def sweep(self) -> int:
        """Queue consolidation for every user with pending messages; returns how many were queued."""
        return queue_pending(self.runtime, self.submit)

    def reflect_recent(self) -> int:
        """Queue reflection for users consolidated since the last call who have unreflected observations."""
        with self._lock:
            users, self._recent_users = self._recent_users, set()
        return queue_reflections(self.runtime, self.submit, users)

    def _start_timer(self, name: str, interval: float, action: object, run_now: bool = False) -> None:
        def loop() -> None:
            if run_now:
                self._safely(name, action)
            while not self._closed.wait(interval):
                self._safely(name, action)

        thread = threading.Thread(target=loop, name=f"memscope-{name}", daemon=True)
        thread.start()
        self._timers.append(thread)

    def _safely(self, name: str, action: object) -> None:
        try:
            action()  # type: ignore[operator]
        except Exception:
            log.exception("memscope %s timer failed; it will try again next interval", name)

    def close(self, wait: bool = True) -> None:
        """Stop timers and intake; running jobs finish; queued jobs are dropped (their work stays pending)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)
        with self._lock:
            for job_id, future in self._futures.items():
                record = self._records.get(job_id)
                if future.cancelled() and record is not None and record.state is JobState.QUEUED:
                    record.state, record.finished_at = JobState.FAILED, utcnow()
                    record.error = "not started: executor closed (work stays pending)"
        for thread in self._timers:
            thread.join(timeout=1)
