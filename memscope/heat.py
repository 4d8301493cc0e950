"""Heat of a mid-term segment, after MemoryOS: H = a*N_visit + b*L_interaction + c*R_recency.

N_visit is how often retrieval returned the segment (its access_count), L_interaction how many turns
it holds, R_recency = exp(-hours since its last activity / tau). Visits and turns also fade with a
half-life from the last activity, so a segment that was hot long ago cools down.
"""

from __future__ import annotations

import contextlib
import math
from datetime import datetime

from memscope.config import HeatSettings
from memscope.models import MemoryNode

__all__ = ["LAST_ACTIVE", "PROMOTED_AT", "SEGMENT_KEY", "TURNS", "heat", "segment_heat"]

TURNS = "turns"  # metadata: turns in the segment
LAST_ACTIVE = "last_active_at"  # metadata: ISO time of its newest turn
PROMOTED_AT = "promoted_at"  # metadata: ISO time its heat last triggered the profile and beliefs update
SEGMENT_KEY = "segment: "  # prefix of a segment's key; the rest names the session (or day)


def heat(visits: int, turns: int, hours_since: float, weights: HeatSettings) -> float:
    """H = fade * (a*visits + b*turns) + c*exp(-hours/tau), fade = 0.5 ** (days / half_life_days)."""
    hours = max(0.0, hours_since)
    fade = 0.5 ** (hours / 24.0 / weights.half_life_days)
    recency = math.exp(-hours / weights.recency_tau_h)
    return fade * (weights.visit_weight * visits + weights.interaction_weight * turns) + (
        weights.recency_weight * recency
    )


def segment_heat(node: MemoryNode, now: datetime, weights: HeatSettings) -> float:
    """The heat of a segment memory at `now` (its last activity: newest turn or retrieval)."""
    last = node.updated_at
    stamp = node.metadata.get(LAST_ACTIVE)
    if isinstance(stamp, str):
        with contextlib.suppress(ValueError):
            last = datetime.fromisoformat(stamp)
    if node.last_accessed_at is not None:
        last = max(last, node.last_accessed_at)
    turns = node.metadata.get(TURNS)
    count = int(turns) if isinstance(turns, int | float) else 0
    return heat(node.access_count, count, (now - last).total_seconds() / 3600.0, weights)
