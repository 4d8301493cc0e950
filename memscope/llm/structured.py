"""Structured output: build the request for a pydantic schema, parse the answer, repair it once."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pydantic
from pydantic import BaseModel

from memscope.errors import ModelOutputError

__all__ = [
    "WORKER_HEADER",
    "extract_json_text",
    "json_schema_format",
    "parse_answer",
    "repair_messages",
    "run_structured",
    "schema_name",
    "schema_prompt",
    "strip_think",
    "with_schema_prompt",
]

T = TypeVar("T", bound=BaseModel)

WORKER_HEADER = "X-Memscope-Worker"
"""HTTP header naming the worker that made a chat call (for logs, proxies and the test server)."""

_THINK_PAIR = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?```\s*$", re.DOTALL)
SCHEMA_MARKER = "JSON schema of the answer:"


def strip_think(text: str) -> str:
    """Remove reasoning sections (`<think>...</think>`), a leading unterminated one, and a dangling one."""
    text = _THINK_PAIR.sub("", text)
    lowered = text.lower()
    if "</think>" in lowered:  # reasoning whose opening tag was in the prompt template
        text = text[lowered.rindex("</think>") + len("</think>") :]
        lowered = text.lower()
    if "<think>" in lowered:  # reasoning cut off before it closed
        text = text[: lowered.index("<think>")]
    return text.strip()


def extract_json_text(text: str) -> str:
    """The JSON part of an answer: think-sections and a ```json fence removed."""
    text = strip_think(text)
    match = _FENCE.match(text)
    if match:
        return match.group(1).strip()
    if "```" in text:  # prose around a fenced block
        inner = re.search(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", text, re.DOTALL)
        if inner:
            return inner.group(1).strip()
    return text


def schema_name(schema: type[BaseModel]) -> str:
    """A provider-safe name for a schema (letters, digits, `_`, `-`; at most 64 characters)."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", schema.__name__)[:64] or "answer"


def json_schema_format(schema: type[BaseModel]) -> dict[str, Any]:
    """OpenAI `response_format` asking for JSON that follows `schema` (non-strict)."""
    return {
        "type": "json_schema",
        "json_schema": {"name": schema_name(schema), "schema": schema.model_json_schema(), "strict": False},
    }


def schema_prompt(schema: type[BaseModel]) -> str:
    """Instruction text carrying the schema, for providers with JSON mode only."""
    return (
        "Answer with a single JSON object and nothing else (no prose, no code fence).\n"
        f"{SCHEMA_MARKER}\n{json.dumps(schema.model_json_schema(), ensure_ascii=False)}"
    )


def with_schema_prompt(messages: Sequence[dict[str, Any]], schema: type[BaseModel]) -> list[dict[str, Any]]:
    """The messages with the schema instruction appended to the system message (or a new one first)."""
    out = [dict(m) for m in messages]
    instruction = schema_prompt(schema)
    if out and out[0].get("role") == "system" and isinstance(out[0].get("content"), str):
        out[0]["content"] = f"{out[0]['content']}\n\n{instruction}"
    else:
        out.insert(0, {"role": "system", "content": instruction})
    return out


def parse_answer(text: str, schema: type[T]) -> T:
    """Parse an answer into `schema`; raises ValueError (JSON) or pydantic.ValidationError."""
    return schema.model_validate(json.loads(extract_json_text(text)))


def repair_messages(
    messages: Sequence[dict[str, Any]], answer: str, error: str, schema: type[BaseModel]
) -> list[dict[str, Any]]:
    """The conversation plus the invalid answer and the error, asking for corrected JSON only."""
    return [
        *messages,
        {"role": "assistant", "content": answer},
        {
            "role": "user",
            "content": (
                f"Your answer is not valid JSON for the schema {schema_name(schema)}: {error}\n"
                "Reply with the corrected JSON object only, no explanation and no code fence."
            ),
        },
    ]


def _error_text(exc: Exception) -> str:
    if isinstance(exc, pydantic.ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors())
    return f"{type(exc).__name__}: {exc}"


def run_structured(
    send: Callable[[list[dict[str, Any]]], str], messages: Sequence[dict[str, Any]], schema: type[T]
) -> T:
    """Ask via `send` (messages -> answer text), validate, and make exactly one repair attempt."""
    first = list(messages)
    answer = send(first)
    try:
        return parse_answer(answer, schema)
    except (ValueError, pydantic.ValidationError) as exc:
        error = _error_text(exc)
    answer2 = send(repair_messages(first, answer, error, schema))
    try:
        return parse_answer(answer2, schema)
    except (ValueError, pydantic.ValidationError) as exc:
        raise ModelOutputError(
            f"the model's answer is not valid {schema_name(schema)} even after one repair attempt: "
            f"{_error_text(exc)}; answer began: {answer2[:200]!r}"
        ) from exc
