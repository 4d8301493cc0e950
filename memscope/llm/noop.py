"""A reranker that keeps the input order, for when no rerank model is configured."""

from __future__ import annotations

from collections.abc import Sequence

from memscope.llm.base import RerankResult

__all__ = ["NoopReranker"]


class NoopReranker:
    """Returns the documents in their given order, scores falling from 1.0."""

    name = "none"

    def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None) -> list[RerankResult]:
        """Every document (or the first `top_n`) in input order."""
        n = len(documents)
        results = [RerankResult(index=i, score=1.0 - i / n) for i in range(n)]
        return results[:top_n] if top_n is not None else results
