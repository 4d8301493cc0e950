"""Structured conversation logs: Prompt/Response turns in a Session that renders to each provider's format.

Renders: `openai` (chat messages), `anthropic` (system apart, strictly alternating user/assistant,
starting with user), `gemini` (`contents` with `user`/`model` roles and `parts`, `system_instruction`),
and `text`. Masked turns stay in the log but are left out of renders, searches and token counts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from memscope.errors import ValidationError
from memscope.models import Message, Role, new_id, utcnow

__all__ = ["Prompt", "Response", "Session", "estimate_tokens"]

Format = Literal["openai", "anthropic", "gemini", "text"]
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def estimate_tokens(text: str) -> int:
    """A provider-neutral estimate: one token per CJK character, about four characters per token otherwise."""
    cjk = len(_CJK.findall(text))
    return cjk + -(-(len(text) - cjk) // 4)


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
    """An assistant turn with how it was generated."""

    role: Role = Role.ASSISTANT
    model: str | None = None
    temperature: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)


class Session(BaseModel):
    """An ordered log of turns."""

    id: str = Field(default_factory=new_id)
    turns: list[Prompt | Response] = Field(default_factory=list)

    # -- building --------------------------------------------------------------------------------
    def add_prompt(self, content: str, role: Role | str = Role.USER, **fields: Any) -> Prompt:
        """Append a user/system/tool turn."""
        role = Role(role)
        if role is Role.ASSISTANT:
            raise ValidationError("an assistant turn is a Response: use add_response")
        turn = Prompt(content=content, role=role, **fields)
        self.turns.append(turn)
        return turn

    def add_response(self, content: str, **fields: Any) -> Response:
        """Append an assistant turn with its generation metadata."""
        turn = Response(content=content, **fields)
        self.turns.append(turn)
        return turn

    def record_openai(
        self, completion: Any, *, latency_ms: float | None = None, temperature: float | None = None
    ) -> Response:
        """Append the first choice of an `openai` SDK ChatCompletion (tool calls included)."""
        data = completion.model_dump() if hasattr(completion, "model_dump") else dict(completion)
        choices = data.get("choices") or []
        if not choices:
            raise ValidationError("the completion has no choices to record")
        message = choices[0].get("message") or {}
        usage = data.get("usage") or {}
        return self.add_response(
            message.get("content") or "",
            model=data.get("model"),
            temperature=temperature,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            latency_ms=latency_ms,
            tool_calls=list(message.get("tool_calls") or []),
            metadata={"finish_reason": choices[0].get("finish_reason"), "response_id": data.get("id")},
        )

    @classmethod
    def from_messages(cls, messages: Iterable[Message], session_id: str | None = None) -> Session:
        """A session from stored messages (assistant messages become Responses)."""
        session = cls(id=session_id or new_id())
        for m in messages:
            meta = dict(m.metadata)
            if m.role is Role.ASSISTANT:
                session.turns.append(
                    Response(
                        id=m.id,
                        content=m.content,
                        name=m.name,
                        created_at=m.created_at,
                        tool_calls=list(meta.pop("tool_calls", []) or []),
                        model=meta.pop("model", None),
                        metadata=meta,
                    )
                )
            else:
                session.turns.append(
                    Prompt(
                        id=m.id,
                        role=m.role,
                        content=m.content,
                        name=m.name,
                        created_at=m.created_at,
                        tool_call_id=meta.pop("tool_call_id", None),
                        metadata=meta,
                    )
                )
        return session

    # -- masking, search, size -------------------------------------------------------------------
    def mask(self, which: int | str | Callable[[Turn], bool], masked: bool = True) -> int:
        """Mask turns by index, id or predicate; returns how many changed."""
        changed = 0
        for index, turn in enumerate(self.turns):
            hit = which(turn) if callable(which) else (index == which if isinstance(which, int) else turn.id == which)
            if hit and turn.masked != masked:
                turn.masked, changed = masked, changed + 1
        return changed

    def unmask(self, which: int | str | Callable[[Turn], bool]) -> int:
        """Unmask turns; returns how many changed."""
        return self.mask(which, masked=False)

    def visible(self) -> list[Prompt | Response]:
        """Turns that are not masked."""
        return [t for t in self.turns if not t.masked]

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

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the session as JSON."""
        Path(path).write_text(self.model_dump_json(indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Session:
        """Read a session written by `save`."""
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))

    # -- rendering -------------------------------------------------------------------------------
    def render(self, format: Format = "openai") -> Any:
        """The visible turns in a provider's request format."""
        renderers = {"openai": self._openai, "anthropic": self._anthropic, "gemini": self._gemini, "text": self._text}
        if format not in renderers:
            raise ValidationError(f"unknown format {format!r}; choose one of: {', '.join(renderers)}")
        return renderers[format]()

    def _openai(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for t in self.visible():
            item: dict[str, Any] = {"role": t.role.value, "content": t.content}
            if t.name and t.role is not Role.TOOL:
                item["name"] = t.name
            if isinstance(t, Response) and t.tool_calls:
                item["tool_calls"] = t.tool_calls
                item["content"] = t.content or None
            if isinstance(t, Prompt) and t.role is Role.TOOL:
                item["tool_call_id"] = t.tool_call_id
            out.append(item)
        return out

    def _system_text(self) -> str:
        return "\n\n".join(t.content for t in self.visible() if t.role is Role.SYSTEM)

    def _alternating(self, assistant: str) -> list[tuple[str, list[dict[str, Any]]]]:
        """(role, blocks) pairs, consecutive same-role turns merged, starting with a user turn."""
        merged: list[tuple[str, list[dict[str, Any]]]] = []
        for t in self.visible():
            if t.role is Role.SYSTEM:
                continue
            role = assistant if t.role is Role.ASSISTANT else "user"
            blocks: list[dict[str, Any]] = [{"text": t.content}] if t.content else []
            if isinstance(t, Prompt) and t.role is Role.TOOL:
                blocks = [{"tool_result": t.content, "tool_call_id": t.tool_call_id}]
            if isinstance(t, Response):
                blocks += [{"tool_call": c} for c in t.tool_calls]
            if not blocks:
                continue
            if merged and merged[-1][0] == role:
                merged[-1][1].extend(blocks)
            else:
                merged.append((role, blocks))
        if merged and merged[0][0] != "user":
            merged.insert(0, ("user", [{"text": "(conversation continues)"}]))
        return merged

    def _anthropic(self) -> dict[str, Any]:
        messages = []
        for role, blocks in self._alternating("assistant"):
            content = []
            for b in blocks:
                if "text" in b:
                    content.append({"type": "text", "text": b["text"]})
                elif "tool_result" in b:
                    content.append(
                        {"type": "tool_result", "tool_use_id": b["tool_call_id"], "content": b["tool_result"]}
                    )
                else:
                    call = b["tool_call"]
                    fn = call.get("function", {})
                    content.append(
                        {
                            "type": "tool_use",
                            "id": call.get("id"),
                            "name": fn.get("name"),
                            "input": _json_args(fn.get("arguments")),
                        }
                    )
            messages.append({"role": role, "content": content})
        out: dict[str, Any] = {"messages": messages}
        if system := self._system_text():
            out["system"] = system
        return out

    def _gemini(self) -> dict[str, Any]:
        contents = []
        for role, blocks in self._alternating("model"):
            parts = []
            for b in blocks:
                if "text" in b:
                    parts.append({"text": b["text"]})
                elif "tool_result" in b:
                    parts.append(
                        {
                            "functionResponse": {
                                "name": b["tool_call_id"] or "tool",
                                "response": {"content": b["tool_result"]},
                            }
                        }
                    )
                else:
                    fn = b["tool_call"].get("function", {})
                    parts.append({"functionCall": {"name": fn.get("name"), "args": _json_args(fn.get("arguments"))}})
            contents.append({"role": role, "parts": parts})
        out: dict[str, Any] = {"contents": contents}
        if system := self._system_text():
            out["system_instruction"] = {"parts": [{"text": system}]}
        return out

    def _text(self) -> str:
        labels = {Role.USER: "User", Role.ASSISTANT: "Assistant", Role.SYSTEM: "System", Role.TOOL: "Tool"}
        return "\n".join(f"{t.name or labels[t.role]}: {t.content}" for t in self.visible())


def _json_args(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except json.JSONDecodeError:
            return {"raw": arguments}
    return arguments or {}
