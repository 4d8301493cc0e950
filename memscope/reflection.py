"""Reflection vocabulary: which observations a reflection has processed, insight keys, memory lines."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from memscope.models import LEGACY_REFLECTED_KEY, MemoryNode

__all__ = ["is_reflected", "memory_line", "normalise_key"]


def is_reflected(node: MemoryNode) -> bool:
    """True when a reflection has already processed this observation (`reflected_at` is set)."""
    return node.reflected_at is not None or LEGACY_REFLECTED_KEY in node.metadata


MAX_KEY_CHARS = 80


def normalise_key(text: str) -> str:
    """An insight key in canonical form: lower case, single spaces, no surrounding punctuation or quotes."""
    key = re.sub(r"\s*[:\uff1a]\s*", ": ", re.sub(r"\s+", " ", text))
    key = key.strip().strip("\"'`.,;\u3002\uff0c").strip().lower()
    return key[:MAX_KEY_CHARS].rstrip()


_GRANULARITY_FORMAT = {"month": "%Y-%m", "year": "%Y"}


def memory_line(label: str, node: MemoryNode, zone: ZoneInfo) -> str:
    """A memory as the reflection prompts show it: `[label] 2024-03-05 Tue: text (about 2024-03)`."""
    line = f"[{label}] {node.created_at.astimezone(zone):%Y-%m-%d %a}: {node.content}"
    if node.event_time is not None:
        fmt = _GRANULARITY_FORMAT.get(str(node.event_time.granularity), "%Y-%m-%d")
        line += f" (about {node.event_time.start.astimezone(zone):{fmt}})"
    return line
