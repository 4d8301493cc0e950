"""Structured conversation logs: Prompt/Response turns in a Session that renders to each provider's format.

Renders: `openai` (chat messages), `anthropic` (system apart, strictly alternating user/assistant,
starting with user), `gemini` (`contents` with `user`/`model` roles and `parts`, `system_instruction`),
and `text`. Masked turns, and responses that are not the selected one for their prompt, stay in the
log but are left out of renders, searches and token counts.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr

from memscope.errors import ValidationError
from memscope.models import Message, Role, new_id, utcnow
from memscope.session_render import render_anthropic, render_gemini, render_openai, render_text

__all__ = ["Prompt", "Response", "Session", "SessionSizeWarning", "estimate_tokens"]

Format = Literal["openai", "anthropic", "gemini", "text"]
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
TURN_KEY = "session_turn"  # metadata key that carries a turn's own fields through the message store
DEFAULT_SIZE_WARNING = 1_048_576  # bytes of JSON
_SESSION_FIELDS = ("title", "created_at", "modified_at", "size_warning_bytes")


def estimate_tokens(text: str) -> int:
    """A provider-neutral estimate: one token per CJK character, about four characters per token otherwise."""
    cjk = len(_CJK.findall(text))
    return cjk + -(-(len(text) - cjk) // 4)


class SessionSizeWarning(UserWarning):
    """A session grew past its `size_warning_bytes`."""


class Turn(BaseModel):
    """One turn of a session."""

    id: str = Field(default_factory=new_id)
    role: Role
    content: str = ""
    name: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    masked: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)


class Prompt(Turn):
    """A user, system or tool turn (a tool turn answers `tool_call_id`)."""

    role: Role = Role.USER
    tool_call_id: str | None = None


class Response(Turn):
    """An assistant turn with how it was generated; `reply_to` is the prompt it answers."""

    role: Role = Role.ASSISTANT
    model: str | None = None
    temperature: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    score: float | None = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    reply_to: str | None = None
    selected: bool = True


Which = int | str  # a turn's index in `turns`, or its id


class Session(BaseModel):
    """An ordered log of turns with a title and its created and modified times."""

    id: str = Field(default_factory=new_id)
    title: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    modified_at: datetime = Field(default_factory=utcnow)
    size_warning_bytes: int | None = DEFAULT_SIZE_WARNING
    turns: list[Prompt | Response] = Field(default_factory=list)
    _size: int | None = PrivateAttr(default=None)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in ("title", "turns"):
            self.touch()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Session):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__  # fields only, not the size cache

    __hash__ = None  # type: ignore[assignment]

    def touch(self) -> None:
        """Set `modified_at` to now (every change made through the session's methods does)."""
        super().__setattr__("modified_at", utcnow())
        self._size = None

    # -- building --------------------------------------------------------------------------------
    def add_prompt(self, content: str, role: Role | str = Role.USER, **fields: Any) -> Prompt:
        """Append a user/system/tool turn."""
        role = Role(role)
        if role is Role.ASSISTANT:
            raise ValidationError("an assistant turn is a Response: use add_response")
        return self._append(Prompt(content=content, role=role, **fields))

    def add_response(self, content: str, **fields: Any) -> Response:
        """Add an assistant turn; it answers the latest user or tool prompt unless `reply_to` names one.

        With `selected=False` it is an alternative answer, kept beside the selected one (see `select_response`).
        """
        turn = Response(content=content, **fields)
        if turn.reply_to is None:
            prompts = (t for t in reversed(self.turns) if isinstance(t, Prompt) and t.role is not Role.SYSTEM)
            turn.reply_to = next((t.id for t in prompts), None)
        elif not any(t.id == turn.reply_to for t in self.turns):
            raise ValidationError(f"reply_to {turn.reply_to!r} is not a turn of session {self.id!r}")
        if turn.selected or turn.reply_to is None:
            return self._append(turn)
        group = [i for i, t in enumerate(self.turns) if turn.reply_to in (t.id, getattr(t, "reply_to", None))]
        self.turns.insert(max(group) + 1, turn)
        self.touch()
        return turn

    def record_openai(
        self, completion: Any, *, latency_ms: float | None = None, temperature: float | None = None, **fields: Any
    ) -> Response:
        """Add the first choice of an `openai` SDK ChatCompletion (tool calls included)."""
        data = completion.model_dump() if hasattr(completion, "model_dump") else dict(completion)
        choices = data.get("choices") or []
        if not choices:
            raise ValidationError("the completion has no choices to record")
        message = choices[0].get("message") or {}
        usage = data.get("usage") or {}
        meta = {"finish_reason": choices[0].get("finish_reason"), "response_id": data.get("id")}
        return self.add_response(
            message.get("content") or "",
            model=data.get("model"),
            temperature=temperature,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            latency_ms=latency_ms,
            tool_calls=list(message.get("tool_calls") or []),
            metadata={**meta, **fields.pop("metadata", {})},
            **fields,
        )

    def record_dashscope(
        self, response: Any, *, model: str, latency_ms: float | None = None, temperature: float | None = None,
        **fields: Any,
    ) -> Response:
        """Add the answer of a `dashscope.Generation.call` (message or text result format); a failed call is refused."""
        status = getattr(response, "status_code", None)
        if status != 200:
            raise ValidationError(
                f"the DashScope call failed (status {status}, code {getattr(response, 'code', None)!r}:"
                f" {getattr(response, 'message', None)!r}); there is no answer to record"
            )
        output, usage = response.output or {}, response.usage or {}
        choices = output.get("choices") or []
        message = (choices[0].get("message") or {}) if choices else {"content": output.get("text") or ""}
        finish = choices[0].get("finish_reason") if choices else output.get("finish_reason")
        content = message.get("content") or ""
        if isinstance(content, list):  # multimodal answers: text parts
            content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("text"))
        meta = {"finish_reason": finish, "response_id": getattr(response, "request_id", None)}
        return self.add_response(
            content,
            model=model,
            temperature=temperature,
            prompt_tokens=usage.get("input_tokens"),
            completion_tokens=usage.get("output_tokens"),
            latency_ms=latency_ms,
            tool_calls=list(message.get("tool_calls") or []),
            metadata={**meta, **fields.pop("metadata", {})},
            **fields,
        )

    def _append(self, turn: Any) -> Any:
        before = self._size
        self.turns.append(turn)
        self.touch()
        if before is not None:  # keep the cached size current without dumping the whole session again
            self._size = before + len(turn.model_dump_json().encode()) + 1
        self._warn_if_large()
        return turn

    # -- turns by id or index --------------------------------------------------------------------
    def index(self, which: Which) -> int:
        """The position of a turn given by index (negative counts from the end) or id."""
        if isinstance(which, bool) or not isinstance(which, int | str):
            raise ValidationError(f"a turn is named by its index or id, got {type(which).__name__}")
        if isinstance(which, int):
            if -len(self.turns) <= which < len(self.turns):
                return which % len(self.turns)
            raise ValidationError(f"no turn at index {which}: session {self.id!r} has {len(self.turns)} turns")
        for i, t in enumerate(self.turns):
            if t.id == which:
                return i
        raise ValidationError(f"no turn with id {which!r} in session {self.id!r}")

    def get(self, which: Which) -> Prompt | Response:
        """A turn by index or id."""
        return self.turns[self.index(which)]

    def remove(self, which: Which) -> Prompt | Response:
        """Remove a turn by index or id and return it."""
        turn = self.turns.pop(self.index(which))
        self.touch()
        return turn

    def clear(self) -> None:
        """Remove every turn (title and times stay)."""
        self.turns.clear()
        self.touch()

    def responses(self, prompt: Which) -> list[Response]:
        """Every response to a prompt, the selected one and the alternatives, in order."""
        prompt_id = self.get(prompt).id
        return [t for t in self.turns if isinstance(t, Response) and t.reply_to == prompt_id]

    def select_response(self, which: Which) -> Response:
        """Make a response the one rendered for its prompt; the other responses to that prompt become alternatives."""
        chosen = self.get(which)
        if not isinstance(chosen, Response):
            raise ValidationError(f"turn {chosen.id!r} is a {chosen.role.value} prompt, not a response")
        for t in self.turns:
            if isinstance(t, Response) and t.reply_to == chosen.reply_to and chosen.reply_to is not None:
                t.selected = t is chosen
        chosen.selected = True
        self.touch()
        return chosen

    # -- masking, search, size -------------------------------------------------------------------
    def mask(self, which: Which | Callable[[Turn], bool], masked: bool = True) -> int:
        """Mask turns by index, id or predicate; returns how many changed."""
        hits = [t for t in self.turns if which(t)] if callable(which) else [self.get(which)]
        changed = [t for t in hits if t.masked != masked]
        for t in changed:
            t.masked = masked
        if changed:
            self.touch()
        return len(changed)

    def unmask(self, which: Which | Callable[[Turn], bool]) -> int:
        """Unmask turns; returns how many changed."""
        return self.mask(which, masked=False)

    def visible(self) -> list[Prompt | Response]:
        """Turns that renders show: not masked, and for responses, the selected one."""
        return [t for t in self.turns if not t.masked and (not isinstance(t, Response) or t.selected)]

    def search(self, pattern: str, *, regex: bool = False, case_sensitive: bool = False) -> list[Prompt | Response]:
        """Visible turns whose content contains `pattern` (text, or a regular expression)."""
        flags = 0 if case_sensitive else re.IGNORECASE
        try:
            compiled = re.compile(pattern if regex else re.escape(pattern), flags)
        except re.error as exc:
            raise ValidationError(f"invalid regular expression {pattern!r}: {exc}") from exc
        return [t for t in self.visible() if compiled.search(t.content)]

    def estimate_tokens(self) -> int:
        """Estimated tokens of the visible turns (plus a few per turn for roles)."""
        return sum(estimate_tokens(t.content) + 4 for t in self.visible())

    def size_bytes(self) -> int:
        """The session's size as UTF-8 JSON (what `save` writes, without indentation)."""
        if self._size is None:
            self._size = len(self.model_dump_json().encode())
        return self._size

    def _warn_if_large(self) -> None:
        limit = self.size_warning_bytes
        if limit is not None and self.size_bytes() > limit:
            warnings.warn(
                SessionSizeWarning(
                    f"session {self.id!r} is {self.size_bytes():,} bytes, over its size_warning_bytes of {limit:,}:"
                    " start a new session, remove or clear old turns, or raise size_warning_bytes (None: never warn)"
                ),
                stacklevel=3,
            )

    # -- copies and persistence ------------------------------------------------------------------
    def clone(self, *, regenerate_ids: bool = False) -> Session:
        """A deep copy with the same ids, or with new session and turn ids (replies follow their prompts)."""
        copy = self.model_copy(deep=True)
        if not regenerate_ids:
            return copy
        fresh = {t.id: new_id() for t in copy.turns}
        copy.id = new_id()
        for t in copy.turns:
            t.id = fresh[t.id]
            if isinstance(t, Response) and t.reply_to in fresh:
                t.reply_to = fresh[t.reply_to]
        return copy

    def save(self, path: str | Path) -> None:
        """Write the session as JSON."""
        Path(path).write_text(self.model_dump_json(indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Session:
        """Read a session written by `save`."""
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))

    def to_messages(self) -> list[dict[str, Any]]:
        """The turns as `add_messages` dicts; every field a Message lacks rides in metadata[TURN_KEY]."""
        head = self.model_dump(mode="json", include=set(_SESSION_FIELDS))
        out = []
        for t in self.turns:
            data = t.model_dump(mode="json", exclude_defaults=True, exclude={"id", "role", "content", "created_at"})
            item: dict[str, Any] = {"id": t.id, "role": t.role.value, "content": t.content, "created_at": t.created_at}
            for key in ("name", "tool_call_id", "tool_calls"):
                if data.get(key):
                    item[key] = data.pop(key)
            item["metadata"] = {**data.pop("metadata", {}), TURN_KEY: {**data, "session": head}}
            out.append(item)
        return out

    @classmethod
    def from_messages(cls, messages: Iterable[Message], session_id: str | None = None) -> Session:
        """A session from stored messages (assistant messages become Responses); `to_messages` turns come back equal."""
        from memscope.messages import EXTERNAL_ID

        turns: list[Prompt | Response] = []
        head: dict[str, Any] = {}
        for m in messages:
            meta = dict(m.metadata)
            own = dict(meta.pop(TURN_KEY, None) or {})
            head = own.pop("session", None) or head
            fields: dict[str, Any] = {
                **own,
                "id": meta.pop(EXTERNAL_ID, m.id),
                "content": m.content,
                "name": m.name,
                "created_at": m.created_at,
            }
            if m.role is Role.ASSISTANT:
                fields.setdefault("model", meta.pop("model", None))
                tool_calls = list(meta.pop("tool_calls", None) or [])
                turns.append(Response(**fields, tool_calls=tool_calls, metadata=meta))
            else:
                tool_call_id = meta.pop("tool_call_id", None)
                turns.append(Prompt(**fields, role=m.role, tool_call_id=tool_call_id, metadata=meta))
        kept = {k: head[k] for k in _SESSION_FIELDS if k in head}
        return cls.model_validate({"id": session_id or new_id(), **kept, "turns": turns})

    # -- rendering -------------------------------------------------------------------------------
    def render(self, format: Format = "openai") -> Any:
        """The visible turns in a provider's request format."""
        renderers: dict[str, Callable[[Any], Any]] = {
            "openai": render_openai, "anthropic": render_anthropic, "gemini": render_gemini, "text": render_text
        }
        if format not in renderers:
            raise ValidationError(f"unknown format {format!r}; choose one of: {', '.join(renderers)}")
        return renderers[format](self.visible())
