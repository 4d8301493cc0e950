"""What a memory write changes: one decision shared by every Store backend.

A write of a node over the stored one is a real change unless they are equal ignoring `updated_at`
and the access counters (`access_count`, `last_accessed_at`: bookkeeping of `touch_memories`). A
real change records ADD (nothing stored), EXPIRE or DELETE (the status moved there) or UPDATE, and
keeps the stored access counters when larger, so a stale copy never undoes a touch.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from memscope.models import EventKind, MemoryNode, MemoryStatus

__all__ = ["ACCESS_FIELDS", "COMPARED_FIELDS", "change_kind", "kept_access", "later"]

ACCESS_FIELDS = frozenset({"updated_at", "access_count", "last_accessed_at"})
COMPARED_FIELDS: tuple[str, ...] = tuple(f for f in MemoryNode.model_fields if f != "id" and f not in ACCESS_FIELDS)

T = TypeVar("T", int, datetime)  # a stored time: microseconds (SQLite) or a datetime


def change_kind(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> EventKind | None:
    """The event a write of `new` over `old` records, or None when nothing changed.

    Both are mappings of the same stored form (rows or JSON dumps) holding every COMPARED_FIELDS key.
    """
    if old is None:
        return EventKind.ADD
    if all(old[f] == new[f] for f in COMPARED_FIELDS):
        return None
    status = str(new["status"])
    if status != str(old["status"]):
        if status == MemoryStatus.EXPIRED:
            return EventKind.EXPIRE
        if status == MemoryStatus.DELETED:
            return EventKind.DELETE
    return EventKind.UPDATE


def later(a: T | None, b: T | None) -> T | None:
    """The later of two optional times (either may be None)."""
    return b if a is None else a if b is None else max(a, b)


def kept_access(count: int, last: T | None, old_count: int, old_last: T | None) -> tuple[int, T | None]:
    """The access counters a changed node is stored with: the larger count and the later access time."""
    return max(count, old_count), later(last, old_last)
