"""fuse_scores: one final score per candidate, memories and messages together; the top_k win.

    score = relevance * type_weight[type] * role_weight[role]   (role: raw turns only)
          + time_match_boost * time_share
          + recency_weight * 0.5 ** (age_days / recency_half_life_days)
          + importance_weight * importance

- relevance in [0, 1]: the reranker's score when rerank ran; else a rank score blended with the
  hit's cosine similarity when it has one: (1 - similarity_weight) * rank_score + similarity_weight
  * max(0, cos). rank_score is the mean, over the search channels that ran (text when the query has
  words, vector when it has a vector), of (rank_k + 1) / (rank_k + rank) for the hit's rank in that
  channel (0 where it is unranked): 1 for a hit first in both. With rank_k = 10 the top of a channel
  counts (rank 10 scores 0.55, rank 50 0.18); the store's RRF k of 60 is made for ordering, and as a
  score it makes rank 1 and rank 20 nearly equal, so a lone BM25 top hit ("therapy ... away from the
  court") sinks under the session lift (LoCoMo recall@10 0.674 -> 0.697). A hit with no rank at all
  (a store that gives none, a hit only the time-filtered search found) scores its fused score over
  the best possible one, channels / (rrf_k + 1).
  Rank fusion alone cannot tell a strong match from the best of weak ones, and a BM25 match on a
  common word ("Tom") would reorder close vector hits; the similarity is an absolute measure.
- time_share in [0, 1]: 0 with no query time, else the share of the item's time span (a memory's
  event time, else its created_at; a message's created_at) inside the query's range: 1 for an item
  wholly inside, a fraction for a vague item (a month) that only partly overlaps (a day).
- age_days: now minus the item's time (event start, else created_at), floored at 0.
- importance: the memory's; `message_importance` for raw messages.
- role_weights: a raw turn's relevance is also weighted by who said it (the assistant's turns by 0.5).
- session_boost (default 0; retrieve_memory sets it): added to raw turns of the best-matching
  conversation session(s), see `_lift_best_sessions`.
A message that is a source of a memory hit is dropped in favour of that memory, whose relevance
becomes the larger of the two (the match on the message speaks for the memory).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.models import TimeRange
from memscope.retrieval import RetrievedItem, clean_query, query_now, search_text, top_k_of
from memscope.stores.base import ScoredMemory, ScoredMessage

DEFAULT_TYPE_WEIGHTS = {
    "insight": 1.1, "observation": 1.0, "customized": 1.2, "profile": 1.2, "belief": 1.0, "message": 0.8,
}  # fmt: skip


@worker("fuse_scores")
class FuseScores(Worker):
    """Combine relevance, memory type, time match, recency and importance; keep the top_k results."""

    reads = ("query", "query_vector", "query_time", "memory_hits", "message_hits")
    optional_reads = ("top_k", "now", "rerank_scores")
    writes = ("results",)

    class Params(WorkerParams):
        type_weights: dict[str, float] = DEFAULT_TYPE_WEIGHTS
        time_match_boost: float = 0.5
        recency_half_life_days: float = 180.0
        recency_weight: float = 0.1
        importance_weight: float = 0.1
        message_importance: float = 0.5
        # A raw turn's weight by who said it: memory is about the user; the assistant's words are context.
        role_weights: dict[str, float] = {"assistant": 0.5, "system": 0.5, "tool": 0.5}
        similarity_weight: float = Field(0.5, ge=0.0, le=1.0)
        rrf_k: int = 60  # must match the k the store fused with (SearchQuery.rrf_k); for rankless hits
        rank_k: int = Field(10, ge=1)  # the rank score's curve: (rank_k + 1) / (rank_k + rank)
        session_boost: float = 0.0  # added to raw turns of the conversation session(s) that match best
        session_top: int = Field(1, ge=1)  # how many best sessions are lifted
        session_evidence: int = Field(3, ge=1)  # a session's match: the sum of its best N turns' scores

    params: Params

    def run(self, ctx: Context) -> None:
        top_k = top_k_of(ctx)
        now = query_now(self, ctx)
        query_time: TimeRange | None = ctx["query_time"]
        rerank: dict[str, float] = ctx.get("rerank_scores") or {}
        channels = (ctx["query_vector"] is not None) + bool(search_text(clean_query(ctx["query"])))
        best = max(channels, 1) / (self.params.rrf_k + 1)
        a = self.params.similarity_weight

        def relevance(item_id: str, hit: ScoredMemory | ScoredMessage) -> float:
            if rerank:
                return rerank.get(item_id, 0.0)
            fused = _rank_score(hit, channels, self.params.rank_k)
            if fused is None:
                fused = min(1.0, hit.score / best)
            cos = hit.vector_similarity
            return fused if cos is None else (1 - a) * fused + a * max(0.0, min(1.0, cos))

        items: dict[str, RetrievedItem] = {}
        rel: dict[str, float] = {}
        for hit in ctx["memory_hits"]:
            items[hit.memory.id] = RetrievedItem.from_memory(hit.memory, 0.0)
            rel[hit.memory.id] = relevance(hit.memory.id, hit)
        owner = {mid: item.id for item in items.values() for mid in item.source_message_ids}
        for hit in ctx["message_hits"]:
            r = relevance(hit.message.id, hit)
            if hit.message.id in owner:
                rel[owner[hit.message.id]] = max(rel[owner[hit.message.id]], r)
            elif hit.message.id not in items:
                items[hit.message.id] = RetrievedItem.from_message(hit.message, 0.0)
                rel[hit.message.id] = r
        spans = {h.memory.id: h.memory.time_span() for h in ctx["memory_hits"]}
        for item in items.values():
            span = spans.get(item.id) or TimeRange(start=item.time, end=item.time)
            self._score(item, rel[item.id], span, query_time, now)
        self._lift_best_sessions(list(items.values()))
        ranked = sorted(items.values(), key=lambda i: (-i.score, -i.time.timestamp(), i.id))
        ctx["results"] = ranked[:top_k]

    def _lift_best_sessions(self, items: list[RetrievedItem]) -> None:
        """Add `session_boost` to the raw turns of the best-matching session(s).

        A conversation session is about a few things: when several of its turns match the query, its
        other matching turns are likelier to hold the answer than a lone match elsewhere (the question
        and its answer, the event and its follow-up). A session's match is the sum of its best
        `session_evidence` candidate scores.
        """
        p = self.params
        if p.session_boost <= 0:
            return
        by_session: dict[str, list[float]] = {}
        for item in items:
            if item.kind == "message" and item.session_id is not None:
                by_session.setdefault(item.session_id, []).append(item.score)
        if not by_session:
            return
        strength = {k: sum(sorted(v, reverse=True)[: p.session_evidence]) for k, v in by_session.items()}
        order = sorted(strength, key=lambda k: (-strength[k], k))
        lift = {k: p.session_boost for k in order[: p.session_top]}
        for item in items:
            boost = lift.get(item.session_id or "", 0.0) if item.kind == "message" else 0.0
            if boost > 0:
                item.explain["session"] = boost
                item.score += boost

    def _score(
        self, item: RetrievedItem, relevance: float, span: TimeRange, query_time: TimeRange | None,
        now: datetime,
    ) -> None:
        p = self.params
        age_days = max(0.0, (now - item.time).total_seconds() / 86400)
        parts = {
            "relevance": relevance
            * p.type_weights.get(item.memory_type, 1.0)
            * (p.role_weights.get(item.role or "", 1.0) if item.kind == "message" else 1.0),
            "time": p.time_match_boost * (_share(span, query_time) if query_time is not None else 0.0),
            "recency": p.recency_weight * 0.5 ** (age_days / max(p.recency_half_life_days, 1e-9)),
            "importance": p.importance_weight
            * (item.importance if item.importance is not None else p.message_importance),
        }
        item.explain = parts
        item.score = sum(parts.values())


def _rank_score(hit: ScoredMemory | ScoredMessage, channels: int, k: int) -> float | None:
    """Mean over the channels that ran of (k + 1) / (k + rank), 0 where unranked; None with no rank at all."""
    ranks = [r for r in (hit.vector_rank, hit.text_rank) if r is not None]
    if not ranks:
        return None
    return min(1.0, sum((k + 1) / (k + r) for r in ranks) / max(channels, len(ranks)))


def _share(span: TimeRange, query: TimeRange) -> float:
    """The share of `span` that lies inside `query` (an instant: 1 inside, 0 outside)."""
    if not span.overlaps(query):
        return 0.0
    length = (span.effective_end() - span.start).total_seconds()
    inside = (min(span.effective_end(), query.effective_end()) - max(span.start, query.start)).total_seconds()
    return max(0.0, min(1.0, inside / length)) if length > 0 else 1.0

