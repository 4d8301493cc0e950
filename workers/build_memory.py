"""build_memory: a validated memory node from what a user or app asked to remember (add_memory)."""

from __future__ import annotations

import contextlib
from datetime import date, datetime
from zoneinfo import ZoneInfo

from pydantic import ValidationError as PydanticValidationError

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import user_zone
from memscope.errors import ValidationError
from memscope.models import DEFAULT_AGENT, EventTime, Granularity, MemoryType, new_id
from memscope.observations import validate_node
from memscope.timerules import resolve_time_phrase


@worker("build_memory")
class BuildMemory(Worker):
    """Build one memory node (new id, type, key, importance, metadata, resolved time) to store."""

    reads = ("user_id", "content")
    optional_reads = ("memory_type", "key", "importance", "metadata", "agent_id", "time", "timezone")
    writes = ("memory_updates",)

    class Params(WorkerParams):
        pass

    def run(self, ctx: Context) -> None:
        now = self.resources.now()
        content = ctx["content"]
        if not isinstance(content, str) or not content.strip():
            raise ValidationError("content must be non-empty text: the memory to add")
        node = validate_node(
            id=new_id(),
            user_id=ctx["user_id"],
            agent_id=ctx.get("agent_id") or DEFAULT_AGENT,
            memory_type=ctx.get("memory_type") or MemoryType.CUSTOMIZED,
            content=content.strip(),
            key=ctx.get("key"),
            importance=0.5 if ctx.get("importance") is None else ctx.get("importance"),
            metadata=ctx.get("metadata") or {},
            event_time=resolve_time(ctx.get("time"), now, user_zone(self, ctx)),
            created_at=now,
            updated_at=now,
        )
        ctx["memory_updates"] = [node]


def resolve_time(value: object, now: datetime, zone: ZoneInfo) -> EventTime | None:
    """An event time from an EventTime, datetime, date, ISO text or a phrase ("last Friday", "上周三")."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, EventTime):
        return value
    if isinstance(value, str) and len(value.strip()) > 10:  # ISO with a time of day: an instant
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(value.strip())
    if isinstance(value, datetime):
        instant = value if value.tzinfo is not None else value.replace(tzinfo=zone)
        return EventTime(start=instant, end=instant, granularity=Granularity.INSTANT)
    if isinstance(value, date):
        value = value.isoformat()
    if isinstance(value, dict):
        try:
            return EventTime.model_validate(value)
        except PydanticValidationError as exc:
            raise ValidationError(f"time {value!r} is not an event time {{start, end, granularity}}") from exc
    if not isinstance(value, str):
        raise ValidationError(f"time must be a phrase or an ISO date, got {type(value).__name__}")
    resolved = resolve_time_phrase(value, now, zone)
    if resolved is None:
        raise ValidationError(
            f"time {value!r} is not understood; give an ISO date (2024-05-08), an ISO datetime "
            "(2024-05-08T14:00:00+02:00) or a phrase such as 'last Friday', 'next March', '上周三'"
        )
    return resolved
