"""The user's profile: structured entries (preferences, facts, traits, goals) stored as PROFILE memories.

Each entry is one active memory of type `profile` whose key is `<section>: <slot>` ("preferences:
diet"); it cites the observations it rests on in `source_memory_ids`. A newer value for a slot
expires the old entry (superseded_by the new one), so `history()` shows how the profile changed.
A profile belongs to one agent of the user: the agent given, else the default agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from memscope.models import DEFAULT_AGENT, MemoryNode, MemoryType
from memscope.reflection import normalise_key
from memscope.stores.base import MemoryFilter, Store

__all__ = ["SECTIONS", "Profile", "ProfileEntry", "load_profile_nodes", "profile_key", "profile_of"]

SECTIONS = ("preferences", "facts", "traits", "goals")
MAX_ENTRIES = 500


def profile_key(section: str, slot: str) -> str:
    """The key of a profile entry: `<section>: <normalised slot>`."""
    return f"{section}: {normalise_key(slot).replace(':', ' ')}".strip()


@dataclass(frozen=True)
class ProfileEntry:
    """One entry: its section and slot, the text, and the memories it cites."""

    id: str
    section: str
    slot: str
    text: str
    source_memory_ids: list[str]
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"id": self.id, "section": self.section, "slot": self.slot, "text": self.text,
                "source_memory_ids": list(self.source_memory_ids), "updated_at": self.updated_at.isoformat()}


@dataclass
class Profile:
    """A user's profile for one agent, entries grouped by section (each sorted by slot)."""

    user_id: str
    agent_id: str
    preferences: list[ProfileEntry] = field(default_factory=list)
    facts: list[ProfileEntry] = field(default_factory=list)
    traits: list[ProfileEntry] = field(default_factory=list)
    goals: list[ProfileEntry] = field(default_factory=list)

    def entries(self) -> list[ProfileEntry]:
        """Every entry, section by section."""
        return [e for section in SECTIONS for e in getattr(self, section)]

    def __bool__(self) -> bool:
        return bool(self.entries())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: {user_id, agent_id, preferences: [...], facts: [...], ...}."""
        data: dict[str, Any] = {"user_id": self.user_id, "agent_id": self.agent_id}
        for section in SECTIONS:
            data[section] = [e.to_dict() for e in getattr(self, section)]
        return data


def load_profile_nodes(store: Store, user_id: str, agent_id: str | None) -> list[MemoryNode]:
    """The active profile memories of one agent of the user (the default agent when None)."""
    wanted = MemoryFilter(agent_id=agent_id or DEFAULT_AGENT, memory_types=(MemoryType.PROFILE,))
    return store.list_memories(user_id, wanted, limit=MAX_ENTRIES)


def profile_of(user_id: str, agent_id: str | None, nodes: Sequence[MemoryNode]) -> Profile:
    """Profile memories as a Profile; a node whose key names no known section counts as a fact."""
    profile = Profile(user_id=user_id, agent_id=agent_id or DEFAULT_AGENT)
    for node in nodes:
        section, _, slot = (node.key or "").partition(": ")
        if section not in SECTIONS:
            section, slot = "facts", node.key or ""
        entry = ProfileEntry(node.id, section, slot, node.content, list(node.source_memory_ids), node.updated_at)
        getattr(profile, section).append(entry)
    for section in SECTIONS:
        getattr(profile, section).sort(key=lambda e: (e.slot, e.id))
    return profile
