"""Render a session's visible turns in each provider's request format (see memscope.sessions)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from memscope.models import Role

if TYPE_CHECKING:
    from memscope.sessions import Prompt, Response

__all__ = ["render_anthropic", "render_gemini", "render_openai", "render_text"]

Turns = Sequence["Prompt | Response"]


def render_openai(turns: Turns) -> list[dict[str, Any]]:
    """OpenAI chat messages."""
    out: list[dict[str, Any]] = []
    for t in turns:
        item: dict[str, Any] = {"role": t.role.value, "content": t.content}
        if t.name and t.role is not Role.TOOL:
            item["name"] = t.name
        tool_calls = getattr(t, "tool_calls", None)
        if t.role is Role.ASSISTANT and tool_calls:
            item["tool_calls"] = tool_calls
            item["content"] = t.content or None
        if t.role is Role.TOOL:
            item["tool_call_id"] = getattr(t, "tool_call_id", None)
        out.append(item)
    return out


def _system_text(turns: Turns) -> str:
    return "\n\n".join(t.content for t in turns if t.role is Role.SYSTEM)


def _alternating(turns: Turns, assistant: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """(role, blocks) pairs, consecutive same-role turns merged, starting with a user turn."""
    merged: list[tuple[str, list[dict[str, Any]]]] = []
    for t in turns:
        if t.role is Role.SYSTEM:
            continue
        role = assistant if t.role is Role.ASSISTANT else "user"
        blocks: list[dict[str, Any]] = [{"text": t.content}] if t.content else []
        if t.role is Role.TOOL:
            blocks = [{"tool_result": t.content, "tool_call_id": getattr(t, "tool_call_id", None)}]
        if t.role is Role.ASSISTANT:
            blocks += [{"tool_call": c} for c in getattr(t, "tool_calls", [])]
        if not blocks:
            continue
        if merged and merged[-1][0] == role:
            merged[-1][1].extend(blocks)
        else:
            merged.append((role, blocks))
    if merged and merged[0][0] != "user":
        merged.insert(0, ("user", [{"text": "(conversation continues)"}]))
    return merged


def render_anthropic(turns: Turns) -> dict[str, Any]:
    """Anthropic Messages: system apart, strictly alternating user/assistant, starting with user."""
    messages = []
    for role, blocks in _alternating(turns, "assistant"):
        content = []
        for b in blocks:
            if "text" in b:
                content.append({"type": "text", "text": b["text"]})
            elif "tool_result" in b:
                content.append({"type": "tool_result", "tool_use_id": b["tool_call_id"], "content": b["tool_result"]})
            else:
                call = b["tool_call"]
                fn = call.get("function", {})
                arguments = _json_args(fn.get("arguments"))
                content.append({"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": arguments})
        messages.append({"role": role, "content": content})
    out: dict[str, Any] = {"messages": messages}
    if system := _system_text(turns):
        out["system"] = system
    return out


def render_gemini(turns: Turns) -> dict[str, Any]:
    """Gemini `contents` with `user`/`model` roles and `parts`, plus `system_instruction`."""
    contents = []
    for role, blocks in _alternating(turns, "model"):
        parts = []
        for b in blocks:
            if "text" in b:
                parts.append({"text": b["text"]})
            elif "tool_result" in b:
                response = {"name": b["tool_call_id"] or "tool", "response": {"content": b["tool_result"]}}
                parts.append({"functionResponse": response})
            else:
                fn = b["tool_call"].get("function", {})
                parts.append({"functionCall": {"name": fn.get("name"), "args": _json_args(fn.get("arguments"))}})
        contents.append({"role": role, "parts": parts})
    out: dict[str, Any] = {"contents": contents}
    if system := _system_text(turns):
        out["system_instruction"] = {"parts": [{"text": system}]}
    return out


def render_text(turns: Turns) -> str:
    """One `Speaker: text` line per turn."""
    labels = {Role.USER: "User", Role.ASSISTANT: "Assistant", Role.SYSTEM: "System", Role.TOOL: "Tool"}
    return "\n".join(f"{t.name or labels[t.role]}: {t.content}" for t in turns)


def _json_args(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except json.JSONDecodeError:
            return {"raw": arguments}
    return arguments or {}
