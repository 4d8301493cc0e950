"""rerank: optional cross-encoder reranking of the candidates (resources.reranker, e.g. gte-rerank).

Writes `rerank_scores` ({item id: relevance in [0, 1]}); fuse_scores then uses them as the relevance
instead of the normalised RRF score. By default it runs exactly when `rerank.backend` configures a
reranker; with none it writes {} and costs nothing; `enabled: false` turns it off.
"""

from __future__ import annotations

import math

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.llm.noop import NoopReranker
from memscope.retrieval import clean_query


@worker("rerank")
class Rerank(Worker):
    """Rescore memory and message candidates with the configured reranker, when enabled."""

    reads = ("query", "memory_hits", "message_hits")
    writes = ("rerank_scores",)

    class Params(WorkerParams):
        enabled: bool | None = None  # None: rerank whenever a reranker is configured (rerank.backend)
        max_candidates: int = 50  # the best-fused candidates sent to the reranker; the rest keep RRF

    params: Params

    @classmethod
    def declared_writes(cls, params: WorkerParams) -> tuple[str, ...]:
        """Nothing when disabled."""
        assert isinstance(params, Rerank.Params)
        return () if params.enabled is False else cls.writes

    def run(self, ctx: Context) -> None:
        if self.params.enabled is False:
            return
        reranker = self.resources.reranker
        if self.params.enabled is None and (reranker is None or isinstance(reranker, NoopReranker)):
            ctx["rerank_scores"] = {}  # rerank.backend: none; keep the fused ranking, nothing to say
            return
        if reranker is None:
            ctx.notice("rerank is enabled but no reranker is configured; results use fused search scores")
            ctx["rerank_scores"] = {}
            return
        text = clean_query(ctx["query"])
        docs = [(h.memory.id, h.score, h.memory.content) for h in ctx["memory_hits"]]
        docs += [(h.message.id, h.score, h.message.content) for h in ctx["message_hits"]]
        docs = sorted(docs, key=lambda d: d[1], reverse=True)[: self.params.max_candidates]
        if not text or not docs:
            ctx["rerank_scores"] = {}
            return
        ranked = reranker.rerank(text, [d[2] for d in docs], top_n=len(docs))
        ctx["rerank_scores"] = {docs[r.index][0]: _unit(r.score) for r in ranked}


def _unit(score: float) -> float:
    """A relevance in [0, 1]: scores already in range are kept, logits go through a sigmoid."""
    return score if 0.0 <= score <= 1.0 else 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, score))))
