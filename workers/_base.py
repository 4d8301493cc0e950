"""What the built-in workers share: prompt loading (en, zh), structured LLM asks, stable ids, formatting."""

from __future__ import annotations

import functools
import importlib.resources
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel

from memscope.engine.worker import Context, Worker
from memscope.models import DEFAULT_AGENT, Message

__all__ = ["LLMWorker", "format_messages", "load_prompts", "scope", "stable_id", "user_zone"]

T = TypeVar("T", bound=BaseModel)
_NAMESPACE = uuid.UUID("6f1c7a52-3f0e-4b8e-9a0c-5d6a4c1e2b90")


@functools.cache
def load_prompts(worker_name: str) -> dict[str, dict[str, str]]:
    """The prompts of one worker: {language: {part: text}} from `prompts/<worker>.yaml`."""
    path = importlib.resources.files("memscope.workers").joinpath("prompts", f"{worker_name}.yaml")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "en" not in data:
        raise ValueError(f"prompt file for worker {worker_name!r} must map languages (en, zh) to prompt parts")
    return data


def stable_id(*parts: object) -> str:
    """A deterministic id from its parts (uuid5): re-running a batch yields the same ids."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(str(p) for p in parts)))


def scope(ctx: Context) -> tuple[str, str | None]:
    """The (user_id, agent_id) an operation runs for; agent None means every agent."""
    return ctx["user_id"], ctx.get("agent_id")


def user_zone(worker: Worker, ctx: Context) -> ZoneInfo:
    """The user's zone for this call (input `timezone`), else the config default."""
    return worker.resources.zone(ctx.get("timezone"))


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


class LLMWorker(Worker):
    """A worker that asks the LLM for a structured answer using its en/zh prompts."""

    uses_llm = True
    prompt_languages: ClassVar[tuple[str, ...]] = ("en", "zh")

    def prompt(self, part: str, **values: Any) -> str:
        """A prompt part in the configured language, with `{placeholders}` filled."""
        prompts = load_prompts(self.name)
        language = self.resources.language if self.resources.language in prompts else "en"
        return prompts[language][part].format(**values)

    def ask(self, schema: type[T], **values: Any) -> T:
        """Render `system` and `user` prompts and get a validated `schema` answer."""
        assert self.resources.llm is not None, "the runner skips LLM workers when no LLM is configured"
        messages = [
            {"role": "system", "content": self.prompt("system", **values)},
            {"role": "user", "content": self.prompt("user", **values)},
        ]
        return self.resources.llm.structured(messages, schema, tag=self.name)


def agent_of(messages: Sequence[Message], ctx: Context) -> str:
    """The agent new memories belong to: the operation's, else the messages', else the default."""
    agent = ctx.get("agent_id")
    if agent:
        return str(agent)
    return messages[0].agent_id if messages else DEFAULT_AGENT
