"""rank_by_text: the text (BM25) channel of search_memories and search_messages, run ahead.

It needs only the query's words (and the time the query names), so retrieve_memory runs it beside
embed_query: the full-text searches overlap the query embedding instead of following it, and the search
steps then run only their vector channel and fuse these rankings (see `SearchQuery.text_ranking`). That
covers the time-filtered searches too when `time_candidates` is set: then it reads `query_time`, so
extract_query_time must run before it. Its `candidates` and `time_candidates` must equal the searches',
or a text channel fetches a different number of hits than it would inline.
"""

from __future__ import annotations

from dataclasses import replace

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.retrieval import memory_search, message_search

_TIMED = ("memory_time_text_ranking", "message_time_text_ranking")


@worker("rank_by_text")
class RankByText(Worker):
    """BM25 rankings of the user's memories and raw turns for the query (and within the time it names);
    None where there is nothing to rank."""

    reads = ("user_id", "query")
    optional_reads = ("agent_id", "memory_types", "top_k", "candidates")
    writes = ("memory_text_ranking", "message_text_ranking")

    class Params(WorkerParams):
        candidates: int = 50  # per channel: keep equal to search_memories' and search_messages'
        time_candidates: int = 0  # > 0: also the time-filtered rankings (keep equal to the searches'); reads query_time
        memories: bool = True
        messages: bool = True

    params: Params

    @classmethod
    def declared_optional_reads(cls, params: WorkerParams) -> tuple[str, ...]:
        timed = isinstance(params, cls.Params) and params.time_candidates > 0
        return (*cls.optional_reads, "query_time") if timed else cls.optional_reads

    @classmethod
    def declared_writes(cls, params: WorkerParams) -> tuple[str, ...]:
        timed = isinstance(params, cls.Params) and params.time_candidates > 0
        return (*cls.writes, *_TIMED) if timed else cls.writes

    def run(self, ctx: Context) -> None:
        user_id, store = ctx["user_id"], self.resources.store
        memories = memory_search(ctx, self.params.candidates, None) if self.params.memories else None
        messages = message_search(ctx, self.params.candidates, None) if self.params.messages else None
        ctx["memory_text_ranking"] = store.memory_text_ranking(user_id, *memories) if memories else None
        ctx["message_text_ranking"] = store.message_text_ranking(user_id, *messages) if messages else None
        n = self.params.time_candidates
        if n <= 0:
            return
        period = ctx.get("query_time")
        ctx[_TIMED[0]] = ctx[_TIMED[1]] = None
        if period is not None and memories:
            query, where = memories
            ctx[_TIMED[0]] = store.memory_text_ranking(
                user_id, replace(query, top_k=n, candidates=n), replace(where, time_range=period)
            )
        if period is not None and messages:
            query, where = messages
            ctx[_TIMED[1]] = store.message_text_ranking(
                user_id, replace(query, top_k=n, candidates=n), replace(where, time_range=period)
            )
