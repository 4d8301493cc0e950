"""extract_observations: atomic, third-person observations about the user from the informative messages.

The split with `extract_timed_observations`: this worker records lasting facts (who the user is,
what they do, like, own, believe, plan in general); an event or plan tied to a time ("flying to
Paris next Friday", "joined Apple last month") goes to the timed worker, and this one states only
the lasting fact such an event implies ("Tom works at Apple").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, Field, field_validator

from memscope.engine import Context, WorkerParams, worker
from memscope.models import EventTime, MemoryNode, MemoryType, Message, Role
from memscope.workers._base import LLMWorker, agent_of, format_messages, stable_id, user_zone

__all__ = ["ExtractObservations", "clamp_importance", "conversation_values", "observation_node", "pick_sources"]


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


@worker("extract_observations")
class ExtractObservations(LLMWorker):
    """Extract atomic third-person observations (lasting facts) about the user from the informative messages."""

    reads = ("user_id", "messages", "informative_messages")
    writes = ("new_observations",)

    class Params(WorkerParams):
        max_observations: int = 100  # per batch (of up to 50 messages): a bound on a runaway answer

    params: Params

    def run(self, ctx: Context) -> None:
        if not ctx["informative_messages"]:
            ctx["new_observations"] = []
            return
        shown, values = conversation_values(self, ctx)
        answer = self.ask(ObservationAnswer, max_observations=self.params.max_observations, **values)
        informative = {m.id for m in ctx["informative_messages"]}
        nodes: dict[str, MemoryNode] = {}
        for item in answer.observations[: self.params.max_observations]:
            if not item.content.strip():
                continue
            sources = pick_sources(shown, item.sources, informative)
            keywords = [k.strip() for k in item.keywords if k.strip()]
            node = observation_node(ctx, sources, item.content, item.importance, {"keywords": keywords})
            nodes.setdefault(node.id, node)
        ctx["new_observations"] = list(nodes.values())
