"""Conversions between memscope models and the SQLite store's rows.

Timestamps are stored as integer microseconds since the Unix epoch (UTC) and come back as aware UTC
datetimes (equal, as instants, to what was written); `event_time` is a JSON column with UTC ISO-8601
text, and its span is precomputed in `time_start`/`time_end` (end widened for instants). Embeddings
are float32 BLOBs, so a vector reads back rounded to float32.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel

from memscope.errors import ValidationError
from memscope.models import (
    EventTime,
    Granularity,
    MemoryNode,
    MemoryStatus,
    MemoryType,
    Message,
    Role,
    TimeRange,
)

__all__ = [
    "blob",
    "from_us",
    "memory_from_row",
    "memory_from_stored",
    "memory_row",
    "message_from_row",
    "message_from_stored",
    "message_row",
    "span_bounds",
    "to_json",
    "to_us",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_us(value: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (a naive one is a ValidationError)."""
    if value.tzinfo is None:
        raise ValidationError(f"datetime {value.isoformat()} must be timezone-aware (e.g. datetime.now(UTC))")
    return (value - _EPOCH) // _US


def from_us(value: int) -> datetime:
    """The aware UTC datetime of stored microseconds."""
    return _EPOCH + timedelta(microseconds=value)


def _from_us_or_none(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


def to_json(value: Any) -> str:
    """Canonical JSON text (sorted keys, UTF-8 kept)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def blob(vector: Sequence[float] | None) -> tuple[bytes | None, int | None]:
    """A vector as a float32 BLOB and its dimension (None, None for no vector)."""
    if vector is None:
        return None, None
    array = np.asarray(vector, dtype=np.float32).reshape(-1)
    return array.tobytes(), int(array.shape[0])


def memory_row(node: MemoryNode) -> dict[str, Any]:
    """The stored form of a node (all columns but pk)."""
    data = node.model_dump(mode="json", exclude={"embedding"})
    span = node.time_span()
    embedding, dim = blob(node.embedding)
    event_time = None
    if node.event_time is not None:
        event_time = to_json(
            {
                "start": node.event_time.start.astimezone(UTC).isoformat(),
                "end": node.event_time.end.astimezone(UTC).isoformat(),
                "granularity": str(node.event_time.granularity),
            }
        )
    return {
        "id": node.id,
        "user_id": node.user_id,
        "agent_id": node.agent_id,
        "memory_type": str(node.memory_type),
        "content": node.content,
        "key": node.key,
        "embedding": embedding,
        "dim": dim,
        "status": str(node.status),
        "event_time": event_time,
        "time_start": to_us(span.start),
        "time_end": to_us(span.effective_end()),
        "created_at": to_us(node.created_at),
        "updated_at": to_us(node.updated_at),
        "source_message_ids": to_json(data["source_message_ids"]),
        "source_memory_ids": to_json(data["source_memory_ids"]),
        "superseded_by": node.superseded_by,
        "importance": float(node.importance),
        "access_count": node.access_count,
        "last_accessed_at": None if node.last_accessed_at is None else to_us(node.last_accessed_at),
        "metadata": to_json(data["metadata"]),
        "reflected_at": None if node.reflected_at is None else to_us(node.reflected_at),
    }


def memory_from_row(row: sqlite3.Row | Mapping[str, Any]) -> MemoryNode:
    """A validated MemoryNode from a stored row (or a row dict about to be stored)."""
    embedding = None
    if row["embedding"] is not None:
        embedding = np.frombuffer(row["embedding"], dtype=np.float32).astype(float).tolist()
    return MemoryNode(
        id=row["id"],
        user_id=row["user_id"],
        agent_id=row["agent_id"],
        memory_type=row["memory_type"],
        content=row["content"],
        key=row["key"],
        embedding=embedding,
        status=row["status"],
        event_time=None if row["event_time"] is None else EventTime(**json.loads(row["event_time"])),
        created_at=from_us(row["created_at"]),
        updated_at=from_us(row["updated_at"]),
        source_message_ids=json.loads(row["source_message_ids"]),
        source_memory_ids=json.loads(row["source_memory_ids"]),
        superseded_by=row["superseded_by"],
        importance=row["importance"],
        access_count=row["access_count"],
        last_accessed_at=_from_us_or_none(row["last_accessed_at"]),
        metadata=json.loads(row["metadata"]),
        reflected_at=_from_us_or_none(row["reflected_at"]),
    )



M = TypeVar("M", bound=BaseModel)
_EMPTY_JSON: dict[str, Any] = {"[]": list, "{}": dict}


def _trusted(cls: type[M], values: dict[str, Any]) -> M:
    """A model from values of every field, trusted (this store validated them when it wrote the row).

    What `model_construct` does, without its per-field default and alias handling, which costs most of
    a search's time when it returns 50 rows."""
    fields = _FIELD_COUNTS.get(cls)
    if fields is None:  # pydantic builds model_fields on each access: counted once per class
        fields = _FIELD_COUNTS[cls] = -1 if cls.__pydantic_post_init__ else len(cls.model_fields)
    if len(values) != fields:
        return cls.model_construct(**values)
    model = cls.__new__(cls)
    _set(model, "__dict__", values)
    _set(model, "__pydantic_fields_set__", set(values))
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


_FIELD_COUNTS: dict[type[BaseModel], int] = {}
_set = object.__setattr__


def _json(text: str) -> Any:
    empty = _EMPTY_JSON.get(text)
    return empty() if empty is not None else json.loads(text)


_MEMORY_TYPES = {t.value: t for t in MemoryType}  # an enum by value from a dict: a third of Enum(value)'s time
_STATUSES = {s.value: s for s in MemoryStatus}
_ROLES = {r.value: r for r in Role}


def memory_from_stored(values: Sequence[Any]) -> MemoryNode:
    """A MemoryNode, without re-validation, from a row this store wrote (validated then): the hot path.

    `values` are the columns of `MEMORY_COLUMNS`, in that order (a row's columns read by position: by
    name, sqlite3.Row compares the name with each column's in turn, half of a 50-row search's conversion)."""
    (id_, user_id, agent_id, memory_type, content, key, blob, _dim, status, event, _start, _end, created,
     updated, message_ids, memory_ids, superseded_by, importance, access_count, last, metadata, reflected,
     _version) = values  # fmt: skip
    if event is not None:
        data = json.loads(event)
        event = _trusted(EventTime, {
            "start": datetime.fromisoformat(data["start"]),
            "end": datetime.fromisoformat(data["end"]),
            "granularity": Granularity(data["granularity"]),
        })  # fmt: skip
    return _trusted(MemoryNode, dict(
        id=id_,
        user_id=user_id,
        agent_id=agent_id,
        memory_type=_MEMORY_TYPES.get(memory_type) or MemoryType(memory_type),
        content=content,
        key=key,
        embedding=None if blob is None else np.frombuffer(blob, dtype=np.float32).tolist(),  # exact in float64
        status=_STATUSES.get(status) or MemoryStatus(status),
        event_time=event,
        created_at=from_us(created),
        updated_at=from_us(updated),
        source_message_ids=_json(message_ids),
        source_memory_ids=_json(memory_ids),
        superseded_by=superseded_by,
        importance=float(importance),
        access_count=int(access_count),
        last_accessed_at=_from_us_or_none(last),
        metadata=_json(metadata),
        reflected_at=_from_us_or_none(reflected),
    ))  # fmt: skip


def message_from_stored(values: Sequence[Any]) -> Message:
    """A Message, without re-validation, from a row this store wrote: the hot path. `values` are the
    columns of `MESSAGE_COLUMNS`, in that order (see `memory_from_stored`)."""
    id_, user_id, agent_id, session_id, role, content, name, created, metadata, done = values
    return _trusted(Message, dict(
        id=id_,
        user_id=user_id,
        agent_id=agent_id,
        session_id=session_id,
        role=_ROLES.get(role) or Role(role),
        content=content,
        name=name,
        created_at=from_us(created),
        metadata=_json(metadata),
        consolidated_at=_from_us_or_none(done),
    ))  # fmt: skip


def message_row(message: Message) -> dict[str, Any]:
    """The stored form of a message (all columns but pk, row_version and the vector)."""
    return {
        "id": message.id,
        "user_id": message.user_id,
        "agent_id": message.agent_id,
        "session_id": message.session_id,
        "role": str(message.role),
        "content": message.content,
        "name": message.name,
        "created_at": to_us(message.created_at),
        "metadata": to_json(message.model_dump(mode="json")["metadata"]),
        "consolidated_at": None if message.consolidated_at is None else to_us(message.consolidated_at),
    }


def message_from_row(row: sqlite3.Row) -> Message:
    """A validated Message from a stored row."""
    return Message(
        id=row["id"],
        user_id=row["user_id"],
        agent_id=row["agent_id"],
        session_id=row["session_id"],
        role=row["role"],
        content=row["content"],
        name=row["name"],
        created_at=from_us(row["created_at"]),
        metadata=json.loads(row["metadata"]),
        consolidated_at=_from_us_or_none(row["consolidated_at"]),
    )


def span_bounds(time_range: TimeRange) -> tuple[int, int]:
    """A time range as [start, end) microseconds (end widened for an instant)."""
    return to_us(time_range.start), to_us(time_range.effective_end())
