"""Beliefs: short, actionable conclusions about a user for the business the assistant serves.

A belief is an active memory of type `belief`, citing the profile entries and insights it rests on.
It records a digest of those memories (`sources_digest`), so derive_beliefs asks the model again
only when they changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from memscope.models import DEFAULT_AGENT, MemoryNode, MemoryType
from memscope.stores.base import MemoryFilter, Store

__all__ = ["SOURCES_DIGEST", "load_beliefs", "sources_digest"]

SOURCES_DIGEST = "sources_digest"
MAX_BELIEFS = 200


def load_beliefs(store: Store, user_id: str, agent_id: str | None) -> list[MemoryNode]:
    """The active beliefs of one agent of the user (the default agent when None), oldest first."""
    wanted = MemoryFilter(agent_id=agent_id or DEFAULT_AGENT, memory_types=(MemoryType.BELIEF,))
    return sorted(store.list_memories(user_id, wanted, limit=MAX_BELIEFS), key=lambda n: (n.created_at, n.id))


def sources_digest(business: str, memories: Iterable[MemoryNode]) -> str:
    """A digest of the business description and the memories beliefs are derived from (ids and texts)."""
    h = hashlib.sha256(business.encode("utf-8"))
    for node in sorted(memories, key=lambda n: n.id):
        h.update(b"\x1f" + node.id.encode("utf-8") + b"\x1e" + node.content.encode("utf-8"))
    return h.hexdigest()[:32]
