"""The Store protocol every backend implements, and the query types it takes.

Every method is scoped by `user_id`, enforced inside the backend: no call returns one user's data
to another. `agent_id=None` in a read means every agent of that user; writes carry the agent in
the record itself.

Semantics every backend follows (the contract kit checks them):

- `created_after` is strict (`>`), `created_before` is strict (`<`).
- An empty `ids` or `memory_types` list matches nothing; None means no restriction.
- Per-user leases fence background jobs: `acquire_lease` hands out a token that grows with every
  new holder, and a write given `fence=` commits only while the user's lease still carries that
  token (checked inside the write's transaction on SQLite, just before it on Elasticsearch).
- A text search ORs the query's words (BM25 ranks rows matching more, rarer words higher); it is
  not a phrase or AND search, and query text never changes the query's structure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from memscope.errors import ValidationError
from memscope.models import MemoryEvent, MemoryNode, MemoryStatus, MemoryType, Message, TimeRange
from memscope.stores.fusion import FusedHit

__all__ = [
    "MAX_NEIGHBOURS",
    "ConsolidationMark",
    "Fence",
    "MemoryFilter",
    "MessageFilter",
    "ScoredMemory",
    "ScoredMessage",
    "SearchQuery",
    "Store",
    "StoreStats",
    "check_neighbour_window",
]


MAX_NEIGHBOURS = 50  # per side, in `message_neighbours`


def check_neighbour_window(before: int, after: int) -> None:
    """Raise ValidationError unless `before` and `after` are whole numbers from 0 to MAX_NEIGHBOURS."""
    for name, value in (("before", before), ("after", after)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_NEIGHBOURS:
            raise ValidationError(f"{name} must be a whole number from 0 to {MAX_NEIGHBOURS}, got {value!r}")


@dataclass(frozen=True)
class MemoryFilter:
    """Which memories of one user a list or search considers (all given conditions must hold)."""

    agent_id: str | None = None
    memory_types: Sequence[MemoryType] | None = None  # [] matches nothing
    statuses: Sequence[MemoryStatus] = (MemoryStatus.ACTIVE,)
    time_range: TimeRange | None = None  # overlaps the memory's event time, else its created_at
    key: str | None = None
    ids: Sequence[str] | None = None  # [] matches nothing
    created_after: datetime | None = None  # strict: created_at > created_after
    created_before: datetime | None = None  # strict: created_at < created_before
    reflected: bool | None = None  # True: reflected_at is set; False: not reflected yet; None: both


@dataclass(frozen=True)
class MessageFilter:
    """Which messages of one user a list or search considers."""

    agent_id: str | None = None
    session_id: str | None = None
    pending: bool | None = None  # True: not consolidated yet; False: consolidated; None: both
    time_range: TimeRange | None = None  # on created_at, [start, end)
    ids: Sequence[str] | None = None  # [] matches nothing


@dataclass(frozen=True)
class Fence:
    """A job's claim on one user: writes given it commit only while the user's lease has `token`."""

    user_id: str
    token: int


@dataclass(frozen=True)
class ConsolidationMark:
    """Messages of one user to mark consolidated in the same commit as a batch's memories."""

    user_id: str
    message_ids: Sequence[str]
    at: datetime


@dataclass(frozen=True)
class SearchQuery:
    """A hybrid search: BM25 on `text` and kNN on `embedding`, fused by reciprocal rank.

    Either part may be None (then only the other channel runs). `candidates` is how many each
    channel fetches before fusion; `top_k` how many fused results come back. `text_ranking`: the
    text channel already run (the ids `memory_text_ranking` / `message_text_ranking` returned for
    this text and filter, best first): the store fuses it instead of running BM25 again, so the text
    channel can run while the query is being embedded.
    """

    text: str | None = None
    embedding: Sequence[float] | None = None
    top_k: int = 10
    candidates: int = 50
    rrf_k: int = 60
    with_vectors: bool = True  # False: hits' memories come without their embedding (retrieval reads none)
    text_ranking: Sequence[str] | None = None


@dataclass
class ScoredMemory:
    """A search hit: the memory, its fused score and each channel's 1-based rank (None: missed)."""

    memory: MemoryNode
    score: float
    vector_rank: int | None = None
    text_rank: int | None = None
    vector_similarity: float | None = None

    @classmethod
    def of(cls, memory: MemoryNode, hit: FusedHit) -> ScoredMemory:
        """The memory a fused hit names, with the hit's score, ranks and similarity."""
        return cls(memory, hit.score, hit.vector_rank, hit.text_rank, hit.similarity)


@dataclass
class ScoredMessage:
    """A message search hit, shaped like ScoredMemory."""

    message: Message
    score: float
    vector_rank: int | None = None
    text_rank: int | None = None
    vector_similarity: float | None = None

    @classmethod
    def of(cls, message: Message, hit: FusedHit) -> ScoredMessage:
        """The message a fused hit names, with the hit's score, ranks and similarity."""
        return cls(message, hit.score, hit.vector_rank, hit.text_rank, hit.similarity)


@dataclass
class StoreStats:
    """Counts for one user."""

    pending_messages: int = 0
    total_messages: int = 0
    memories: dict[str, dict[str, int]] = field(default_factory=dict)  # status -> type -> count


@runtime_checkable
class Store(Protocol):
    """Durable messages, memories and memory events, scoped by user.

    An implementation may set a class attribute `in_process = True` when its calls run in the caller's
    process, mostly as Python work (SQLite); parallel groups then run store-bound steps one after another
    (`Worker.overlaps`). Without it, store calls count as waits outside the GIL (a network store). Such a
    store may also answer `searches_overlap(kind, user_id, dim) -> bool`: True when one user's searches do
    spend most of their time outside the GIL (SQLite over a large memory index), so a retrieval's open and
    time-filtered searches run side by side (`retrieval.searches_side_by_side`); and `warm_up()`, which
    `MemoryScope.warm_up` calls."""

    # -- embedding space ---------------------------------------------------------------------------
    def check_embedding_model(self, model: str, dim: int) -> None:
        """Record the embedder on first use; raise EmbeddingMismatch if the store holds another's."""
        ...

    # -- messages ----------------------------------------------------------------------------------
    def add_messages(self, messages: Sequence[Message]) -> None:
        """Store messages durably (idempotent by id); searchable by text before this returns."""
        ...

    def list_messages(
        self,
        user_id: str,
        filter: MessageFilter | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Message]:
        """Messages of one user, oldest first (by created_at, then id); `newest_first` reverses the order,
        so `limit=N, newest_first=True` gives the latest N."""
        ...

    def mark_consolidated(
        self, user_id: str, message_ids: Sequence[str], at: datetime, *, fence: Fence | None = None
    ) -> int:
        """Set consolidated_at on these messages of this user; returns how many changed.

        With `fence`, raises LeaseLost (writing nothing) unless the user's lease still has its token.
        """
        ...

    def set_message_embeddings(self, user_id: str, embeddings: dict[str, Sequence[float]]) -> None:
        """Attach vectors to messages of this user (ids not of this user are ignored)."""
        ...

    def messages_without_embedding(self, user_id: str, limit: int = 256) -> list[Message]:
        """Messages of this user that have no vector yet, oldest first."""
        ...

    def search_messages(
        self, user_id: str, query: SearchQuery, filter: MessageFilter | None = None
    ) -> list[ScoredMessage]:
        """Hybrid search over one user's messages."""
        ...

    def message_text_ranking(
        self, user_id: str, query: SearchQuery, filter: MessageFilter | None = None
    ) -> list[str] | None:
        """The text channel of `search_messages` alone: message ids best first (`query.embedding` is not
        used). None: leave the text channel to the search itself (it may drop it for the vector, or run
        it in the same request, as Elasticsearch does)."""
        ...

    def users_with_pending(self, limit: int = 1000) -> list[tuple[str, str]]:
        """(user_id, agent_id) pairs that have pending messages: the sweep's source of truth."""
        ...

    def message_neighbours(
        self, user_id: str, message_ids: Sequence[str], before: int = 1, after: int = 1
    ) -> dict[str, list[Message]]:
        """For each message of this user, up to `before` turns just before it and `after` just after it in
        the same conversation (same agent and session_id; messages with no session form one), oldest first.

        Conversation order is (created_at, id), as in `list_messages`. Ids of no message of this user
        are left out of the result; `before` and `after` are whole numbers from 0 to MAX_NEIGHBOURS.
        """
        ...

    # -- memories ----------------------------------------------------------------------------------
    def write_memories(
        self,
        memories: Sequence[MemoryNode],
        *,
        operation: str | None = None,
        run_id: str | None = None,
        fence: Fence | None = None,
        consolidates: ConsolidationMark | None = None,
    ) -> list[MemoryEvent]:
        """Upsert by id and append one event per real change (add/update/expire/delete).

        Idempotent: writing a node identical to the stored one records nothing. Returns the events.
        With `fence`, raises LeaseLost (writing nothing) unless the user's lease still has its token.
        With `consolidates`, those messages are marked consolidated in the same commit (SQLite: one
        transaction; Elasticsearch: right after the memories), so a crash cannot leave a batch's
        memories written and its messages pending.
        """
        ...

    def get_memory(self, user_id: str, memory_id: str) -> MemoryNode | None:
        """One memory of this user, or None (also when it belongs to another user)."""
        ...

    def list_memories(
        self,
        user_id: str,
        filter: MemoryFilter | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[MemoryNode]:
        """Memories of one user, newest first."""
        ...

    def search_memories(
        self, user_id: str, query: SearchQuery, filter: MemoryFilter | None = None
    ) -> list[ScoredMemory]:
        """Hybrid search over one user's memories, best first."""
        ...

    def memory_text_ranking(
        self, user_id: str, query: SearchQuery, filter: MemoryFilter | None = None
    ) -> list[str] | None:
        """The text channel of `search_memories` alone: memory ids best first (`query.embedding` is not
        used). None: leave the text channel to the search itself (it may drop it for the vector)."""
        ...

    def touch_memories(self, user_id: str, memory_ids: Sequence[str], at: datetime) -> None:
        """Count an access (access_count + 1, last_accessed_at) without writing an event."""
        ...

    def history(self, user_id: str, memory_id: str) -> list[MemoryEvent]:
        """Every event of one memory, oldest first."""
        ...

    # -- identity and per-user leases ----------------------------------------------------------------
    def store_id(self) -> str:
        """This store's identity, created with it: a job carries it, and a worker on another store refuses it."""
        ...

    def acquire_lease(self, user_id: str, holder: str, ttl_s: float) -> int | None:
        """Take the user's lease if it is free, expired or already `holder`'s; returns its fencing token
        (larger than any earlier holder's), or None while another holder's lease is live."""
        ...

    def renew_lease(self, user_id: str, token: int, ttl_s: float) -> bool:
        """Extend the lease while it still has `token`; False when another holder took it over."""
        ...

    def release_lease(self, user_id: str, token: int) -> None:
        """Let the lease expire now if it still has `token` (the token counter is kept)."""
        ...

    # -- users -------------------------------------------------------------------------------------
    def delete_user(self, user_id: str) -> int:
        """Delete the user's messages, memories and events; returns how many rows went."""
        ...

    def stats(self, user_id: str) -> StoreStats:
        """Counts of messages and memories for one user."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
