"""Access counts are written off the retrieval's path (memscope.access), and none is lost."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from memscope.access import AccessRecorder
from memscope.api import MemoryScope
from memscope.models import MemoryNode, MemoryType
from memscope.stores.sqlite import SqliteStore

AT = datetime(2024, 5, 8, 12, tzinfo=UTC)


def _config(tmp_path: Path) -> dict[str, Any]:
    return {"store": {"path": str(tmp_path / "m.db")}, "llm": {"backend": "none"}}


def test_a_retrieval_does_not_wait_for_the_write_lock(tmp_path: Path) -> None:
    with MemoryScope(_config(tmp_path), background=False) as memory:
        node = memory.add_memory("ann", "Ann grows tomatoes on her balcony")
        memory.retrieve("ann", "What does Ann grow?")  # opens the model and the index first
        assert memory.get_memory("ann", node.id).access_count == 1  # type: ignore[union-attr]
        holder = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another writer (a consolidation) holds the write lock
        done = threading.Event()
        returned: list[Any] = []
        thread = threading.Thread(target=lambda: (returned.append(memory.retrieve("ann", "tomatoes")), done.set()))
        try:
            thread.start()
            # with the touch written inline this waits for the lock (store timeout_s, 30 s)
            assert done.wait(20), "the retrieval waited for the write lock"
            assert [i.id for i in returned[0].items][:1] == [node.id]
        finally:
            holder.execute("ROLLBACK")
            holder.close()
            thread.join(60)  # never close the store under a running retrieval
        assert memory.get_memory("ann", node.id).access_count == 2  # type: ignore[union-attr]  # written once free


def _node(store: SqliteStore, user: str = "ann") -> MemoryNode:
    node = MemoryNode(user_id=user, memory_type=MemoryType.OBSERVATION, content="Ann likes figs")
    store.write_memories([node])
    return node


def test_flush_and_close_write_every_queued_touch_in_order(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "m.db")
    try:
        node = _node(store)
        recorder = AccessRecorder(store)
        for day in range(1, 31):
            recorder.record("ann", [node.id, node.id], AT.replace(day=day))  # one access, however often named
        assert recorder.flush(timeout=20)
        stored = store.get_memory("ann", node.id)
        assert stored is not None and stored.access_count == 30 and stored.last_accessed_at == AT.replace(day=30)
        recorder.record("ann", [node.id], AT)
        recorder.close()
        assert store.get_memory("ann", node.id).access_count == 31  # type: ignore[union-attr]
        recorder.record("ann", [node.id], AT)  # after close: written on the caller's thread
        assert store.get_memory("ann", node.id).access_count == 32  # type: ignore[union-attr]
        assert not any(t.name == "memscope-access" for t in threading.enumerate())
    finally:
        store.close()


def test_a_failing_store_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SqliteStore(tmp_path / "m.db")
    node = _node(store)
    store.close()  # every touch now fails
    recorder = AccessRecorder(store)
    with caplog.at_level(logging.WARNING, logger="memscope.access"):
        recorder.record("ann", [node.id], AT)
        assert recorder.flush(timeout=20)  # tried once, logged, not retried forever
    assert "access counts of 1 memories of 'ann' not written" in caplog.text
    recorder.close()


def test_a_full_queue_drops_the_oldest_touches(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SqliteStore(tmp_path / "m.db")
    node = _node(store)
    recorder = AccessRecorder(store, max_queued=3)
    holder = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the writer's first touch waits for this lock
    try:
        with caplog.at_level(logging.WARNING, logger="memscope.access"):
            recorder.record("ann", [node.id], AT)
            deadline = time.monotonic() + 60
            while not recorder._busy and time.monotonic() < deadline:  # the writer took it: it waits for the lock
                time.sleep(0.01)
            assert not recorder.flush(timeout=0.2)
            for day in range(1, 6):
                recorder.record("ann", [node.id], AT.replace(day=day))
        assert recorder.dropped == 2 and "2 touches dropped" not in caplog.text and "1 touches dropped" in caplog.text
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert recorder.flush(timeout=20)
    recorder.close()
    stored = store.get_memory("ann", node.id)
    assert stored is not None and stored.access_count == 4 and stored.last_accessed_at == AT.replace(day=5)
    store.close()
