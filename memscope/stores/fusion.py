"""Reciprocal rank fusion, done in Python so it works on every backend and licence.

`fuse_channels` is the one fusion both stores' hybrid search use: a vector ranking and a text ranking
in, typed `FusedHit`s out, best first.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["FusedHit", "fuse_channels", "rrf_fuse"]

K = TypeVar("K", bound=Hashable)


def rrf_fuse(rankings: Sequence[Sequence[K]], k: int = 60, weights: Sequence[float] | None = None) -> dict[K, float]:
    """Fuse ranked id lists: score(id) = sum_i weight_i / (k + rank_i(id)), ranks 1-based."""
    weights = weights or [1.0] * len(rankings)
    scores: dict[K, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    return dict(sorted(scores.items(), key=lambda item: item[1], reverse=True))


@dataclass(frozen=True, slots=True)
class FusedHit:
    """One record found by hybrid search: its fused score, 1-based rank in each channel, cosine similarity."""

    id: str
    score: float
    vector_rank: int | None = None  # None: the vector channel did not find it (or did not run)
    text_rank: int | None = None
    similarity: float | None = None  # cosine similarity to the query vector, when the vector channel found it


def fuse_channels(
    vector_ids: Sequence[str],
    text_ids: Sequence[str],
    *,
    k: int,
    top_k: int,
    similarity: Callable[[str], float | None] = lambda _: None,
) -> list[FusedHit]:
    """The best `top_k` of two rankings (either may be empty) fused by reciprocal rank, vector first on ties."""
    vector_rank = {i: n for n, i in enumerate(vector_ids, start=1)}
    text_rank = {i: n for n, i in enumerate(text_ids, start=1)}
    fused = list(rrf_fuse([vector_ids, text_ids], k=k).items())[:top_k]
    return [FusedHit(i, s, vector_rank.get(i), text_rank.get(i), similarity(i)) for i, s in fused]
