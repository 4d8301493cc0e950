"""Building memories: observation nodes from cited messages, stable ids, how prompts show messages and dates."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from memscope.engine.llm_worker import LLMWorker
from memscope.engine.worker import Context, user_zone
from memscope.errors import ValidationError
from memscope.models import DEFAULT_AGENT, EventTime, MemoryNode, MemoryType, Message, Role

__all__ = [
    "Observation",
    "ObservationAnswer",
    "agent_of",
    "clamp_importance",
    "conversation_values",
    "format_date",
    "format_messages",
    "observation_node",
    "pick_sources",
    "stable_id",
    "validate_node",
]

_NAMESPACE = uuid.UUID("6f1c7a52-3f0e-4b8e-9a0c-5d6a4c1e2b90")


def stable_id(*parts: object) -> str:
    """A deterministic id from its parts (uuid5): re-running a batch yields the same ids."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(str(p) for p in parts)))


def format_messages(messages: Iterable[Message], zone: ZoneInfo) -> str:
    """One line per message: `[n] 2023-05-08 13:56 Mon | role(name): text`, numbered from 1."""
    lines = []
    for n, m in enumerate(messages, start=1):
        local = m.created_at.astimezone(zone)
        who = f"{m.role.value}({m.name})" if m.name else m.role.value
        lines.append(f"[{n}] {local:%Y-%m-%d %H:%M %a} | {who}: {m.content}")
    return "\n".join(lines)


def format_date(value: datetime, zone: ZoneInfo) -> str:
    """A date as the prompts show it: `2023-05-08 (Monday)`."""
    local = value.astimezone(zone)
    return f"{local:%Y-%m-%d} ({local:%A})"


def agent_of(messages: Sequence[Message], ctx: Context) -> str:
    """The agent new memories belong to: the operation's, else the messages', else the default."""
    agent = ctx.get("agent_id")
    if agent:
        return str(agent)
    return messages[0].agent_id if messages else DEFAULT_AGENT


def clamp_importance(value: object) -> object:
    """Forgiving importance: a 0-10 scale is rescaled, anything else is clamped to [0, 1]."""
    if isinstance(value, int | float):
        number = float(value)
        if 1.0 < number <= 10.0:
            number /= 10.0
        return min(max(number, 0.0), 1.0)
    return value


class Observation(BaseModel):
    """One observation as the model states it."""

    content: str
    sources: list[int] = Field(default_factory=list)
    importance: float = 0.5
    keywords: list[str] = Field(default_factory=list)

    _clamp = field_validator("importance", mode="before")(clamp_importance)


class ObservationAnswer(BaseModel):
    """The observations found in the marked messages."""

    observations: list[Observation] = Field(default_factory=list)


def conversation_values(worker: LLMWorker, ctx: Context) -> tuple[list[Message], dict[str, str]]:
    """The batch as the extractors show it (user and assistant turns) and the prompt values.

    Assistant turns stay visible so a short reply ("yes, since March") is understood; only the
    informative user messages, listed by number, may be sources.
    """
    informative = {m.id for m in ctx["informative_messages"]}
    shown = [m for m in ctx["messages"] if m.role in (Role.USER, Role.ASSISTANT)]
    numbers = [n for n, m in enumerate(shown, start=1) if m.id in informative]
    names = [m.name for m in shown if m.role is Role.USER and m.name]
    values = {
        "conversation": format_messages(shown, user_zone(worker, ctx)),
        "source_indices": ", ".join(map(str, numbers)),
        "user_name": names[-1] if names else ("用户" if worker.resources.language == "zh" else "the user"),
    }
    return shown, values


def pick_sources(shown: Sequence[Message], numbers: Sequence[int], informative: set[str]) -> list[Message]:
    """The informative messages the model cited by number; all informative ones if it cited none valid."""
    cited = [shown[n - 1] for n in dict.fromkeys(numbers) if 1 <= n <= len(shown) and shown[n - 1].id in informative]
    return cited or [m for m in shown if m.id in informative]


def observation_node(
    ctx: Context,
    sources: Sequence[Message],
    content: str,
    importance: float,
    metadata: dict[str, object],
    event_time: EventTime | None = None,
) -> MemoryNode:
    """A new observation with a stable id (same batch, same content: same id) dated by its latest source."""
    user_id = ctx["user_id"]
    agent = agent_of(sources, ctx)
    source_ids = sorted(m.id for m in sources)
    normalised = re.sub(r"\s+", " ", content.strip().lower())
    created = max(m.created_at for m in sources)
    return MemoryNode(
        id=stable_id(user_id, agent, ",".join(source_ids), normalised),
        user_id=user_id,
        agent_id=agent,
        memory_type=MemoryType.OBSERVATION,
        content=content.strip(),
        event_time=event_time,
        created_at=created,
        updated_at=created,
        source_message_ids=source_ids,
        importance=importance,
        metadata=metadata,
    )


def validate_node(**fields: Any) -> MemoryNode:
    """A MemoryNode from `fields`; invalid input raises memscope's ValidationError naming each field."""
    try:
        return MemoryNode(**fields)
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'memory'}: {e['msg']} (got {e.get('input')!r:.80})"
            for e in exc.errors()
        )
        raise ValidationError(f"invalid memory: {problems}") from exc
