"""What a caller may send: id normalisation, size limits, and JSON-safe metadata (documented in the README).

Ids (user, agent, session) are NFKC-normalised and stripped, so " Tom" and the full-width form of "Tom"
are "Tom"; ids stay case-sensitive. Control, format (zero-width, bidi) and line/paragraph
separator characters are refused, in ids and names.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Mapping
from typing import Any

from memscope.errors import ValidationError

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_METADATA_BYTES",
    "MAX_METADATA_DEPTH",
    "MAX_NAME_LENGTH",
    "check_metadata",
    "check_text",
    "normalize_id",
]

MAX_ID_LENGTH = 256
MAX_NAME_LENGTH = 256
MAX_METADATA_BYTES = 64 * 1024  # as JSON
MAX_METADATA_DEPTH = 20
_FORBIDDEN = {"Cc": "control characters", "Cf": "invisible formatting characters (zero-width or bidi)",
              "Zl": "a line separator", "Zp": "a paragraph separator", "Cs": "a lone surrogate"}  # fmt: skip


def normalize_id(value: Any, what: str = "user_id", limit: int = MAX_ID_LENGTH) -> str:
    """`value` NFKC-normalised and stripped; ValidationError if empty, too long, or holding hidden characters."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise ValidationError(f"{what} is {len(value):,} characters long; the limit is {limit}")
    _refuse_hidden(value, what)
    normal = unicodedata.normalize("NFKC", value).strip()
    if not normal:
        raise ValidationError(f"{what} must not be empty")
    _refuse_hidden(normal, what)
    if len(normal) > limit:
        raise ValidationError(f"{what} is {len(normal):,} characters long; the limit is {limit}")
    return normal


def _refuse_hidden(value: str, what: str) -> None:
    for char in value:
        kind = _FORBIDDEN.get(unicodedata.category(char))
        if kind is not None:
            raise ValidationError(
                f"{what} {value[:40]!r} contains {kind} (U+{ord(char):04X}); use printable text"
            )


def check_text(value: Any, what: str) -> str:
    """`value` if it is a string that encodes as UTF-8 (no lone surrogates); else ValidationError."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"{what} contains a lone surrogate (U+{ord(value[exc.start]):04X}) at position {exc.start};"
            " send valid Unicode text"
        ) from None
    return value


def check_metadata(value: Any, what: str = "metadata") -> dict[str, Any]:
    """A JSON-safe mapping: string keys, JSON values, finite numbers, at most 20 deep and 64 KB."""
    if not isinstance(value, Mapping):
        raise ValidationError(f"{what} must be a mapping of names to JSON values, got {type(value).__name__}")
    value = dict(value)
    _check_json(value, what, 0)
    size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise ValidationError(f"{what} is {size:,} bytes as JSON; the limit is {MAX_METADATA_BYTES:,}")
    return value


def _check_json(value: Any, where: str, depth: int) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise ValidationError(f"{where} is nested more than {MAX_METADATA_DEPTH} levels deep; flatten it")
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"{where} is {value}; JSON has no NaN or infinity, send a number or null")
        return
    if isinstance(value, str):
        check_text(value, where)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(f"{where} has a key of type {type(key).__name__}; keys must be strings")
            check_text(key, f"a key of {where}")
            _check_json(item, f"{where}.{key[:40]}", depth + 1)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]", depth + 1)
        return
    raise ValidationError(
        f"{where} is a {type(value).__name__}, which JSON cannot hold; send text, a number, true/false,"
        " null, a list or a mapping"
    )
