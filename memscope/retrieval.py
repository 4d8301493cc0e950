"""Shared retrieval types and helpers: the RetrievedItem a retrieval returns, query clean-up, scoping."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from memscope.engine.worker import Context, Worker
from memscope.errors import ValidationError
from memscope.llm.base import focus_words
from memscope.models import EventTime, MemoryNode, MemoryStatus, MemoryType, Message, replied_turn_text
from memscope.stores.base import MemoryFilter, MessageFilter, ScoredMemory, ScoredMessage, SearchQuery

__all__ = [
    "MAX_QUERY_CHARS",
    "RetrievedItem",
    "candidates_of",
    "clean_query",
    "content_spans",
    "memory_types_of",
    "merge_time_hits",
    "message_embedding_text",
    "message_embedding_texts",
    "query_now",
    "search_text",
    "search_with_period",
    "searches_side_by_side",
    "top_k_of",
    "wants_messages",
]

MESSAGE = "message"  # the memory_type of a raw-message result
MAX_TOP_K = 1000
MAX_QUERY_CHARS = 2000  # embedding models read ~256-512 tokens; BM25 keeps 64 terms: more is noise and cost

_WORDS = re.compile(r"[^\W_]+")
_CLITIC = re.compile(r"[a-zA-Z]")  # a lone Latin letter: the "s" of "Caroline's", the "t" of "don't"
STOPWORDS = frozenset(
    {
        "a", "about", "after", "all", "am", "an", "and", "any", "are", "as", "at", "be", "been", "before",
        "being", "but", "by", "can", "could", "did", "do", "does", "doing", "for", "from", "had", "has", "have",
        "having", "he", "her", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just",
        "me", "my", "myself", "no", "nor", "not", "of", "on", "or", "our", "ours", "so", "some", "than", "that",
        "the", "their", "them", "then", "there", "these", "they", "this", "those", "to", "too", "very", "was",
        "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would",
        "you", "your", "yours",
        # question scaffolding: words of how a question is asked, not of what it is about
        "kind", "kinds", "type", "types", "sort", "likely", "might", "much", "many", "ever", "also", "both",
        "got", "get", "ways", "way", "thing", "things", "something", "say", "said", "mention",
        "mentioned", "tell", "told", "remember",
    }
)  # fmt: skip

H = TypeVar("H", ScoredMemory, ScoredMessage)
F = TypeVar("F", MemoryFilter, MessageFilter)


@dataclass
class RetrievedItem:
    """One retrieval result: a memory or a raw message, with its final score and provenance."""

    kind: str  # "memory" | "message"
    id: str
    content: str
    score: float
    memory_type: str  # a MemoryType value, or "message"
    time: datetime  # the event start, else created_at
    event_time: EventTime | None = None
    source_message_ids: list[str] = field(default_factory=list)
    session_id: str | None = None
    role: str | None = None
    name: str | None = None  # the speaker's name, for messages
    importance: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    explain: dict[str, float] = field(default_factory=dict)  # the score's parts (see fuse_scores)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "kind": self.kind,
            "id": self.id,
            "content": self.content,
            "score": round(self.score, 6),
            "memory_type": self.memory_type,
            "time": self.time.isoformat(),
            "event_time": None if self.event_time is None else self.event_time.model_dump(mode="json"),
            "source_message_ids": list(self.source_message_ids),
            "session_id": self.session_id,
            "role": self.role,
            "name": self.name,
            "importance": self.importance,
            "metadata": dict(self.metadata),
            "explain": {k: round(v, 6) for k, v in self.explain.items()},
        }

    @classmethod
    def from_memory(cls, node: MemoryNode, score: float) -> RetrievedItem:
        """An item for a memory node."""
        return cls(
            kind="memory",
            id=node.id,
            content=node.content,
            score=score,
            memory_type=node.memory_type.value,
            time=node.event_time.start if node.event_time is not None else node.created_at,
            event_time=node.event_time,
            source_message_ids=list(node.source_message_ids),
            importance=node.importance,
            metadata=dict(node.metadata),
        )

    @classmethod
    def from_message(cls, message: Message, score: float) -> RetrievedItem:
        """An item for a raw message."""
        return cls(
            kind="message",
            id=message.id,
            content=message.content,
            score=score,
            memory_type="message",
            time=message.created_at,
            source_message_ids=[message.id],
            session_id=message.session_id,
            role=message.role.value,
            name=message.name,
            metadata=dict(message.metadata),
        )


def clean_query(value: object) -> str:
    """The query as searched: a string, stripped, capped at MAX_QUERY_CHARS; "" when there is none."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"query must be a string, got {type(value).__name__}")
    return value.strip()[:MAX_QUERY_CHARS].strip()


def search_text(query: str) -> str:
    """The query's words for BM25, English function words dropped ("what did I do" matches nothing useful).

    Keeps the query as it is when every word is a function word, so a search still runs.
    """
    return focus_words(query, content_spans(query))


def content_spans(query: str) -> list[tuple[int, int]]:
    """Where `search_text`'s words are in `query`: (start, end) character spans, in order."""
    words = [(m.group(), m.span()) for m in _WORDS.finditer(query)]
    kept = [span for w, span in words if w.lower() not in STOPWORDS and not _CLITIC.fullmatch(w)]
    return kept or [span for _, span in words]


def query_now(worker: Worker, ctx: Context) -> datetime:
    """The query's "now": the `now` input (aware datetime or ISO text) if given, else the clock."""
    value = ctx.get("now")
    if value is None:
        return worker.resources.now()
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValidationError(
                f"now {value!r} is not an ISO-8601 datetime (e.g. 2024-05-08T13:00:00+00:00)"
            ) from exc
    if not isinstance(value, datetime):
        raise ValidationError(f"now must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        raise ValidationError("now must be timezone-aware (e.g. datetime(2024, 5, 8, tzinfo=UTC))")
    return value


def memory_types_of(value: object) -> list[MemoryType] | None:
    """Parse the `memory_types` input (None, a name, or a list of names) into MemoryTypes.

    "message" is accepted too (retrieval's raw-message results) and is not a MemoryType: it is
    dropped here; see `wants_messages`.
    """
    if value is None:
        return None
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, Sequence):
        raise ValidationError(f"memory_types must be a list of type names, got {type(value).__name__}")
    try:
        return [MemoryType(str(n)) for n in names if str(n) != MESSAGE]
    except ValueError:
        allowed = ", ".join([*(t.value for t in MemoryType), MESSAGE])
        raise ValidationError(f"memory_types {list(names)!r}: unknown type; allowed: {allowed}") from None


def wants_messages(value: object) -> bool:
    """Whether retrieval searches raw messages: with no `memory_types`, or when it names "message"."""
    if value is None:
        return True
    return MESSAGE in ([value] if isinstance(value, str) else list(value))  # type: ignore[call-overload]


def merge_time_hits(hits: list[H], time_hits: list[H], key: Callable[[H], str]) -> list[H]:
    """Add the time-filtered search's hits to the open search's, best first.

    A hit found only by the time-filtered search ranked below every open-search hit there, so its
    score is capped at the lowest open-search score and its channel ranks (ranks in the time-filtered
    search, not in the open one) are cleared: the merge admits it as a candidate without inflating its
    relevance (fuse_scores adds the time-match boost).
    """
    if not time_hits:
        return hits
    seen = {key(h) for h in hits}
    floor = min((h.score for h in hits), default=None)
    merged = list(hits)
    for hit in time_hits:
        if key(hit) not in seen:
            if floor is not None:
                hit.score = min(hit.score, floor)
            hit.vector_rank = hit.text_rank = None
            merged.append(hit)
    return sorted(merged, key=lambda h: h.score, reverse=True)


def searches_side_by_side(worker: Worker, kind: str, user_id: str, vector: Sequence[float] | None) -> bool:
    """Whether a retrieval's open and time-filtered searches of `kind` run at once: on a networked store
    (their round trips overlap), and on an in-process store that says its searches of this user spend
    most of their time outside the GIL (`searches_overlap`: SqliteStore over a large vector index)."""
    if worker.overlaps():
        return True
    overlap = getattr(worker.resources.store, "searches_overlap", None)
    return vector is not None and callable(overlap) and bool(overlap(kind, user_id, len(vector)))


def search_with_period(
    search: Callable[[SearchQuery, F], list[H]],
    open_search: tuple[SearchQuery, F],
    period_search: tuple[SearchQuery, F] | None,
    key: Callable[[H], str],
    *,
    side_by_side: bool,
) -> list[H]:
    """`search(query, filter)` for the open search and, when given, the time-filtered one, merged (see
    `merge_time_hits`). `side_by_side` (see `searches_side_by_side`) runs the time-filtered one on a helper
    thread meanwhile, so the two round trips overlap; small in-process searches run in turn, as side by
    side they only take turns at the GIL (LoCoMo questions naming a time: +0.25 ms)."""
    if period_search is None:
        return search(*open_search)
    if not side_by_side:
        return merge_time_hits(search(*open_search), search(*period_search), key)
    pending = _period_pool().submit(search, *period_search)
    try:
        hits = search(*open_search)
    except BaseException:
        if not pending.cancel():
            wait([pending])  # nothing of this call outlives it; the open search's error is the one raised
        raise
    # Not started yet (every helper busy with other retrievals): run it here rather than queue behind them.
    timed = search(*period_search) if pending.cancel() else pending.result()
    return merge_time_hits(hits, timed, key)


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _period_pool() -> ThreadPoolExecutor:
    """The process's threads for time-filtered searches (made as needed, up to four: a retrieval runs two)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="memscope-period")
        return _POOL


def top_k_of(ctx: Context, default: int = 10) -> int:
    """The `top_k` input, checked: a whole number from 1 to MAX_TOP_K."""
    value = ctx.get("top_k")
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOP_K:
        raise ValidationError(f"top_k must be a whole number from 1 to {MAX_TOP_K}, got {value!r}")
    return value


def message_embedding_text(message: Message, zone: Any = None, previous: Message | None = None) -> str:
    """What a message's vector is made from: who said it and on which day, what was said, and the turn
    it replies to.

    "Caroline (8 May 2023): I paint (replying to Melanie: What do you do for fun?)". A turn's meaning
    depends on its speaker ("what did Caroline say about ..."), its day ("when did ...") and, for an
    answer, the question it answers: with all three in the text, vector search over raw turns finds
    the right speaker's answers (LoCoMo recall@10 of plain turns with all-MiniLM-L6-v2 doubles with
    speaker and day; the replied-to turn adds about 6 points to the vector channel alone:
    `memscope bench locomo`). The turn's own words come first, so the model's 256-token window never
    cuts them for the context. `zone` (a ZoneInfo) dates it; default UTC. `previous`: the turn just
    before it in its conversation (see `Store.message_neighbours`), as `models.replied_turn_text` puts
    it; the stores' BM25 index holds the same text as a down-weighted second field.
    """
    who = message.name or message.role.value
    when = message.created_at.astimezone(zone) if zone is not None else message.created_at
    text = f"{who} ({when.day} {when:%B %Y}): {message.content}"
    replied = replied_turn_text(previous)  # also the message's full-text `context`: the two never drift
    return f"{text} (replying to {replied})" if replied else text


def message_embedding_texts(store: Any, user_id: str, messages: Sequence[Message], zone: Any = None) -> list[str]:
    """`message_embedding_text` of each message, with the turn it replies to read from the store."""
    previous = store.message_neighbours(user_id, [m.id for m in messages], before=1, after=0)
    return [message_embedding_text(m, zone, (previous.get(m.id) or [None])[0]) for m in messages]

def candidates_of(ctx: Context, default: int) -> int:
    """Candidates per search channel: the run's `candidates` input (retrieval.candidates), else `default`."""
    value = ctx.get("candidates")
    return int(value) if value else default


def memory_search(ctx: Context, candidates: int, vector: Any) -> tuple[SearchQuery, MemoryFilter] | None:
    """The search of the user's active memories a retrieval runs, and its filter; None: nothing to search
    (no words and no vector, or only "message" asked for). The same for the text channel run ahead."""
    text = search_text(clean_query(ctx["query"]))
    types = memory_types_of(ctx.get("memory_types"))
    if (not text and vector is None) or types == []:
        return None
    wanted = max(candidates_of(ctx, candidates), top_k_of(ctx))
    query = SearchQuery(text=text or None, embedding=vector, top_k=wanted, candidates=wanted, with_vectors=False)
    return query, MemoryFilter(agent_id=ctx.get("agent_id"), memory_types=types, statuses=(MemoryStatus.ACTIVE,))


def message_search(ctx: Context, candidates: int, vector: Any) -> tuple[SearchQuery, MessageFilter] | None:
    """The search of the user's raw turns a retrieval runs, and its filter; None: nothing to search."""
    text = search_text(clean_query(ctx["query"]))
    if (not text and vector is None) or not wants_messages(ctx.get("memory_types")):
        return None
    wanted = max(candidates_of(ctx, candidates), top_k_of(ctx))
    return SearchQuery(text=text or None, embedding=vector, top_k=wanted, candidates=wanted), MessageFilter(
        agent_id=ctx.get("agent_id")
    )
