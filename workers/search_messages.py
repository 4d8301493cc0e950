"""search_messages: hybrid search over the user's raw conversation turns, consolidated or not.

Messages are searched so that what was said is found before (or without) consolidation: a message
with no vector yet is still found by BM25. As in search_memories, a query time adds a second search
restricted to messages created in that period, merged into the candidates. With `memory_types`
given, messages are searched only when it names "message".
"""

from __future__ import annotations

from dataclasses import replace

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.models import Role
from memscope.retrieval import message_search, search_with_period, searches_side_by_side


@worker("search_messages")
class SearchMessages(Worker):
    """Find the user's messages matching the query by text and vector (plus its time period).

    With `message_text_ranking` (from rank_by_text) the text channel is not run again."""

    reads = ("user_id", "query", "query_vector")
    optional_reads = ("agent_id", "memory_types", "query_time", "top_k", "candidates", "message_text_ranking")
    writes = ("message_hits",)
    store_bound = True

    class Params(WorkerParams):
        candidates: int = 50
        time_candidates: int = 20
        roles: list[Role] = [Role.USER, Role.ASSISTANT]  # system and tool turns are not conversation

    params: Params

    def run(self, ctx: Context) -> None:
        planned = message_search(ctx, self.params.candidates, ctx["query_vector"])
        if planned is None:
            ctx["message_hits"] = []
            return
        query, where = planned
        user_id, store = ctx["user_id"], self.resources.store
        ranking = ctx.get("message_text_ranking")
        query_time, n = ctx.get("query_time"), self.params.time_candidates
        period = (replace(query, top_k=n, candidates=n), replace(where, time_range=query_time))
        hits = search_with_period(
            lambda q, f: store.search_messages(user_id, q, f),
            (replace(query, text_ranking=ranking) if query.text else query, where),
            period if query_time is not None and n > 0 else None,
            key=lambda h: h.message.id,
            side_by_side=searches_side_by_side(self, "messages", user_id, query.embedding),
        )
        roles = set(self.params.roles)
        ctx["message_hits"] = [h for h in hits if h.message.role in roles]
