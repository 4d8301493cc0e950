"""Reciprocal rank fusion, done in Python so it works on every backend and licence."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

__all__ = ["rrf_fuse"]

K = TypeVar("K", bound=Hashable)


def rrf_fuse(rankings: Sequence[Sequence[K]], k: int = 60, weights: Sequence[float] | None = None) -> dict[K, float]:
    """Fuse ranked id lists: score(id) = sum_i weight_i / (k + rank_i(id)), ranks 1-based."""
    weights = weights or [1.0] * len(rankings)
    scores: dict[K, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    return dict(sorted(scores.items(), key=lambda item: item[1], reverse=True))
