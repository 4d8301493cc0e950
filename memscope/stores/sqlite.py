"""The embedded store: one SQLite file (WAL), FTS5 for BM25, exact cosine search with numpy.

Choices worth knowing:

- Timestamps are stored as integer microseconds since the Unix epoch (UTC) and come back as aware
  UTC datetimes (equal, as instants, to what was written); `event_time` is a JSON column with UTC
  ISO-8601 text, and its span is precomputed in `time_start`/`time_end` (end widened for instants).
- Embeddings are float32 BLOBs, so a vector reads back rounded to float32.
- `write_memories` compares a node with the stored one ignoring `updated_at`, `access_count` and
  `last_accessed_at` (access bookkeeping belongs to `touch_memories`); an identical node records no
  event and is not written. On a real change the stored access counters are kept if larger, so a
  stale copy never undoes a touch.
- Chinese/Japanese/Korean text is indexed one character per token (`fts_normalize`) in a
  `porter unicode61` FTS5 table; a query searches each adjacent pair of CJK characters as a phrase,
  and every other word as a quoted term, all OR'ed: user text never changes the query's structure.
- English stop words are dropped from a query (not from the index) unless nothing else is left.
- Vector search keeps a per-user float32 matrix in memory, tagged with a per-user version counter
  that every write bumps in the same transaction (rows carry the version that last wrote them), so
  a write from another process is seen at once: changed rows are patched in, and the matrix is
  rebuilt after `delete_user`. A query vector of another dimension than the stored ones finds nothing.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import sqlite3
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np

from memscope.errors import EmbeddingMismatch, StoreError, StoreUnavailable, ValidationError
from memscope.models import (
    EventKind,
    EventTime,
    Granularity,
    MemoryEvent,
    MemoryNode,
    MemoryStatus,
    MemoryType,
    Message,
    Role,
    TimeRange,
    check_user_id,
    utcnow,
)
from memscope.stores.base import (
    MemoryFilter,
    MessageFilter,
    ScoredMemory,
    ScoredMessage,
    SearchQuery,
    StoreStats,
)
from memscope.stores.fusion import rrf_fuse

__all__ = ["SCHEMA_VERSION", "SqliteStore", "fts_normalize", "fts_query"]

SCHEMA_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_MAX_QUERY_TERMS = 64
_CACHE_BYTES = 512 * 1024 * 1024
_PARALLEL_ROWS = 20_000  # from this many vectors, the text query runs beside the vector product
_SIMS_KEPT = 4  # recent query-vector similarity arrays kept (a retrieval searches twice with one vector)
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002ebef]")
_WORD = re.compile(r"[^\W_]+")
# Dropped from queries (not from the index) unless nothing else is left: they match nearly every row,
# which makes BM25 slow on a large store and adds almost nothing to the ranking.
_STOP_WORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from", "had", "has",
    "have", "he", "her", "his", "how", "i", "in", "is", "it", "its", "me", "my", "no", "not", "of", "on",
    "or", "our", "she", "so", "that", "the", "their", "them", "they", "this", "to", "was", "we", "were",
    "what", "when", "where", "which", "who", "will", "with", "would", "you", "your",
))  # fmt: skip

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    user_id TEXT NOT NULL, kind TEXT NOT NULL, version INTEGER NOT NULL, reset_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, kind)
);
CREATE TABLE IF NOT EXISTS messages (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    session_id TEXT,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    name TEXT,
    created_at INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    consolidated_at INTEGER,
    dim INTEGER,
    row_version INTEGER NOT NULL DEFAULT 0,
    embedding BLOB  -- last: a large value pushes later columns onto overflow pages
);
CREATE INDEX IF NOT EXISTS messages_user_pending ON messages (user_id, consolidated_at);
CREATE INDEX IF NOT EXISTS messages_user_time ON messages (user_id, created_at);
CREATE INDEX IF NOT EXISTS messages_user_version ON messages (user_id, row_version);
CREATE INDEX IF NOT EXISTS messages_pending ON messages (user_id, agent_id) WHERE consolidated_at IS NULL;
CREATE INDEX IF NOT EXISTS messages_no_vector ON messages (user_id, created_at) WHERE embedding IS NULL;
CREATE TABLE IF NOT EXISTS memories (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    memory_type TEXT NOT NULL,
    content TEXT NOT NULL,
    key TEXT,
    dim INTEGER,
    status TEXT NOT NULL,
    event_time TEXT,
    time_start INTEGER NOT NULL,
    time_end INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    source_message_ids TEXT NOT NULL,
    source_memory_ids TEXT NOT NULL,
    superseded_by TEXT,
    importance REAL NOT NULL,
    access_count INTEGER NOT NULL,
    last_accessed_at INTEGER,
    metadata TEXT NOT NULL,
    row_version INTEGER NOT NULL DEFAULT 0,
    embedding BLOB  -- last: a large value pushes later columns onto overflow pages
);
CREATE INDEX IF NOT EXISTS memories_user_status_type ON memories (user_id, status, memory_type);
CREATE INDEX IF NOT EXISTS memories_user_time ON memories (user_id, created_at);
CREATE INDEX IF NOT EXISTS memories_user_key ON memories (user_id, key);
CREATE INDEX IF NOT EXISTS memories_user_span ON memories (user_id, time_start);
CREATE INDEX IF NOT EXISTS memories_user_version ON memories (user_id, row_version);
CREATE TABLE IF NOT EXISTS memory_events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    memory_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    before TEXT,
    after TEXT,
    operation TEXT,
    run_id TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS memory_events_memory ON memory_events (user_id, memory_id, seq);
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts
    USING fts5(body, tokenize='porter unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts
    USING fts5(body, tokenize='porter unicode61 remove_diacritics 2');
"""

# Columns compared to decide whether a memory write is a real change.
_MEMORY_COMPARED = (
    "user_id", "agent_id", "memory_type", "content", "key", "embedding", "status", "event_time",
    "created_at", "source_message_ids", "source_memory_ids", "superseded_by", "importance", "metadata",
)  # fmt: skip
_MEMORY_COLUMNS = (
    "id", "user_id", "agent_id", "memory_type", "content", "key", "embedding", "dim", "status",
    "event_time", "time_start", "time_end", "created_at", "updated_at", "source_message_ids",
    "source_memory_ids", "superseded_by", "importance", "access_count", "last_accessed_at", "metadata",
    "row_version",
)  # fmt: skip
_MESSAGE_COLUMNS = (
    "id", "user_id", "agent_id", "session_id", "role", "content", "name", "created_at", "metadata",
    "consolidated_at",
)  # fmt: skip

P = ParamSpec("P")
R = TypeVar("R")


# -- full-text helpers ---------------------------------------------------------------------------------


def fts_normalize(text: str) -> str:
    """Text as indexed: NFKC-normalised, every CJK character set apart as its own token."""
    return _CJK.sub(lambda m: f" {m.group()} ", unicodedata.normalize("NFKC", text))


def fts_query(text: str | None) -> str | None:
    """An FTS5 MATCH expression OR-ing quoted terms of `text` (CJK as character pairs); None if empty."""
    if not text or not text.strip():
        return None
    terms: list[str] = []
    for word in _WORD.findall(unicodedata.normalize("NFKC", text).lower()):
        start = 0
        for match in _CJK.finditer(word):
            if match.start() > start:
                terms.append(word[start : match.start()])
            start = match.end()
        if start < len(word):
            terms.append(word[start:])
        terms.extend(_cjk_terms(word))
    unique = [t for t in dict.fromkeys(terms) if t]
    unique = ([t for t in unique if t not in _STOP_WORDS] or unique)[:_MAX_QUERY_TERMS]
    if not unique:
        return None
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in unique)


def _cjk_terms(word: str) -> list[str]:
    """Phrases for the CJK runs of one word: adjacent character pairs, or the lone character."""
    terms: list[str] = []
    for run in re.findall(f"{_CJK.pattern}+", word):
        if len(run) == 1:
            terms.append(run)
        else:
            terms.extend(f"{a} {b}" for a, b in itertools.pairwise(run))
    return terms


# -- conversions -----------------------------------------------------------------------------------------


def _to_us(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValidationError(f"datetime {value.isoformat()} must be timezone-aware (e.g. datetime.now(UTC))")
    return (value - _EPOCH) // _US


def _from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _from_us_or_none(value: int | None) -> datetime | None:
    return None if value is None else _from_us(value)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _blob(vector: Sequence[float] | None) -> tuple[bytes | None, int | None]:
    if vector is None:
        return None, None
    array = np.asarray(vector, dtype=np.float32).reshape(-1)
    return array.tobytes(), int(array.shape[0])


def _memory_row(node: MemoryNode) -> dict[str, Any]:
    """The stored form of a node (all columns but pk)."""
    data = node.model_dump(mode="json", exclude={"embedding"})
    span = node.time_span()
    embedding, dim = _blob(node.embedding)
    event_time = None
    if node.event_time is not None:
        event_time = _json(
            {
                "start": node.event_time.start.astimezone(UTC).isoformat(),
                "end": node.event_time.end.astimezone(UTC).isoformat(),
                "granularity": str(node.event_time.granularity),
            }
        )
    return {
        "id": node.id,
        "user_id": node.user_id,
        "agent_id": node.agent_id,
        "memory_type": str(node.memory_type),
        "content": node.content,
        "key": node.key,
        "embedding": embedding,
        "dim": dim,
        "status": str(node.status),
        "event_time": event_time,
        "time_start": _to_us(span.start),
        "time_end": _to_us(span.effective_end()),
        "created_at": _to_us(node.created_at),
        "updated_at": _to_us(node.updated_at),
        "source_message_ids": _json(data["source_message_ids"]),
        "source_memory_ids": _json(data["source_memory_ids"]),
        "superseded_by": node.superseded_by,
        "importance": float(node.importance),
        "access_count": node.access_count,
        "last_accessed_at": None if node.last_accessed_at is None else _to_us(node.last_accessed_at),
        "metadata": _json(data["metadata"]),
    }


def _memory_from_row(row: sqlite3.Row | dict[str, Any]) -> MemoryNode:
    embedding = None
    if row["embedding"] is not None:
        embedding = np.frombuffer(row["embedding"], dtype=np.float32).astype(float).tolist()
    return MemoryNode(
        id=row["id"],
        user_id=row["user_id"],
        agent_id=row["agent_id"],
        memory_type=row["memory_type"],
        content=row["content"],
        key=row["key"],
        embedding=embedding,
        status=row["status"],
        event_time=None if row["event_time"] is None else EventTime(**json.loads(row["event_time"])),
        created_at=_from_us(row["created_at"]),
        updated_at=_from_us(row["updated_at"]),
        source_message_ids=json.loads(row["source_message_ids"]),
        source_memory_ids=json.loads(row["source_memory_ids"]),
        superseded_by=row["superseded_by"],
        importance=row["importance"],
        access_count=row["access_count"],
        last_accessed_at=_from_us_or_none(row["last_accessed_at"]),
        metadata=json.loads(row["metadata"]),
    )


def _message_body(row: dict[str, Any]) -> str:
    """A message as text-indexed: the speaker's name (when given) and the content, so "what did Caroline
    say" matches Caroline's turns."""
    return f"{row['name']}: {row['content']}" if row.get("name") else row["content"]


def _memory_from_stored(row: sqlite3.Row) -> MemoryNode:
    """`_memory_from_row` without re-validation, for rows this store wrote (validated then): the hot path."""
    blob = row["embedding"]
    event = row["event_time"]
    if event is not None:
        data = json.loads(event)
        event = EventTime.model_construct(
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            granularity=Granularity(data["granularity"]),
        )
    last = row["last_accessed_at"]
    return MemoryNode.model_construct(
        id=row["id"],
        user_id=row["user_id"],
        agent_id=row["agent_id"],
        memory_type=MemoryType(row["memory_type"]),
        content=row["content"],
        key=row["key"],
        embedding=None if blob is None else np.frombuffer(blob, dtype=np.float32).astype(float).tolist(),
        status=MemoryStatus(row["status"]),
        event_time=event,
        created_at=_from_us(row["created_at"]),
        updated_at=_from_us(row["updated_at"]),
        source_message_ids=json.loads(row["source_message_ids"]),
        source_memory_ids=json.loads(row["source_memory_ids"]),
        superseded_by=row["superseded_by"],
        importance=float(row["importance"]),
        access_count=int(row["access_count"]),
        last_accessed_at=None if last is None else _from_us(last),
        metadata=json.loads(row["metadata"]),
    )


def _message_from_stored(row: sqlite3.Row) -> Message:
    """`_message_from_row` without re-validation, for rows this store wrote: the hot path."""
    done = row["consolidated_at"]
    return Message.model_construct(
        id=row["id"],
        user_id=row["user_id"],
        agent_id=row["agent_id"],
        session_id=row["session_id"],
        role=Role(row["role"]),
        content=row["content"],
        name=row["name"],
        created_at=_from_us(row["created_at"]),
        metadata=json.loads(row["metadata"]),
        consolidated_at=None if done is None else _from_us(done),
    )


def _message_row(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "user_id": message.user_id,
        "agent_id": message.agent_id,
        "session_id": message.session_id,
        "role": str(message.role),
        "content": message.content,
        "name": message.name,
        "created_at": _to_us(message.created_at),
        "metadata": _json(message.model_dump(mode="json")["metadata"]),
        "consolidated_at": None if message.consolidated_at is None else _to_us(message.consolidated_at),
    }


def _message_from_row(row: sqlite3.Row) -> Message:
    return Message(
        id=row["id"],
        user_id=row["user_id"],
        agent_id=row["agent_id"],
        session_id=row["session_id"],
        role=row["role"],
        content=row["content"],
        name=row["name"],
        created_at=_from_us(row["created_at"]),
        metadata=json.loads(row["metadata"]),
        consolidated_at=_from_us_or_none(row["consolidated_at"]),
    )


def _event_kind(old: sqlite3.Row, new: dict[str, Any]) -> EventKind:
    if new["status"] != old["status"]:
        if new["status"] == MemoryStatus.EXPIRED:
            return EventKind.EXPIRE
        if new["status"] == MemoryStatus.DELETED:
            return EventKind.DELETE
    return EventKind.UPDATE


# -- filters -------------------------------------------------------------------------------------------


def _span_bounds(time_range: TimeRange) -> tuple[int, int]:
    return _to_us(time_range.start), _to_us(time_range.effective_end())


def _memory_where(user_id: str, f: MemoryFilter) -> tuple[str, list[Any]]:
    """SQL conditions (on alias m) and parameters for one user's memories under a filter."""
    sql: list[str] = ["m.user_id = ?"]
    params: list[Any] = [user_id]
    if f.agent_id is not None:
        sql.append("m.agent_id = ?")
        params.append(f.agent_id)
    if f.memory_types is not None:
        sql.append("m.memory_type IN (SELECT value FROM json_each(?))")
        params.append(_json([str(t) for t in f.memory_types]))
    sql.append("m.status IN (SELECT value FROM json_each(?))")
    params.append(_json([str(s) for s in f.statuses]))
    if f.time_range is not None:
        start, end = _span_bounds(f.time_range)
        sql.append("m.time_start < ? AND m.time_end > ?")
        params += [end, start]
    if f.key is not None:
        sql.append("m.key = ?")
        params.append(f.key)
    if f.ids is not None:
        sql.append("m.id IN (SELECT value FROM json_each(?))")
        params.append(_json(list(f.ids)))
    if f.created_after is not None:
        sql.append("m.created_at > ?")
        params.append(_to_us(f.created_after))
    return " AND ".join(sql), params


def _message_where(user_id: str, f: MessageFilter) -> tuple[str, list[Any]]:
    """SQL conditions (on alias m) and parameters for one user's messages under a filter."""
    sql: list[str] = ["m.user_id = ?"]
    params: list[Any] = [user_id]
    if f.agent_id is not None:
        sql.append("m.agent_id = ?")
        params.append(f.agent_id)
    if f.session_id is not None:
        sql.append("m.session_id = ?")
        params.append(f.session_id)
    if f.pending is not None:
        sql.append("m.consolidated_at IS NULL" if f.pending else "m.consolidated_at IS NOT NULL")
    if f.time_range is not None:
        start, end = _span_bounds(f.time_range)
        sql.append("m.created_at >= ? AND m.created_at < ?")
        params += [start, end]
    if f.ids is not None:
        sql.append("m.id IN (SELECT value FROM json_each(?))")
        params.append(_json(list(f.ids)))
    return " AND ".join(sql), params


@dataclass(frozen=True)
class _VectorIndex:
    """One user's vectors of one dimension, L2-normalised, with the columns filters need."""

    version: int
    ids: list[str]
    pos: dict[str, int]
    matrix: np.ndarray
    cols: dict[str, np.ndarray]  # numbers per row
    cats: dict[str, tuple[list[Any], np.ndarray]]  # text per row as (distinct values, code per row)

    @property
    def nbytes(self) -> int:
        arrays = [self.matrix, *self.cols.values(), *(codes for _, codes in self.cats.values())]
        return int(sum(a.nbytes for a in arrays))

    def isin(self, name: str, values: Sequence[Any]) -> np.ndarray:
        """Rows whose text column `name` is one of `values`."""
        distinct, codes = self.cats[name]
        wanted = {None if v is None else str(v) for v in values}
        return np.array([v in wanted for v in distinct], dtype=bool)[codes]


def _memory_mask(index: _VectorIndex, f: MemoryFilter) -> np.ndarray:
    c = index.cols
    mask = index.cols["alive"] & index.isin("status", f.statuses)
    if f.agent_id is not None:
        mask &= index.isin("agent_id", [f.agent_id])
    if f.memory_types is not None:
        mask &= index.isin("memory_type", f.memory_types)
    if f.time_range is not None:
        start, end = _span_bounds(f.time_range)
        mask &= (c["time_start"] < end) & (c["time_end"] > start)
    if f.key is not None:
        mask &= index.isin("key", [f.key])
    if f.ids is not None:
        mask &= _ids_mask(index, f.ids)
    if f.created_after is not None:
        mask &= c["created_at"] > _to_us(f.created_after)
    return mask


def _message_mask(index: _VectorIndex, f: MessageFilter) -> np.ndarray:
    c = index.cols
    mask = c["alive"].copy()
    if f.agent_id is not None:
        mask &= index.isin("agent_id", [f.agent_id])
    if f.session_id is not None:
        mask &= index.isin("session_id", [f.session_id])
    if f.pending is not None:
        mask &= c["pending"] == f.pending
    if f.time_range is not None:
        start, end = _span_bounds(f.time_range)
        mask &= (c["created_at"] >= start) & (c["created_at"] < end)
    if f.ids is not None:
        mask &= _ids_mask(index, f.ids)
    return mask


def _ids_mask(index: _VectorIndex, ids: Sequence[str]) -> np.ndarray:
    mask = np.zeros(len(index.ids), dtype=bool)
    positions = [index.pos[i] for i in ids if i in index.pos]
    mask[positions] = True
    return mask


_VECTOR_COLUMNS = {
    "memories": "id, embedding, dim, agent_id, memory_type, status, key, time_start, time_end, created_at",
    "messages": "id, embedding, dim, agent_id, session_id, consolidated_at IS NULL AS pending, created_at",
}
_NUMERIC = {
    "alive": np.bool_,
    "time_start": np.int64,
    "time_end": np.int64,
    "created_at": np.int64,
    "pending": np.bool_,
}


def _mapped(fn: Callable[P, R]) -> Callable[P, R]:
    """Map sqlite3 errors raised by a public method to memscope's StoreError family."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if "locked" in text or "busy" in text:
                raise StoreUnavailable(
                    f"the SQLite store is busy (another process holds a write lock): {exc};"
                    " retry, or raise store timeout_s"
                ) from exc
            raise StoreError(f"SQLite store failed in {fn.__name__}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store failed in {fn.__name__}: {exc}") from exc

    return wrapper


class SqliteStore:
    """The embedded Store: one SQLite file, safe for several threads and processes at once."""

    def __init__(self, path: str | Path, *, timeout_s: float = 30.0) -> None:
        if str(path) == ":memory:" or str(path).startswith("file:"):
            raise ValidationError(f"SqliteStore needs a file path, got {str(path)!r}; use a temporary file instead")
        self.path = Path(path).expanduser()
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._cache: OrderedDict[tuple[str, str, int], _VectorIndex] = OrderedDict()
        self._sims: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
        self._pool: ThreadPoolExecutor | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder for the SQLite store {self.path}: {exc}") from exc
        self._open_schema()

    # -- connections ---------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"the SQLite store {self.path} is closed; open a new SqliteStore")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction: BEGIN IMMEDIATE takes the write lock up front."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot of the file."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    @_mapped
    def _open_schema(self) -> None:
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the SQLite store {self.path} has schema version {version}, newer than this"
                    f" memscope supports ({SCHEMA_VERSION}); upgrade memscope or use another store path"
                )
            if version < SCHEMA_VERSION:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Release every thread's connection; later calls raise StoreError."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
            self._cache.clear()
            self._sims.clear()
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        with self._lock:
            connections += self._connections  # a helper thread may have opened one meanwhile
            self._connections = []
        for conn in connections:
            conn.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    # -- embedding space -----------------------------------------------------------------------------

    @_mapped
    def check_embedding_model(self, model: str, dim: int) -> None:
        """Record the embedder on first use; raise EmbeddingMismatch if the store holds another's."""
        with self._write() as conn:
            rows = dict(conn.execute("SELECT key, value FROM meta WHERE key LIKE 'embedding_%'").fetchall())
            if not rows:
                conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("embedding_model", model), ("embedding_dim", str(int(dim)))],
                )
                return
        stored_model, stored_dim = rows["embedding_model"], int(rows["embedding_dim"])
        if stored_model != model or stored_dim != int(dim):
            raise EmbeddingMismatch(
                f"the store {self.path} holds vectors of embedding model {stored_model!r} (dim {stored_dim}),"
                f" but the configured embedder is {model!r} (dim {dim}). Run `memscope reembed` to"
                " re-embed the store with the new model, or set store.path to a new file."
            )

    def _check_dims(self, conn: sqlite3.Connection, dims: set[int]) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key = 'embedding_dim'").fetchone()
        if row is not None and dims - {int(row[0])}:
            raise ValidationError(
                f"embedding dimension {sorted(dims - {int(row[0])})} does not match the store's"
                f" recorded dimension {row[0]}; embed with the store's model or run `memscope reembed`"
            )

    @staticmethod
    def _bump(conn: sqlite3.Connection, user_id: str, kind: str, *, reset: bool = False) -> int:
        """Advance the user's version of `kind` (rows written in this transaction carry it)."""
        row = conn.execute(
            "INSERT INTO versions (user_id, kind, version, reset_at) VALUES (?, ?, 1, ?)"
            " ON CONFLICT (user_id, kind) DO UPDATE SET version = version + 1,"
            " reset_at = CASE WHEN ? THEN version + 1 ELSE reset_at END RETURNING version",
            (user_id, kind, int(reset), int(reset)),
        ).fetchone()
        return int(row[0])

    @staticmethod
    def _owners(conn: sqlite3.Connection, table: str, ids: list[str]) -> dict[str, str]:
        sql = f"SELECT id, user_id FROM {table} WHERE id IN (SELECT value FROM json_each(?))"
        return dict(conn.execute(sql, (_json(ids),)).fetchall())

    # -- messages ------------------------------------------------------------------------------------

    @_mapped
    def add_messages(self, messages: Sequence[Message]) -> None:
        """Store messages durably (idempotent by id); searchable by text before this returns."""
        rows = [_message_row(m) for m in messages]
        if not rows:
            return
        with self._write() as conn:
            owners = self._owners(conn, "messages", [r["id"] for r in rows])
            clashes = [r["id"] for r in rows if owners.get(r["id"], r["user_id"]) != r["user_id"]]
            if clashes:
                raise ValidationError(f"message id(s) {clashes[:5]} already belong to another user; give new ids")
            columns = ", ".join(_MESSAGE_COLUMNS)
            marks = ", ".join("?" * len(_MESSAGE_COLUMNS))
            for row in rows:
                cur = conn.execute(
                    f"INSERT INTO messages ({columns}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING",
                    [row[c] for c in _MESSAGE_COLUMNS],
                )
                if cur.rowcount == 1:
                    conn.execute(
                        "INSERT INTO messages_fts (rowid, body) VALUES (?, ?)",
                        (cur.lastrowid, fts_normalize(_message_body(row))),
                    )

    @_mapped
    def list_messages(
        self, user_id: str, filter: MessageFilter | None = None, limit: int | None = None
    ) -> list[Message]:
        """Messages of one user, oldest first."""
        check_user_id(user_id)
        where, params = _message_where(user_id, filter or MessageFilter())
        sql = f"SELECT * FROM messages m WHERE {where} ORDER BY m.created_at, m.id LIMIT ?"
        rows = self._conn().execute(sql, [*params, -1 if limit is None else limit]).fetchall()
        return [_message_from_row(r) for r in rows]

    @_mapped
    def mark_consolidated(self, user_id: str, message_ids: Sequence[str], at: datetime) -> int:
        """Set consolidated_at on these pending messages of this user; returns how many changed."""
        check_user_id(user_id)
        with self._write() as conn:
            version = self._bump(conn, user_id, "messages")
            cur = conn.execute(
                "UPDATE messages SET consolidated_at = ?, row_version = ? WHERE +user_id = ?"
                " AND consolidated_at IS NULL AND id IN (SELECT value FROM json_each(?))",
                (_to_us(at), version, user_id, _json(list(message_ids))),
            )
            return cur.rowcount

    @_mapped
    def set_message_embeddings(self, user_id: str, embeddings: dict[str, Sequence[float]]) -> None:
        """Attach vectors to messages of this user (ids not of this user are ignored)."""
        check_user_id(user_id)
        blobs = {mid: _blob(vec) for mid, vec in embeddings.items()}
        if not blobs:
            return
        with self._write() as conn:
            self._check_dims(conn, {dim for _, dim in blobs.values() if dim is not None})
            version = self._bump(conn, user_id, "messages")
            conn.executemany(
                "UPDATE messages SET embedding = ?, dim = ?, row_version = ? WHERE +user_id = ? AND id = ?",
                [(blob, dim, version, user_id, mid) for mid, (blob, dim) in blobs.items()],
            )

    @_mapped
    def messages_without_embedding(self, user_id: str, limit: int = 256) -> list[Message]:
        """Messages of this user that have no vector yet, oldest first."""
        check_user_id(user_id)
        rows = self._conn().execute(
            "SELECT * FROM messages WHERE user_id = ? AND embedding IS NULL ORDER BY created_at, id LIMIT ?",
            (user_id, limit),
        )
        return [_message_from_row(r) for r in rows.fetchall()]

    @_mapped
    def search_messages(
        self, user_id: str, query: SearchQuery, filter: MessageFilter | None = None
    ) -> list[ScoredMessage]:
        """Hybrid search over one user's messages."""
        check_user_id(user_id)
        f = filter or MessageFilter()
        where, params = _message_where(user_id, f)
        hits = self._hybrid("messages", user_id, query, where, params, lambda ix: _message_mask(ix, f))
        if not hits:
            return []
        rows = self._conn().execute(
            "SELECT * FROM messages WHERE +user_id = ? AND id IN (SELECT value FROM json_each(?))",
            (user_id, _json([h[0] for h in hits])),
        )
        found = {r["id"]: _message_from_stored(r) for r in rows.fetchall()}
        return [ScoredMessage(found[i], s, vr, tr, sim) for i, s, vr, tr, sim in hits if i in found]

    @_mapped
    def users_with_pending(self, limit: int = 1000) -> list[tuple[str, str]]:
        """(user_id, agent_id) pairs that have pending messages: the sweep's source of truth."""
        rows = self._conn().execute(
            "SELECT DISTINCT user_id, agent_id FROM messages WHERE consolidated_at IS NULL"
            " ORDER BY user_id, agent_id LIMIT ?",
            (limit,),
        )
        return [(r[0], r[1]) for r in rows.fetchall()]

    # -- memories ------------------------------------------------------------------------------------

    @_mapped
    def write_memories(
        self,
        memories: Sequence[MemoryNode],
        *,
        operation: str | None = None,
        run_id: str | None = None,
    ) -> list[MemoryEvent]:
        """Upsert by id and append one event per real change (add/update/expire/delete).

        Idempotent: a node equal to the stored one, ignoring updated_at and the access counters,
        records nothing and is not written. Returns the events.
        """
        rows = [_memory_row(node) for node in memories]
        if not rows:
            return []
        events: list[MemoryEvent] = []
        with self._write() as conn:
            owners = self._owners(conn, "memories", [r["id"] for r in rows])
            clashes = [r["id"] for r in rows if owners.get(r["id"], r["user_id"]) != r["user_id"]]
            if clashes:
                raise ValidationError(f"memory id(s) {clashes[:5]} already belong to another user; give new ids")
            self._check_dims(conn, {r["dim"] for r in rows if r["dim"] is not None})
            versions: dict[str, int] = {}

            def version_of(user_id: str) -> int:
                if user_id not in versions:
                    versions[user_id] = self._bump(conn, user_id, "memories")
                return versions[user_id]

            for row in rows:
                event = self._upsert_memory(conn, row, version_of, operation, run_id)
                if event is not None:
                    events.append(event)
        return events

    def _upsert_memory(
        self,
        conn: sqlite3.Connection,
        row: dict[str, Any],
        version_of: Callable[[str], int],
        operation: str | None,
        run_id: str | None,
    ) -> MemoryEvent | None:
        old = conn.execute("SELECT * FROM memories WHERE id = ?", (row["id"],)).fetchone()
        if old is not None and all(old[c] == row[c] for c in _MEMORY_COMPARED):
            return None
        row["row_version"] = version_of(row["user_id"])
        if old is None:
            kind, before = EventKind.ADD, None
            cur = conn.execute(
                f"INSERT INTO memories ({', '.join(_MEMORY_COLUMNS)}) VALUES ({', '.join('?' * len(_MEMORY_COLUMNS))})",
                [row[c] for c in _MEMORY_COLUMNS],
            )
            conn.execute(
                "INSERT INTO memories_fts (rowid, body) VALUES (?, ?)",
                (cur.lastrowid, fts_normalize(row["content"])),
            )
        else:
            kind, before = _event_kind(old, row), _memory_from_row(old).public_dict()
            row["access_count"] = max(row["access_count"], old["access_count"])
            if old["last_accessed_at"] is not None:
                mine, theirs = row["last_accessed_at"], old["last_accessed_at"]
                row["last_accessed_at"] = theirs if mine is None else max(mine, theirs)
            assignments = ", ".join(f"{c} = ?" for c in _MEMORY_COLUMNS[1:])
            conn.execute(
                f"UPDATE memories SET {assignments} WHERE pk = ?",
                [*(row[c] for c in _MEMORY_COLUMNS[1:]), old["pk"]],
            )
            if old["content"] != row["content"]:
                conn.execute("DELETE FROM memories_fts WHERE rowid = ?", (old["pk"],))
                conn.execute(
                    "INSERT INTO memories_fts (rowid, body) VALUES (?, ?)",
                    (old["pk"], fts_normalize(row["content"])),
                )
        event = MemoryEvent(
            user_id=row["user_id"],
            agent_id=row["agent_id"],
            memory_id=row["id"],
            kind=kind,
            before=before,
            after=_memory_from_row(row).public_dict(),
            operation=operation,
            run_id=run_id,
            created_at=utcnow(),
        )
        conn.execute(
            "INSERT INTO memory_events (id, user_id, agent_id, memory_id, kind, before, after, operation,"
            " run_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.id, event.user_id, event.agent_id, event.memory_id, str(event.kind),
                None if before is None else _json(before), _json(event.after), operation, run_id,
                _to_us(event.created_at),
            ),
        )  # fmt: skip
        return event

    @_mapped
    def get_memory(self, user_id: str, memory_id: str) -> MemoryNode | None:
        """One memory of this user, or None (also when it belongs to another user)."""
        check_user_id(user_id)
        row = (
            self._conn()
            .execute("SELECT * FROM memories WHERE +user_id = ? AND id = ?", (user_id, memory_id))
            .fetchone()
        )
        return None if row is None else _memory_from_row(row)

    @_mapped
    def list_memories(
        self,
        user_id: str,
        filter: MemoryFilter | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[MemoryNode]:
        """Memories of one user, newest first."""
        check_user_id(user_id)
        where, params = _memory_where(user_id, filter or MemoryFilter())
        sql = f"SELECT * FROM memories m WHERE {where} ORDER BY m.created_at DESC, m.id DESC LIMIT ? OFFSET ?"
        rows = self._conn().execute(sql, [*params, -1 if limit is None else limit, offset])
        return [_memory_from_row(r) for r in rows.fetchall()]

    @_mapped
    def search_memories(
        self, user_id: str, query: SearchQuery, filter: MemoryFilter | None = None
    ) -> list[ScoredMemory]:
        """Hybrid search over one user's memories, best first; no text and no vector finds nothing."""
        check_user_id(user_id)
        f = filter or MemoryFilter()
        where, params = _memory_where(user_id, f)
        hits = self._hybrid("memories", user_id, query, where, params, lambda ix: _memory_mask(ix, f))
        if not hits:
            return []
        rows = self._conn().execute(
            "SELECT * FROM memories WHERE +user_id = ? AND id IN (SELECT value FROM json_each(?))",
            (user_id, _json([h[0] for h in hits])),
        )
        found = {r["id"]: _memory_from_stored(r) for r in rows.fetchall()}
        return [ScoredMemory(found[i], s, vr, tr, sim) for i, s, vr, tr, sim in hits if i in found]

    @_mapped
    def touch_memories(self, user_id: str, memory_ids: Sequence[str], at: datetime) -> None:
        """Count an access (access_count + 1, last_accessed_at) without writing an event."""
        check_user_id(user_id)
        if not memory_ids:
            return
        # Access counters are bookkeeping on the retrieval hot path: this commit skips the fsync
        # (WAL + synchronous NORMAL: never corrupt, at worst the last touches lost on power failure).
        conn = self._conn()
        conn.execute("PRAGMA synchronous = NORMAL")
        try:
            with self._write() as conn:
                conn.execute(
                    "UPDATE memories SET access_count = access_count + 1, last_accessed_at = ?"
                    " WHERE +user_id = ? AND id IN (SELECT value FROM json_each(?))",
                    (_to_us(at), user_id, _json(list(dict.fromkeys(memory_ids)))),
                )
        finally:
            conn.execute("PRAGMA synchronous = FULL")

    @_mapped
    def history(self, user_id: str, memory_id: str) -> list[MemoryEvent]:
        """Every event of one memory, oldest first."""
        check_user_id(user_id)
        rows = self._conn().execute(
            "SELECT * FROM memory_events WHERE user_id = ? AND memory_id = ? ORDER BY seq",
            (user_id, memory_id),
        )
        return [
            MemoryEvent(
                id=r["id"],
                user_id=r["user_id"],
                agent_id=r["agent_id"],
                memory_id=r["memory_id"],
                kind=r["kind"],
                before=None if r["before"] is None else json.loads(r["before"]),
                after=None if r["after"] is None else json.loads(r["after"]),
                operation=r["operation"],
                run_id=r["run_id"],
                created_at=_from_us(r["created_at"]),
            )
            for r in rows.fetchall()
        ]

    # -- users ---------------------------------------------------------------------------------------

    @_mapped
    def delete_user(self, user_id: str) -> int:
        """Delete the user's messages, memories and events; returns how many rows went."""
        check_user_id(user_id)
        with self._write() as conn:
            conn.execute(
                "DELETE FROM messages_fts WHERE rowid IN (SELECT pk FROM messages WHERE user_id = ?)",
                (user_id,),
            )
            conn.execute(
                "DELETE FROM memories_fts WHERE rowid IN (SELECT pk FROM memories WHERE user_id = ?)",
                (user_id,),
            )
            total = 0
            for table in ("messages", "memories", "memory_events"):
                total += conn.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,)).rowcount
            self._bump(conn, user_id, "messages", reset=True)
            self._bump(conn, user_id, "memories", reset=True)
        return total

    @_mapped
    def stats(self, user_id: str) -> StoreStats:
        """Counts of messages and memories for one user."""
        check_user_id(user_id)
        with self._read() as conn:
            total, pending = conn.execute(
                "SELECT COUNT(*), COUNT(*) - COUNT(consolidated_at) FROM messages WHERE user_id = ?",
                (user_id,),
            ).fetchone()
            counts: dict[str, dict[str, int]] = {}
            for status, mtype, n in conn.execute(
                "SELECT status, memory_type, COUNT(*) FROM memories WHERE user_id = ? GROUP BY status, memory_type",
                (user_id,),
            ).fetchall():
                counts.setdefault(status, {})[mtype] = n
        return StoreStats(pending_messages=pending, total_messages=total, memories=counts)

    # -- hybrid search -------------------------------------------------------------------------------

    def _hybrid(
        self,
        kind: str,
        user_id: str,
        query: SearchQuery,
        where: str,
        params: list[Any],
        mask_of: Callable[[_VectorIndex], np.ndarray],
    ) -> list[tuple[str, float, int | None, int | None, float | None]]:
        """Run both channels and fuse: (id, score, vector_rank, text_rank, similarity), best first."""
        wanted = max(query.candidates, query.top_k)
        rankings: list[list[str]] = []
        vector_ids: list[str] = []
        text_ids: list[str] = []
        similarity: Callable[[str], float | None] = lambda _: None  # noqa: E731
        match = fts_query(query.text)
        text_sql = (
            f"SELECT m.id FROM {kind}_fts JOIN {kind} m ON m.pk = {kind}_fts.rowid"
            f" WHERE {kind}_fts MATCH ? AND {where} ORDER BY rank LIMIT ?"  # rank = bm25, sorted inside FTS5
        )

        def text_channel() -> list[str]:
            return [r[0] for r in self._conn().execute(text_sql, [match, *params, wanted]).fetchall()]

        # Both channels release the GIL (SQLite, BLAS): over a large matrix the text query runs on a helper
        # thread (its own connection) while the vector product runs here; small ones are not worth the hop.
        pending = None
        if match is not None and query.embedding is not None:
            rows = len(self._vector_index(kind, user_id, len(query.embedding)).ids)
            if rows >= _PARALLEL_ROWS:
                pending = self._text_pool().submit(text_channel)
        if query.embedding is not None:
            vector_ids, similarity = self._vector_channel(kind, user_id, query.embedding, wanted, mask_of)
            rankings.append(vector_ids)
        if match is not None:
            text_ids = pending.result() if pending is not None else text_channel()
            rankings.append(text_ids)
        if not rankings:
            return []
        vector_rank = {i: n for n, i in enumerate(vector_ids, start=1)}
        text_rank = {i: n for n, i in enumerate(text_ids, start=1)}
        fused = list(rrf_fuse(rankings, k=query.rrf_k).items())[: query.top_k]
        return [(i, s, vector_rank.get(i), text_rank.get(i), similarity(i)) for i, s in fused]

    def _vector_channel(
        self,
        kind: str,
        user_id: str,
        embedding: Sequence[float],
        wanted: int,
        mask_of: Callable[[_VectorIndex], np.ndarray],
    ) -> tuple[list[str], Callable[[str], float | None]]:
        """Exact cosine top-`wanted` ids among the filtered rows, and a lookup of any row's similarity."""
        q = np.asarray(embedding, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(q))
        if norm > 0:
            q = q / norm
        index = self._vector_index(kind, user_id, int(q.shape[0]))
        sims = self._similarities(kind, user_id, index, q)

        def similarity(memory_id: str) -> float | None:
            pos = index.pos.get(memory_id)
            return None if pos is None else float(sims[pos])

        allowed = np.flatnonzero(mask_of(index)) if index.ids else np.zeros(0, dtype=np.int64)
        if allowed.size == 0:
            return [], similarity
        scores = sims if allowed.size == sims.size else sims[allowed]
        top = np.arange(allowed.size)
        if allowed.size > wanted:
            top = np.argpartition(-scores, wanted - 1)[:wanted]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [index.ids[i] for i in allowed[top]], similarity

    def _text_pool(self) -> ThreadPoolExecutor:
        """The helper thread(s) running text queries beside the vector product (made on first use)."""
        with self._lock:
            if self._closed:
                raise StoreError(f"the SQLite store {self.path} is closed; open a new SqliteStore")
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="memscope-sqlite")
            return self._pool

    def _similarities(self, kind: str, user_id: str, index: _VectorIndex, q: np.ndarray) -> np.ndarray:
        """Cosine of `q` with every row; the last few are kept, as a retrieval often searches twice with one
        vector (open, then time-filtered) and the product is the costliest step of a large search."""
        key = (kind, user_id, index.version, len(index.ids), q.tobytes())
        with self._lock:
            sims = self._sims.get(key)
        if sims is None:
            sims = index.matrix @ q
            with self._lock:
                self._sims[key] = sims
                while len(self._sims) > _SIMS_KEPT:
                    self._sims.popitem(last=False)
        return sims

    def _vector_index(self, kind: str, user_id: str, dim: int) -> _VectorIndex:
        """The cached matrix of one user's vectors, brought up to date with the user's version.

        Rows written since the cached version are patched in; after delete_user it is rebuilt.
        """
        key = (kind, user_id, dim)
        with self._read() as conn:
            row = conn.execute(
                "SELECT version, reset_at FROM versions WHERE user_id = ? AND kind = ?", (user_id, kind)
            ).fetchone()
            version, reset_at = (0, 0) if row is None else (row[0], row[1])
            with self._lock:
                cached = self._cache.get(key)
            if cached is not None and cached.version == version:
                index = cached
            elif cached is not None and cached.version >= reset_at:
                sql = f"SELECT {_VECTOR_COLUMNS[kind]} FROM {kind} WHERE user_id = ? AND row_version > ?"
                index = _apply(cached, conn.execute(sql, (user_id, cached.version)).fetchall(), version)
            else:
                sql = f"SELECT {_VECTOR_COLUMNS[kind]} FROM {kind} WHERE user_id = ? AND dim = ?"
                index = _apply(_empty_index(dim), conn.execute(sql, (user_id, dim)).fetchall(), version)
        with self._lock:
            self._cache[key] = index
            self._cache.move_to_end(key)
            total = sum(ix.nbytes for ix in self._cache.values())
            while total > _CACHE_BYTES and len(self._cache) > 1:
                _, evicted = self._cache.popitem(last=False)
                total -= evicted.nbytes
        return index


def _empty_index(dim: int) -> _VectorIndex:
    return _VectorIndex(0, [], {}, np.zeros((0, dim), dtype=np.float32), {"alive": np.zeros(0, bool)}, {})


def _apply(base: _VectorIndex, rows: list[sqlite3.Row], version: int) -> _VectorIndex:
    """A new index: `base` with these rows updated in place or appended (never mutates `base`).

    A row whose vector went away or changed dimension stays in place, marked not alive.
    """
    if not rows:
        return replace(base, version=version)
    dim = base.matrix.shape[1]
    usable = [r["embedding"] is not None and r["dim"] == dim for r in rows]
    added = [r["id"] for r, ok in zip(rows, usable, strict=True) if ok and r["id"] not in base.pos]
    ids = base.ids + added
    pos = {**base.pos, **{i: n for n, i in enumerate(added, start=len(base.ids))}}
    keep = [n for n, r in enumerate(rows) if r["id"] in pos]
    where = np.array([pos[rows[n]["id"]] for n in keep], dtype=np.int64)
    old = len(base.ids)

    def grown(array: np.ndarray, fill: Any) -> np.ndarray:
        out = np.full((len(ids), *array.shape[1:]), fill, dtype=array.dtype)
        out[:old] = array
        return out

    vectors = np.zeros((len(keep), dim), dtype=np.float32)
    for out_row, n in enumerate(keep):
        if usable[n]:
            vectors[out_row] = np.frombuffer(rows[n]["embedding"], dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    matrix = grown(base.matrix, 0.0)
    matrix[where] = vectors / np.where(norms > 0, norms, 1.0)
    cols = {"alive": grown(base.cols["alive"], False)}
    cols["alive"][where] = [usable[n] for n in keep]
    cats: dict[str, tuple[list[Any], np.ndarray]] = {}
    for name in rows[0].keys()[3:]:
        values = [rows[n][name] for n in keep]
        if name in _NUMERIC:
            column = base.cols.get(name, np.zeros(0, dtype=_NUMERIC[name]))
            cols[name] = grown(column, 0)
            cols[name][where] = values
        else:
            distinct, codes = base.cats.get(name, ([], np.zeros(0, dtype=np.int32)))
            lookup = {v: n for n, v in enumerate(distinct)}
            per_row = [lookup.setdefault(v, len(lookup)) for v in values]
            cats[name] = (list(lookup), grown(codes, 0))
            cats[name][1][where] = per_row
    return _VectorIndex(version, ids, pos, matrix, cols, cats)
