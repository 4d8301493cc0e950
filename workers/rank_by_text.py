"""rank_by_text: the text (BM25) channel of search_memories and search_messages, run ahead.

It needs only the query's words, so retrieve_memory runs it beside embed_query: the full-text search
overlaps the query embedding instead of following it, and the search steps then run only their
vector channel and fuse this ranking (see `SearchQuery.text_ranking`). Its `candidates` must equal
theirs, or the text channel fetches a different number of hits than it would inline.
"""

from __future__ import annotations

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.retrieval import memory_search, message_search


@worker("rank_by_text")
class RankByText(Worker):
    """BM25 rankings of the user's memories and raw turns for the query; None where there is nothing to rank."""

    reads = ("user_id", "query")
    optional_reads = ("agent_id", "memory_types", "top_k", "candidates")
    writes = ("memory_text_ranking", "message_text_ranking")
    store_bound = True

    class Params(WorkerParams):
        candidates: int = 50  # per channel: keep equal to search_memories' and search_messages'
        memories: bool = True
        messages: bool = True

    params: Params

    def run(self, ctx: Context) -> None:
        user_id, store = ctx["user_id"], self.resources.store
        memories = memory_search(ctx, self.params.candidates, None) if self.params.memories else None
        messages = message_search(ctx, self.params.candidates, None) if self.params.messages else None
        ctx["memory_text_ranking"] = store.memory_text_ranking(user_id, *memories) if memories else None
        ctx["message_text_ranking"] = store.message_text_ranking(user_id, *messages) if messages else None
