"""Turn what a chatbot passes (strings, OpenAI-style dicts, Message objects) into validated Messages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from memscope.errors import ValidationError
from memscope.models import DEFAULT_AGENT, Message, Role

__all__ = ["to_messages"]

OPENAI_KEYS = {"role", "content", "name", "tool_calls", "tool_call_id", "created_at", "id", "metadata"}


def to_messages(
    user_id: str,
    items: str | Mapping[str, Any] | Message | Iterable[str | Mapping[str, Any] | Message],
    *,
    session_id: str | None = None,
    agent_id: str | None = None,
) -> list[Message]:
    """Validate a batch; a bad item raises ValidationError naming its index and what to fix."""
    if isinstance(items, str | Mapping | Message):
        items = [items]
    out: list[Message] = []
    for index, item in enumerate(items):
        try:
            out.append(_one(user_id, item, session_id, agent_id or DEFAULT_AGENT))
        except (PydanticValidationError, ValueError, TypeError) as exc:
            raise ValidationError(f"message {index}: {_explain(exc)}") from exc
    return out


def _one(user_id: str, item: Any, session_id: str | None, agent_id: str) -> Message:
    if isinstance(item, Message):
        if item.user_id != user_id:
            raise ValueError(f"belongs to user {item.user_id!r}, not {user_id!r}")
        return item
    if isinstance(item, str):
        if not item.strip():
            raise ValueError("content is empty; send the text the user or assistant said")
        return Message(
            user_id=user_id, agent_id=agent_id, session_id=session_id, role=Role.USER, content=item
        )
    if not isinstance(item, Mapping):
        raise TypeError(
            f"expected a str, a dict with role and content, or a Message; got {type(item).__name__}"
        )
    unknown = set(item) - OPENAI_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; a message takes {sorted(OPENAI_KEYS)}")
    role = item.get("role", "user")
    if role not in Role.__members__.values():
        raise ValueError(f"role {role!r} is not one of: {', '.join(r.value for r in Role)}")
    metadata = dict(item.get("metadata") or {})
    for key in ("tool_calls", "tool_call_id"):
        if item.get(key) is not None:
            metadata[key] = item[key]
    text = _content_text(item.get("content"))
    if not text.strip() and "tool_calls" not in metadata:
        raise ValueError("content is empty; send the text said (only a tool-call turn may have none)")
    fields: dict[str, Any] = {
        "user_id": user_id,
        "agent_id": agent_id,
        "session_id": session_id,
        "role": role,
        "content": text,
        "name": item.get("name"),
        "metadata": metadata,
    }
    if item.get("id"):
        fields["id"] = str(item["id"])
    created = item.get("created_at")
    if created is not None:
        fields["created_at"] = datetime.fromisoformat(created) if isinstance(created, str) else created
    return Message(**fields)


def _content_text(content: Any) -> str:
    """OpenAI content: a string, None (tool-call turns), or a list of parts whose text parts are joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text"]
        return "\n".join(t for t in texts if t)
    raise TypeError(f"content must be a string or a list of content parts, got {type(content).__name__}")


def _explain(exc: Exception) -> str:
    if isinstance(exc, PydanticValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}" for e in exc.errors())
    return str(exc)
