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
- neighbours (`message_neighbours`, from load_neighbours): a raw-turn hit that asks a question lends
  `neighbour_after` of its (role-weighted) relevance to the turn right after it, its answer; any hit
  lends `neighbour_before` to the turn right before it; a turn keeps the larger of its own relevance
  and what it is lent.
  A lent-to turn that no search found joins the candidates.
- a question about now ("Where do I work now?"): a raw turn that a later turn of its speaker overrides
  ("I left Meta and joined Apple") lends its relevance to that turn (or the memory made of it), which
  keeps the larger, and then ranks below it (see `turn_signals`).
- when_boost: a question asking "when" ("When did Caroline go to ...?") adds it to candidates that say
  when something happened (a raw turn mentioning a time, a memory with an event time), since the
  answer is the turn that dates the event, not a date to filter on.
- A raw turn's time for the time match is its created_at and every time it mentions, resolved
  against its created_at ("yesterday" in a message of 8 May is 7 May): the best share counts.
A message that is a source of a memory hit is dropped in favour of that memory, whose relevance
becomes the larger of the two (the match on the message speaks for the memory).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache

from pydantic import Field

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import user_zone
from memscope.models import Message, Role, TimeRange
from memscope.retrieval import STOPWORDS, RetrievedItem, clean_query, query_now, search_text, top_k_of
from memscope.stores.base import ScoredMemory, ScoredMessage
from memscope.timerules.mentions import asks_when, mentioned_times, mentions_time
from memscope.turn_signals import asks_now, overridden_turns

_WORDS = re.compile(r"[^\W_]+")
Span = tuple[float, float]  # a time range in seconds since the epoch: start, end (an instant: start == end)
_INSTANT_S = 1e-6  # TimeRange.effective_end: an instant is one microsecond long
_TEXTS_KEPT = 20_000  # per-text signals cached: the same turns come back query after query
_CACHED_CHARS = 2_000  # longer texts are worked out anew: the cache's keys would hold them whole
_QUESTION = re.compile("[?\uff1f]|[\u5417\u5462]\\s*$")  # ?, the full-width ?, or a closing 吗/呢
DEFAULT_TYPE_WEIGHTS = {
    "insight": 1.1, "observation": 1.0, "customized": 1.2, "profile": 1.2, "belief": 1.0, "message": 0.8,
}  # fmt: skip


@worker("fuse_scores")
class FuseScores(Worker):
    """Combine relevance, memory type, time match, recency and importance; keep the top_k results."""

    reads = ("query", "query_vector", "query_time", "memory_hits", "message_hits")
    optional_reads = ("top_k", "now", "rerank_scores", "message_neighbours", "timezone")
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
        neighbour_before: float = Field(0.0, ge=0.0, le=1.0)  # share of a turn's relevance lent to the one before
        neighbour_after: float = Field(0.0, ge=0.0, le=1.0)  # ... and to the one after (often its answer)
        when_boost: float = 0.0  # for "when" questions, added to candidates that say when something happened
        other_speaker_weight: float = Field(1.0, ge=0.0, le=1.0)  # a turn by a speaker the query doesn't name
        informative_words: int = Field(0, ge=0)  # a raw turn with fewer content words is scaled down (0: off)
        informative_power: float = Field(0.5, ge=0.0)

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
        self._lend_to_neighbours(ctx.get("message_neighbours") or {}, items, rel, owner)
        now_question = asks_now(clean_query(ctx["query"]))
        overridden = _overridden(ctx["message_hits"]) if now_question else {}
        _pass_match_to_overriding(overridden, items, rel, owner)
        spans = {h.memory.id: _bounds_seconds(*h.memory.time_bounds()) for h in ctx["memory_hits"]}
        wanted = _seconds(query_time) if query_time is not None else None
        zone = str(user_zone(self, ctx))
        when = self.params.when_boost if asks_when(clean_query(ctx["query"])) else 0.0
        named = _named_speakers(clean_query(ctx["query"]), items.values())
        for item in items.values():
            span = spans.get(item.id) or (item.time.timestamp(),) * 2
            if named and item.kind == "message" and (item.name or "").lower() not in named:
                rel[item.id] *= self.params.other_speaker_weight
            self._score(item, rel[item.id], span, wanted, now, zone)
            if when and _says_when(item):
                item.explain["when"] = when
                item.score += when
        self._lift_best_sessions([i for i in items.values() if i.id not in overridden])
        _rank_overridden_lower(overridden, items, owner)
        ranked = sorted(items.values(), key=lambda i: (-i.score, -i.time.timestamp(), i.id))
        ctx["results"] = ranked[:top_k]

    def _lend_to_neighbours(
        self,
        neighbours: dict[str, list[Message]],
        items: dict[str, RetrievedItem],
        rel: dict[str, float],
        owner: dict[str, str],
    ) -> None:
        """Let each raw-turn hit lend part of its relevance to the turns around it (see the module doc)."""
        p = self.params
        if not neighbours or (p.neighbour_before <= 0 and p.neighbour_after <= 0):
            return
        lent: dict[str, float] = {}
        for mid, turns in neighbours.items():
            anchor = items.get(mid)
            if anchor is None or anchor.kind != "message":
                continue
            own = rel[mid] * p.role_weights.get(anchor.role or "", 1.0)  # an assistant's turn lends less
            asks = _QUESTION.search(anchor.content) is not None
            for turn in turns:
                if turn.role not in (Role.USER, Role.ASSISTANT):
                    continue
                later = (turn.created_at, turn.id) > (anchor.time, anchor.id)
                if later and not asks:
                    continue  # only a question lends to the turn after it: its answer
                share = (p.neighbour_after if later else p.neighbour_before) * own
                target = owner.get(turn.id, turn.id)
                if target not in items:
                    items[target] = RetrievedItem.from_message(turn, 0.0)
                    rel[target] = 0.0
                lent[target] = max(lent.get(target, 0.0), share)
        for target, share in lent.items():
            if share > rel[target]:
                rel[target] = share
                items[target].explain["neighbour"] = share

    def _informative(self, item: RetrievedItem) -> float:
        """1 for a turn with `informative_words` content words or more; less for "Bye Joanna!"-like turns."""
        p = self.params
        if p.informative_words <= 0:
            return 1.0
        return min(1.0, _content_words(item.content) / p.informative_words) ** p.informative_power

    def _lift_best_sessions(self, items: list[RetrievedItem]) -> None:
        """Add `session_boost` to the raw turns of the best-matching session(s).

        A conversation session is about a few things: when several of its turns match the query, its
        other matching turns are likelier to hold the answer than a lone match elsewhere (the question
        and its answer, the event and its follow-up). A session's match is the sum of its best
        `session_evidence` candidates' relevance (not recency: a newer session is not a better match).
        """
        p = self.params
        if p.session_boost <= 0:
            return
        by_session: dict[str, list[float]] = {}
        for item in items:
            if item.kind == "message" and item.session_id is not None:
                by_session.setdefault(item.session_id, []).append(item.explain.get("relevance", item.score))
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
        self, item: RetrievedItem, relevance: float, span: Span, query_time: Span | None, now: datetime, zone: str,
    ) -> None:
        p = self.params
        recency = 0.0  # retrieve_memory sets no recency weight: the age is not worked out then
        if p.recency_weight:
            age_days = max(0.0, (now - item.time).total_seconds() / 86400)
            recency = p.recency_weight * 0.5 ** (age_days / max(p.recency_half_life_days, 1e-9))
        parts = {
            "relevance": relevance
            * p.type_weights.get(item.memory_type, 1.0)
            * (p.role_weights.get(item.role or "", 1.0) * self._informative(item) if item.kind == "message" else 1.0),
            "time": p.time_match_boost * (_time_share(item, span, query_time, zone) if query_time else 0.0),
            "recency": recency,
            "importance": p.importance_weight
            * (item.importance if item.importance is not None else p.message_importance),
        }
        item.explain = {**item.explain, **parts} if item.explain else parts  # keeps "neighbour" (what was lent)
        item.score = sum(parts.values())


def _named_speakers(query: str, items: Iterable[RetrievedItem]) -> set[str]:
    """The speakers of candidate turns whom the query names ("What did Caroline say ..."), lower-cased."""
    words = {w.lower() for w in _WORDS.findall(query)}
    names = {i.name.lower() for i in items if i.name}
    return {n for n in names if n in words}


def _content_words(text: str) -> int:
    """How many words of `text` carry content (function words and question scaffolding left out)."""
    return _content_words_cached(text) if len(text) <= _CACHED_CHARS else _count_content_words(text)


def _count_content_words(text: str) -> int:
    return sum(1 for w in _WORDS.findall(text) if w.lower() not in STOPWORDS)


_content_words_cached = lru_cache(maxsize=_TEXTS_KEPT)(_count_content_words)


def _rank_score(hit: ScoredMemory | ScoredMessage, channels: int, k: int) -> float | None:
    """Mean over the channels that ran of (k + 1) / (k + rank), 0 where unranked; None with no rank at all."""
    ranks = [r for r in (hit.vector_rank, hit.text_rank) if r is not None]
    if not ranks:
        return None
    return min(1.0, sum((k + 1) / (k + r) for r in ranks) / max(channels, len(ranks)))


def _overridden(hits: list[ScoredMessage]) -> dict[str, str]:
    """{raw turn id: id of the later turn of its speaker that overrides it} among the message hits."""
    return overridden_turns([RetrievedItem.from_message(h.message, 0.0) for h in hits])


def _pass_match_to_overriding(
    overridden: dict[str, str], items: dict[str, RetrievedItem], rel: dict[str, float], owner: dict[str, str],
) -> None:
    """For a question about now: the turn that overrides a matching turn states the current value of what
    matched ("I left Meta and joined Apple" for "Where do I work now?", where only "I work at Meta" says
    "work"), so it takes the larger of the two relevances, as a memory does from its source turn."""
    for earlier, later in overridden.items():
        old, new = rel.get(earlier), owner.get(later, later)
        if old is not None and new in rel and old > rel[new]:
            rel[new] = old
            items[new].explain["supersedes"] = old


def _rank_overridden_lower(overridden: dict[str, str], items: dict[str, RetrievedItem], owner: dict[str, str]) -> None:
    """For a question about now: a raw turn that a later turn of its speaker overrides ("I left Meta and
    joined Apple") ranks below that turn (or the memory made of it), and at half its score if that turn
    is not a candidate."""
    for earlier, later in overridden.items():
        old = items.get(earlier)
        if old is None or old.kind != "message":
            continue
        new = items.get(owner.get(later, later))
        cap = 0.9 * new.score if new is not None else 0.5 * old.score
        if cap < old.score:
            old.explain["overridden"] = cap - old.score
            old.score = cap


def _says_when(item: RetrievedItem) -> bool:
    """A raw turn that mentions a time, or a memory with an event time (or a time in its text)."""
    if item.kind == "memory" and item.event_time is not None:
        return True
    return _mentions_time(item.content)


def _mentions_time(text: str) -> bool:
    return _mentions_time_cached(text) if len(text) <= _CACHED_CHARS else mentions_time(text)


_mentions_time_cached = lru_cache(maxsize=_TEXTS_KEPT)(mentions_time)


def _time_share(item: RetrievedItem, span: Span, query: Span, zone: str) -> float:
    """The best share inside `query` of the item's span and, for a raw turn, of the times it mentions."""
    best = _share(span, query)
    if item.kind == "message" and best < 1.0:
        for mentioned in mentioned_times(item.id, item.content, item.time, zone):
            best = max(best, _share(_seconds(mentioned), query))
    return best


def _seconds(span: TimeRange) -> Span:
    """A time range as seconds since the epoch: on floats, fuse_scores on LoCoMo's questions that name a
    time took 1.0 ms where TimeRange arithmetic took 1.6."""
    return _bounds_seconds(span.start, span.end)


def _bounds_seconds(start: datetime, end: datetime) -> Span:
    return start.timestamp(), end.timestamp()


def _share(span: Span, query: Span) -> float:
    """The share of `span` that lies inside `query` (an instant counts as one microsecond: 1 inside, 0 outside)."""
    start, end = span[0], max(span[1], span[0] + _INSTANT_S)
    q_start, q_end = query[0], max(query[1], query[0] + _INSTANT_S)
    if not (start < q_end and q_start < end):
        return 0.0
    return max(0.0, min(1.0, (min(end, q_end) - max(start, q_start)) / (end - start)))
