"""search_memories: hybrid (BM25 + vector) search over the user's active memories.

When the query names a time, a second search restricted to memories whose time (event time, else
created_at) overlaps it runs too, and its hits join the candidates (see `merge_time_hits`): the time
never filters the results, it makes sure that period's memories are considered, and fuse_scores
boosts them.
"""

from __future__ import annotations

from dataclasses import replace

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.retrieval import memory_search, search_with_period, searches_side_by_side


@worker("search_memories")
class SearchMemories(Worker):
    """Find the user's active memories matching the query by text and vector (plus its time period).

    With `memory_text_ranking` (from rank_by_text, run while the query was embedded) the text channel
    is not run again: the store fuses that ranking with its vector search."""

    reads = ("user_id", "query", "query_vector")
    optional_reads = ("agent_id", "memory_types", "query_time", "top_k", "candidates", "memory_text_ranking")
    writes = ("memory_hits",)
    store_bound = True

    class Params(WorkerParams):
        candidates: int = 50  # per channel, and how many fused hits come back
        time_candidates: int = 20  # extra hits from the time-filtered search (0: don't run it)

    params: Params

    def run(self, ctx: Context) -> None:
        planned = memory_search(ctx, self.params.candidates, ctx["query_vector"])
        if planned is None:
            ctx["memory_hits"] = []
            return
        query, where = planned
        user_id, store = ctx["user_id"], self.resources.store
        ranking = ctx.get("memory_text_ranking")
        query_time, n = ctx.get("query_time"), self.params.time_candidates
        period = (replace(query, top_k=n, candidates=n), replace(where, time_range=query_time))
        ctx["memory_hits"] = search_with_period(
            lambda q, f: store.search_memories(user_id, q, f),
            (replace(query, text_ranking=ranking) if query.text else query, where),
            period if query_time is not None and n > 0 else None,
            key=lambda h: h.memory.id,
            side_by_side=searches_side_by_side(self, "memories", user_id, query.embedding),
        )
