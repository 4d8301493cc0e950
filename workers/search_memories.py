"""search_memories: hybrid (BM25 + vector) search over the user's active memories.

When the query names a time, a second search restricted to memories whose time (event time, else
created_at) overlaps it runs too, and its hits join the candidates (see `merge_time_hits`): the time
never filters the results, it makes sure that period's memories are considered, and fuse_scores
boosts them.
"""

from __future__ import annotations

from dataclasses import replace

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import scope
from memscope.models import MemoryStatus
from memscope.retrieval import candidates_of, clean_query, memory_types_of, merge_time_hits, search_text, top_k_of
from memscope.stores.base import MemoryFilter, SearchQuery


@worker("search_memories")
class SearchMemories(Worker):
    """Find the user's active memories matching the query by text and vector (plus its time period)."""

    reads = ("user_id", "query", "query_vector")
    optional_reads = ("agent_id", "memory_types", "query_time", "top_k", "candidates")
    writes = ("memory_hits",)

    class Params(WorkerParams):
        candidates: int = 50  # per channel, and how many fused hits come back
        time_candidates: int = 20  # extra hits from the time-filtered search (0: don't run it)

    params: Params

    def run(self, ctx: Context) -> None:
        user_id, agent_id = scope(ctx)
        text = search_text(clean_query(ctx["query"]))
        vector = ctx["query_vector"]
        if not text and vector is None:
            ctx["memory_hits"] = []
            return
        wanted = max(candidates_of(ctx, self.params.candidates), top_k_of(ctx))
        query = SearchQuery(text=text or None, embedding=vector, top_k=wanted, candidates=wanted, with_vectors=False)
        types = memory_types_of(ctx.get("memory_types"))
        if types == []:  # only "message" was asked for
            ctx["memory_hits"] = []
            return
        where = MemoryFilter(agent_id=agent_id, memory_types=types, statuses=(MemoryStatus.ACTIVE,))
        store = self.resources.store
        hits = store.search_memories(user_id, query, where)
        query_time = ctx.get("query_time")
        if query_time is not None and self.params.time_candidates > 0:
            n = self.params.time_candidates
            timed = store.search_memories(
                user_id, replace(query, top_k=n, candidates=n), replace(where, time_range=query_time)
            )
            hits = merge_time_hits(hits, timed, key=lambda h: h.memory.id)
        ctx["memory_hits"] = hits
