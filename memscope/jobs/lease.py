"""A job's per-user lease in the store, and the keep-alive thread that renews it while the job runs.

The lease is the fence of the jobs layer: whoever holds it has a token, every write of the job
carries that token (`Fence`), and the store refuses the write once another holder took the lease
over (the job was paused, or its disk or network stalled past the TTL). Works across processes
and machines sharing a store, whatever the executor.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from memscope.stores.base import Fence, Store

__all__ = ["UserLease", "holder_name", "kept_alive"]

log = logging.getLogger("memscope.jobs")


def holder_name(job_id: str) -> str:
    """Who holds a lease: host, process and job, so a log or the store row says which job it was."""
    return f"{socket.gethostname()}:{os.getpid()}:{job_id}"


class UserLease:
    """One job's lease on one user; `fence` is what the job's writes carry."""

    def __init__(self, store: Store, user_id: str, holder: str, ttl_s: float) -> None:
        self.store, self.user_id, self.holder, self.ttl_s = store, user_id, holder, float(ttl_s)
        self.token: int | None = None

    def acquire(self) -> bool:
        """Take the lease if it is free (or expired); False while another holder has it."""
        self.token = self.store.acquire_lease(self.user_id, self.holder, self.ttl_s)
        return self.token is not None

    def wait(self, timeout_s: float, stop: threading.Event | None = None, poll_s: float = 0.25) -> bool:
        """Acquire, polling until `timeout_s` passed or `stop` is set; whether this holder has it."""
        deadline = time.monotonic() + timeout_s
        while not self.acquire():
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                return False
            time.sleep(poll_s)
        return True

    @property
    def fence(self) -> Fence:
        """The fence of this lease (acquire first)."""
        if self.token is None:
            raise RuntimeError(f"the lease of user {self.user_id!r} is not held")
        return Fence(self.user_id, self.token)

    def renew(self) -> bool:
        """Extend the lease; False once another holder took it over."""
        return self.token is not None and self.store.renew_lease(self.user_id, self.token, self.ttl_s)

    def release(self) -> None:
        """Let the lease go (only if it is still ours); a failure is logged, the lease then expires."""
        if self.token is None:
            return
        try:
            self.store.release_lease(self.user_id, self.token)
        except Exception as exc:  # the store blipped: the lease expires after its TTL
            log.warning("could not release the lease of user %r: %s", self.user_id, exc)
        self.token = None


@contextmanager
def kept_alive(interval_s: float, *ticks: Callable[[], bool | None]) -> Iterator[threading.Event]:
    """Call every tick each `interval_s` while the block runs (renewals, heartbeats).

    Yields an event set once a tick returned False (a lease or lock was lost); a tick that raises is
    logged and tried again next interval (the TTL still runs).
    """
    stop, lost = threading.Event(), threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            for tick in ticks:
                try:
                    if tick() is False:
                        lost.set()
                        log.error("a job lost its per-user lease or lock while still running (%s)", tick)
                except Exception as exc:
                    log.warning("keep-alive tick %s failed: %s", tick, exc)

    thread = threading.Thread(target=loop, name="memscope-keepalive", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        stop.set()
        thread.join(timeout=5)
