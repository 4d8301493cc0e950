"""Turn what a chatbot passes (strings, OpenAI-style dicts, Message objects) into validated Messages."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from memscope.errors import ValidationError
from memscope.limits import MAX_NAME_LENGTH, check_metadata, check_text, normalize_id
from memscope.models import DEFAULT_AGENT, Message, Role

__all__ = ["EXTERNAL_ID", "to_messages"]

EXTERNAL_ID = "external_id"  # metadata key holding a caller's own message id
_ID_NAMESPACE = uuid.UUID("9b4f3c52-5e0c-4d5e-9a77-6d656d73636f")
OPENAI_KEYS = {"role", "content", "name", "tool_calls", "tool_call_id", "created_at", "id", "metadata"}


def to_messages(
    user_id: str,
    items: str | Mapping[str, Any] | Message | Iterable[str | Mapping[str, Any] | Message],
    *,
    session_id: str | None = None,
    agent_id: str | None = None,
    given_ids: set[str] | None = None,
) -> list[Message]:
    """Validate a batch; a bad item raises ValidationError naming its index and what to fix.

    `given_ids`, if passed, collects the (stored) ids of messages whose id the caller chose.
    """
    if isinstance(items, str | Mapping | Message):
        items = [items]
    if not isinstance(items, Iterable) or isinstance(items, bytes | bytearray):
        raise ValidationError(
            f"messages must be a string, a dict with role and content, a Message, or a list of them;"
            f" got {type(items).__name__}"
        )
    if session_id is not None:
        session_id = normalize_id(session_id, "session_id")
    if agent_id is not None:
        agent_id = normalize_id(agent_id, "agent_id")
    out: list[Message] = []
    for index, item in enumerate(items):
        try:
            out.append(_checked(_one(user_id, item, session_id, agent_id)))
            if given_ids is not None and (isinstance(item, Message) or (isinstance(item, Mapping) and item.get("id"))):
                given_ids.add(out[-1].id)
        except ValidationError as exc:
            raise ValidationError(f"message {index}: {exc}") from exc
        except (PydanticValidationError, ValueError, TypeError) as exc:
            raise ValidationError(f"message {index}: {_explain(exc)}") from exc
    return out


def _checked(message: Message) -> Message:
    """The limits every message meets, however it was given (see memscope.limits)."""
    check_text(message.content, "content")
    if not message.content.strip() and "tool_calls" not in message.metadata:
        raise ValidationError("content is empty; send the text said (only a tool-call turn may have none)")
    if message.name is not None:
        normalize_id(message.name, "name", MAX_NAME_LENGTH)
    if message.session_id is not None:
        normalize_id(message.session_id, "session_id")
    check_metadata(message.metadata)
    return message


def _one(user_id: str, item: Any, session_id: str | None, given_agent: str | None) -> Message:
    agent_id = given_agent or DEFAULT_AGENT
    if isinstance(item, Message):
        if item.user_id != user_id:
            raise ValueError(f"belongs to user {item.user_id!r}, not {user_id!r}")
        changes: dict[str, Any] = {}
        for name, given, unset in (("session_id", session_id, None), ("agent_id", given_agent, DEFAULT_AGENT)):
            own = getattr(item, name)
            if given is not None and own not in (unset, given):
                raise ValueError(f"has {name} {own!r}, but the call gives {name}={given!r}; make them agree")
            if given is not None:
                changes[name] = given
        if not _is_uuid(item.id):
            changes["id"], changes["metadata"] = _scoped(user_id, item.id, item.metadata)
        return item.model_copy(update=changes) if changes else item
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
    metadata = dict(check_metadata(item.get("metadata") or {}))
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
        given = normalize_id(str(item["id"]), "id")
        fields["id"], fields["metadata"] = (given, metadata) if _is_uuid(given) else _scoped(user_id, given, metadata)
    created = item.get("created_at")
    if created is not None:
        fields["created_at"] = datetime.fromisoformat(created) if isinstance(created, str) else created
    return Message(**fields)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _scoped(user_id: str, given: str, metadata: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A caller's own id ("42") is unique per user: the stored id derives from both; the caller's is kept."""
    derived = str(uuid.uuid5(_ID_NAMESPACE, f"{user_id}\x00{given}"))
    return derived, {**metadata, EXTERNAL_ID: given}


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
