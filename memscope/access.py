"""Access counts written off the retrieval's path: `record_access` hands them to a background writer.

A touch is a write: on SQLite it waits for the write lock (held by a running consolidation) and now and
then pays a WAL checkpoint (a 100k-memory bench saw 50 ms touches, one retrieval in a hundred); on
Elasticsearch it is an HTTP update. Retrieval only queues it. One thread per runtime writes the queue
in order; `flush()` waits for what is queued, `close()` writes the rest and stops the thread.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from datetime import datetime

from memscope.redact import scrubbed_logger
from memscope.stores.base import Store

__all__ = ["AccessRecorder"]

log = scrubbed_logger("memscope.access")
MAX_QUEUED = 10_000  # touches waiting while the store is unreachable; beyond, the oldest are dropped


class AccessRecorder:
    """Queues `touch_memories` calls and writes them on one background thread, in order."""

    def __init__(self, store: Store, max_queued: int = MAX_QUEUED) -> None:
        self.store = store
        self.max_queued = max_queued
        self.dropped = 0  # touches lost to a full queue (the store was failing or too slow)
        self._queue: deque[tuple[str, list[str], datetime]] = deque()
        self._busy = 0  # touches taken off the queue and not yet written
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def record(self, user_id: str, memory_ids: Sequence[str], at: datetime) -> None:
        """Count an access of these memories at `at`; written within moments, never on the caller's thread."""
        if not memory_ids:
            return
        with self._cond:
            if self._closed:  # a retrieval racing close(): write it here rather than lose it
                self.store.touch_memories(user_id, memory_ids, at)
                return
            if len(self._queue) >= self.max_queued:
                self._queue.popleft()
                self.dropped += 1
                if self.dropped in (1, 10, 100) or self.dropped % 10_000 == 0:
                    log.warning("access counts: %d touches dropped, the store is not keeping up", self.dropped)
            self._queue.append((user_id, list(memory_ids), at))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="memscope-access", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued touch is written; False if `timeout` seconds passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (up to `timeout` seconds), then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("access counts: the writer did not finish within %.0fs; its touches are lost", timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return  # closed and drained
                batch, self._busy = list(self._queue), len(self._queue)
                self._queue.clear()
            for user_id, ids, at in batch:
                try:
                    self.store.touch_memories(user_id, ids, at)
                except Exception as exc:  # bookkeeping: a failed touch is logged, never raised into a retrieval
                    log.warning("access counts of %d memories of %r not written: %s", len(ids), user_id, exc)
            with self._cond:
                self._busy = 0
                self._cond.notify_all()
