"""Between a session's turns and the record's rows: the values a row holds for a turn, and back."""

from __future__ import annotations

from typing import Any

from memscope.models import Role
from memscope.record.tables import MessageRow
from memscope.sessions import Prompt, Response

__all__ = ["row_values", "turn_from_row"]

_RESPONSE_ONLY = ("model", "temperature", "prompt_tokens", "completion_tokens", "latency_ms", "score", "reply_to")


def row_values(turn: Prompt | Response) -> dict[str, Any]:
    """Every column of the turn's row but its conversation and position."""
    values: dict[str, Any] = {
        "id": turn.id,
        "role": turn.role.value,
        "content": turn.content,
        "name": turn.name,
        "masked": turn.masked,
        "meta": turn.model_dump(mode="json", include={"metadata"})["metadata"],
        "created_at": turn.created_at,
        "tool_call_id": turn.tool_call_id if isinstance(turn, Prompt) else None,
        "tool_calls": list(turn.tool_calls) if isinstance(turn, Response) else [],
        "selected": turn.selected if isinstance(turn, Response) else True,
    }
    for field in _RESPONSE_ONLY:
        values[field] = getattr(turn, field) if isinstance(turn, Response) else None
    return values


def turn_from_row(row: MessageRow) -> Prompt | Response:
    """The turn a stored row holds."""
    common: dict[str, Any] = {
        "id": row.id,
        "content": row.content,
        "name": row.name,
        "masked": row.masked,
        "metadata": dict(row.meta or {}),
        "created_at": row.created_at,
    }
    if row.role == Role.ASSISTANT.value:
        extra = {field: getattr(row, field) for field in _RESPONSE_ONLY}
        return Response(**common, **extra, tool_calls=list(row.tool_calls or []), selected=row.selected)
    return Prompt(**common, role=Role(row.role), tool_call_id=row.tool_call_id)
