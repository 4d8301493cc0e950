"""The embedded store: one SQLite file (WAL), FTS5 for BM25, cosine search with numpy.

The pieces live beside it: `sqlite_schema` (tables, SQL filters), `sqlite_rows` (model <-> row),
`sqlite_fts` (what FTS5 indexes, query building), `vector_index` (the in-memory vectors and top-k
search), `changes` (what a memory write records, shared with Elasticsearch). Choices worth knowing:

- Timestamps are integer microseconds (UTC) and come back as aware UTC datetimes; embeddings are
  float32 BLOBs, so a vector reads back rounded to float32.
- `write_memories` compares a node with the stored one ignoring `updated_at`, `access_count` and
  `last_accessed_at` (see `changes`); an identical node records no event and is not written.
- A message is text-indexed with its speaker's name (`name: content`), and in a second column
  weighted 0.3 the turn it replies to (`replied_turn_text`); CJK text one character per token,
  queried by character pairs; every query word is quoted and OR'ed.
- Vector search keeps a per-user float32 matrix in memory, tagged with a per-user version counter
  that every write bumps in the same transaction (rows carry the version that last wrote them), so
  a write from another process is seen at once: changed rows are patched in, and the matrix is
  rebuilt after `delete_user`. A query vector of another dimension than the stored ones finds nothing.
- From `ann_min_rows` vectors (20,000) a user's search starts with an HNSW graph whose candidates are
  rescored exactly (`vector_index.search`, `vector_ann`); from `snapshot_min_rows` (5,000) the index is
  saved beside the database (`vector_files`) so a new process reopens it instead of reading every row.
  Both are made on one background thread; `build_vector_index` makes them now.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, ParamSpec, TypeVar

import numpy as np

from memscope.errors import EmbeddingMismatch, StoreError, StoreUnavailable, ValidationError
from memscope.llm.blas_threads import limit_blas_to_one_thread
from memscope.models import MemoryEvent, MemoryNode, Message, check_user_id, replied_turn_text, utcnow
from memscope.redact import scrubbed_logger
from memscope.stores import sqlite_leases as leases
from memscope.stores.base import (
    ConsolidationMark,
    Fence,
    MemoryFilter,
    MessageFilter,
    ScoredMemory,
    ScoredMessage,
    SearchQuery,
    StoreStats,
    check_neighbour_window,
)
from memscope.stores.changes import change_kind, kept_access
from memscope.stores.fusion import FusedHit, fuse_channels
from memscope.stores.sqlite_fts import (
    UNSELECTIVE_ROWS,
    fts_normalize,
    fts_query,
    message_body,
    plan_text_query,
    query_terms,
)
from memscope.stores.sqlite_rows import (
    blob,
    from_us,
    memory_from_row,
    memory_from_stored,
    memory_row,
    message_from_row,
    message_from_stored,
    message_row,
    to_json,
    to_us,
)
from memscope.stores.sqlite_schema import (
    FTS_TOKENIZER,
    MEMORY_COLUMNS,
    MESSAGE_COLUMNS,
    SCHEMA_VERSION,
    ensure_late_indexes,
    memory_where,
    message_where,
    migrate_schema,
)
from memscope.stores.vector_ann import ANN_MIN_ROWS, BuildStopped, ann_available, build_graph
from memscope.stores.vector_files import load_snapshot, remove_snapshots, save_snapshot, snapshot_folder
from memscope.stores.vector_index import (
    TIME_ORDER,
    VECTOR_COLUMNS,
    VectorIndex,
    apply_rows,
    empty_index,
    memory_mask,
    message_mask,
    search,
    top_matches,
    upkeep,
)

__all__ = ["SCHEMA_VERSION", "SqliteStore", "fts_normalize", "fts_query"]

_MESSAGE_SELECT = ", ".join(MESSAGE_COLUMNS)
_MEMORY_SELECT = ", ".join(MEMORY_COLUMNS)  # the order memory_from_stored reads
_MEMORY_SELECT_NO_VECTOR = ", ".join("NULL AS embedding" if c == "embedding" else c for c in MEMORY_COLUMNS)
_NEIGHBOUR_ANCHORS_PER_QUERY = 100  # two SELECTs each: under SQLite's 500 terms of a compound SELECT


def _neighbour_query(
    user_id: str, anchors: Sequence[Sequence[Any]], first: int, before: int, after: int
) -> tuple[str, list[Any]]:
    """One UNION ALL statement for anchors[first:first + 100]: per anchor and side, a LIMITed seek on the
    messages_conversation index; each row carries its anchor's position."""
    parts: list[str] = []
    params: list[Any] = []
    for side, limit in (("<", before), (">", after)):
        if limit <= 0:
            continue
        order = "DESC" if side == "<" else "ASC"
        for n in range(first, min(first + _NEIGHBOUR_ANCHORS_PER_QUERY, len(anchors))):
            mid, agent, session, at = anchors[n]
            parts.append(
                f"SELECT * FROM (SELECT {n} AS anchor, {_MESSAGE_SELECT} FROM messages"
                f" WHERE user_id = ? AND agent_id = ? AND session_id IS ? AND (created_at {side} ?"
                f" OR (created_at = ? AND id {side} ?)) ORDER BY created_at {order}, id {order} LIMIT ?)"
            )
            params += [user_id, agent, session, at, at, mid, limit]
    return " UNION ALL ".join(parts), params


def _adjacent(
    conn: sqlite3.Connection, user_id: str, anchors: Sequence[Sequence[Any]], before: int, after: int
) -> list[list[sqlite3.Row]]:
    """Per anchor (id, agent_id, session_id, created_at), the `before` turns before it and `after` turns
    after it in its conversation, in (created_at, id) order: what "neighbour" means in this store."""
    found: list[list[sqlite3.Row]] = [[] for _ in anchors]
    for first in range(0, len(anchors) if before or after else 0, _NEIGHBOUR_ANCHORS_PER_QUERY):
        sql, params = _neighbour_query(user_id, anchors, first, before, after)
        for row in conn.execute(sql, params).fetchall():
            found[row["anchor"]].append(row)
    return [sorted(rows, key=lambda r: (r["created_at"], r["id"])) for rows in found]

_CACHE_BYTES = 512 * 1024 * 1024  # heap bytes of cached indexes (memory-mapped snapshots are not counted)
_OPEN_FILES_KEPT = 256  # snapshot files the cached indexes may hold open (a 1M-row index holds 16)
_PARALLEL_ROWS = 20_000  # from this many vectors, the text query runs beside the vector product
# From this many memories a retrieval's open and time-filtered searches run side by side: questions naming a
# time, paired medians against in turn, 1k +0.18 ms, 5k -0.13, 10k -0.51, 100k -0.69 (see searches_overlap).
_SIDE_BY_SIDE_ROWS = 10_000
_PERIOD_POSTINGS = 5_000  # the most rows of its terms a time-filtered memory search ranks by BM25 (~1.5 ms)
_STEMS_KEPT = 10_000  # query words whose stem is cached
SNAPSHOT_MIN_ROWS = 5_000  # below this, reading a user's rows on open takes less than ~50 ms (idle)
_SIMS_KEPT = 4  # recent query-vector similarity arrays kept (a retrieval searches twice with one vector)
_PLANS_KEPT = 256  # recent text-query plans kept (a retrieval plans its words twice per kind)
_COUNTS_SLACK = 0.005  # a term's row count (and a plan made from counts) is kept until the index grows by this
_COUNTS_SLACK_ROWS = 16  # ... or by this many rows, whichever is more


class _TextMatch(NamedTuple):
    """A query's FTS5 MATCH expression (None: no term), whether a vector search can stand in for it, and
    the rows FTS5 reads for it: its terms' document counts summed (a CJK phrase's unknown count left out;
    in a small index, whose terms are not counted, all its rows)."""

    match: str | None
    vector_suffices: bool
    rows: int


def _still_counts(counted_at: int, rows: int) -> bool:
    """Whether counts taken when the index had `counted_at` rows still stand at `rows` rows."""
    return counted_at <= rows <= counted_at + max(_COUNTS_SLACK_ROWS, int(counted_at * _COUNTS_SLACK))

log = scrubbed_logger("memscope.store")
P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


def _mapped(fn: Callable[P, R]) -> Callable[P, R]:
    """Map sqlite3 errors raised by a public method to memscope's StoreError family."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        store = args[0]
        assert isinstance(store, SqliteStore)
        store._enter()  # close() waits for calls in flight: closing a connection under one crashes the process
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
        finally:
            store._leave()

    return wrapper


class SqliteStore:
    """The embedded Store: one SQLite file, safe for several threads and processes at once."""

    in_process = True  # its calls run here, mostly Python under the GIL (see Worker.overlaps)

    def __init__(
        self,
        path: str | Path,
        *,
        timeout_s: float = 30.0,
        ann_min_rows: int = ANN_MIN_ROWS,
        snapshot_min_rows: int = SNAPSHOT_MIN_ROWS,
    ) -> None:
        if str(path) == ":memory:" or str(path).startswith("file:"):
            raise ValidationError(f"SqliteStore needs a file path, got {str(path)!r}; use a temporary file instead")
        self.path = Path(path).expanduser()
        self._snapshots = snapshot_folder(self.path)
        self.ann_min_rows = ann_min_rows  # from this many vectors a user's search starts with an HNSW graph
        self.snapshot_min_rows = snapshot_min_rows  # from this many, the user's vectors are saved for reopening
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._connections: dict[threading.Thread, sqlite3.Connection] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when a thread's last call in flight ends
        self._in_flight: dict[threading.Thread, int] = {}  # public calls running, per thread
        self._closed = False
        self._cache: OrderedDict[tuple[str, str, int], VectorIndex] = OrderedDict()
        self._sims: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
        self._stem_cache: OrderedDict[str, str] = OrderedDict()
        self._plans: OrderedDict[tuple[str, tuple[str, ...]], tuple[int, _TextMatch]] = OrderedDict()
        self._counts: OrderedDict[tuple[str, str], tuple[int, int]] = OrderedDict()  # (kind, stem): (rows, of)
        self._pool: ThreadPoolExecutor | None = None
        self._graph_pool: ThreadPoolExecutor | None = None
        self._building: set[tuple[str, str, int]] = set()
        self._store_id = ""
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
                self._release_dead_threads()
                self._connections[threading.current_thread()] = conn
        return conn

    def _enter(self) -> None:
        me = threading.current_thread()
        with self._lock:
            self._in_flight[me] = self._in_flight.get(me, 0) + 1

    def _leave(self) -> None:
        me = threading.current_thread()
        with self._lock:
            left = self._in_flight[me] - 1
            if left:
                self._in_flight[me] = left
            else:
                del self._in_flight[me]
                self._idle.notify_all()

    def _release_dead_threads(self) -> None:
        """Close the connections of threads that have ended (under `_lock`): one per live thread, no more."""
        for thread in [t for t in self._connections if not t.is_alive()]:
            self._connections.pop(thread).close()

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
                migrate_schema(conn, version)
            else:
                ensure_late_indexes(conn)
            self._store_id = leases.ensure_store_id(conn)

    def warm_up(self) -> None:
        """Load now what the first vector search would load (the graph library, the BLAS thread limit, a
        part of numpy imported on first use): ~30 ms of the first query after opening otherwise."""
        limit_blas_to_one_thread()
        ann_available()
        np.unique(np.zeros(2, dtype=np.int64))

    def searches_overlap(self, kind: str, user_id: str, dim: int) -> bool:
        """Whether two searches of this user's `kind` (vectors of `dim`) gain from running side by side: over
        a large cached memory index (_SIDE_BY_SIDE_ROWS+) most of a search is SQLite, BLAS and the graph,
        outside the GIL; over a small one they would only take turns at the GIL. Turns: no, as a period of
        turns is one short stretch of rows (`_rows_between`), mostly Python to search (at 100k turns: no
        difference, three runs)."""
        if kind != "memories":
            return False
        with self._lock:
            index = self._cache.get((kind, user_id, dim))
        return index is not None and len(index.ids) >= _SIDE_BY_SIDE_ROWS

    def close(self) -> None:
        """Release every thread's connection; later calls raise StoreError. Calls other threads have in flight
        are interrupted and waited for (up to the busy timeout): closing a connection under one crashes."""
        with self._lock:
            self._closed = True
            owned, self._connections = dict(self._connections), {}
            self._cache.clear()
            self._sims.clear()
            self._plans.clear()
            pool, self._pool = self._pool, None
            graphs, self._graph_pool = self._graph_pool, None
        for executor in (pool, graphs):
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
        me = threading.current_thread()
        with self._lock:
            owned.update(self._connections)  # a helper thread may have opened one meanwhile
            self._connections = {}
            busy = [conn for thread, conn in owned.items() if thread in self._in_flight and thread is not me]
        for conn in busy:  # a running statement stops now (StoreError in that thread); a lock wait ends by timeout
            conn.interrupt()
        with self._idle:
            self._idle.wait_for(lambda: not set(self._in_flight) - {me}, timeout=self.timeout_s + 5)
            still = set(self._in_flight) - {me}
        for thread, conn in owned.items():
            if thread in still:
                log.warning("SQLite store %s closed while thread %s is still in a call; its connection is left open",
                            self.path, thread.name)  # fmt: skip
            else:
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
        return dict(conn.execute(sql, (to_json(ids),)).fetchall())

    # -- messages ------------------------------------------------------------------------------------

    @_mapped
    def add_messages(self, messages: Sequence[Message]) -> None:
        """Store messages durably (idempotent by id); searchable by text before this returns."""
        rows = [message_row(m) for m in messages]
        if not rows:
            return
        given = {m.id: m for m in messages}
        with self._write() as conn:
            owners = self._owners(conn, "messages", [r["id"] for r in rows])
            clashes = [r["id"] for r in rows if owners.get(r["id"], r["user_id"]) != r["user_id"]]
            if clashes:
                raise ValidationError(f"message id(s) {clashes[:5]} already belong to another user; give new ids")
            columns = ", ".join(MESSAGE_COLUMNS)
            marks = ", ".join("?" * len(MESSAGE_COLUMNS))
            added: dict[str, tuple[int, dict[str, Any], Message]] = {}
            for row in rows:
                cur = conn.execute(
                    f"INSERT INTO messages ({columns}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING",
                    [row[c] for c in MESSAGE_COLUMNS],
                )
                if cur.rowcount == 1 and cur.lastrowid is not None:
                    added[row["id"]] = (cur.lastrowid, row, given[row["id"]])
            self._index_messages(conn, added)

    @staticmethod
    def _index_messages(conn: sqlite3.Connection, added: dict[str, tuple[int, dict[str, Any], Message]]) -> None:
        """Full-text rows of just-inserted messages: body, and as context the turn each replies to.

        The turns before and after each are read once all are inserted, so a batch of consecutive turns
        links up; a turn inserted before one already stored (an earlier created_at arriving later)
        becomes that turn's context in place of what it had.
        """
        by_user: dict[str, list[tuple[str, str, str | None, int]]] = {}
        for mid, (_, row, _) in added.items():
            by_user.setdefault(row["user_id"], []).append((mid, row["agent_id"], row["session_id"], row["created_at"]))
        for user_id, anchors in by_user.items():
            for anchor, rows in zip(anchors, _adjacent(conn, user_id, anchors, 1, 1), strict=True):
                key = (anchor[3], anchor[0])
                earlier = [r for r in rows if (r["created_at"], r["id"]) < key]
                later = [r for r in rows if (r["created_at"], r["id"]) > key and r["id"] not in added]
                pk, row, message = added[anchor[0]]
                replied = replied_turn_text(message_from_stored(earlier[-1][1:])) if earlier else ""
                conn.execute(
                    "INSERT INTO messages_fts (rowid, body, context) VALUES (?, ?, ?)",
                    (pk, fts_normalize(message_body(row)), fts_normalize(replied)),
                )
                context = fts_normalize(replied_turn_text(message))
                for follower in later:  # stored before this turn, though later in the conversation
                    conn.execute(
                        "UPDATE messages_fts SET context = ? WHERE rowid = (SELECT pk FROM messages WHERE id = ?)",
                        (context, follower["id"]),
                    )

    @_mapped
    def list_messages(
        self,
        user_id: str,
        filter: MessageFilter | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Message]:
        """Messages of one user, oldest first (newest first if asked)."""
        check_user_id(user_id)
        where, params = message_where(user_id, filter or MessageFilter())
        order = "m.created_at DESC, m.id DESC" if newest_first else "m.created_at, m.id"
        sql = f"SELECT {_MESSAGE_SELECT} FROM messages m WHERE {where} ORDER BY {order} LIMIT ?"
        rows = self._conn().execute(sql, [*params, -1 if limit is None else limit]).fetchall()
        return [message_from_stored(r) for r in rows]

    @_mapped
    def mark_consolidated(
        self, user_id: str, message_ids: Sequence[str], at: datetime, *, fence: Fence | None = None
    ) -> int:
        """Set consolidated_at on these pending messages of this user; returns how many changed.

        With `fence`, the lease token is checked in the same transaction (LeaseLost writes nothing)."""
        check_user_id(user_id)
        with self._write() as conn:
            leases.check_fence(conn, fence)
            return self._mark(conn, ConsolidationMark(user_id, message_ids, at))

    def _mark(self, conn: sqlite3.Connection, mark: ConsolidationMark) -> int:
        version = self._bump(conn, mark.user_id, "messages")
        cur = conn.execute(
            "UPDATE messages SET consolidated_at = ?, row_version = ? WHERE +user_id = ?"
            " AND consolidated_at IS NULL AND id IN (SELECT value FROM json_each(?))",
            (to_us(mark.at), version, mark.user_id, to_json(list(mark.message_ids))),
        )
        return cur.rowcount

    @_mapped
    def set_message_embeddings(self, user_id: str, embeddings: dict[str, Sequence[float]]) -> None:
        """Attach vectors to messages of this user (ids not of this user are ignored)."""
        self._set_embeddings("messages", user_id, embeddings)

    # -- re-embedding (SQLite only: `memscope reembed`) ----------------------------------------------

    @_mapped
    def clear_embeddings(self, model: str, dim: int) -> list[str]:
        """Switch the store to another embedding model: drop every vector and record the new model;
        returns the users whose rows need vectors. A no-op (but for the list) if already switched."""
        with self._write() as conn:
            stored = dict(conn.execute("SELECT key, value FROM meta WHERE key LIKE 'embedding_%'").fetchall())
            users = [r[0] for r in conn.execute("SELECT user_id FROM messages UNION SELECT user_id FROM memories")]
            if stored.get("embedding_model") == model and stored.get("embedding_dim") == str(int(dim)):
                return users
            conn.execute("UPDATE memories SET embedding = NULL, dim = NULL")
            conn.execute("UPDATE messages SET embedding = NULL, dim = NULL")
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [("embedding_model", model), ("embedding_dim", str(int(dim)))],
            )
            for user in users:
                for kind in ("memories", "messages"):
                    self._bump(conn, user, kind, reset=True)
        with self._lock:
            self._cache.clear()
            self._sims.clear()
        return users

    @_mapped
    def memories_without_embedding(self, user_id: str, limit: int = 256) -> list[MemoryNode]:
        """Active memories of this user that have no vector, oldest first (after `clear_embeddings`)."""
        check_user_id(user_id)
        rows = self._conn().execute(
            "SELECT * FROM memories WHERE user_id = ? AND embedding IS NULL AND status = 'active'"
            " ORDER BY created_at, id LIMIT ?",
            (user_id, limit),
        )
        return [memory_from_row(r) for r in rows.fetchall()]

    @_mapped
    def set_memory_embeddings(self, user_id: str, embeddings: dict[str, Sequence[float]]) -> None:
        """Attach vectors to memories of this user without an event: the memory itself did not change."""
        self._set_embeddings("memories", user_id, embeddings)

    def _set_embeddings(self, kind: str, user_id: str, embeddings: dict[str, Sequence[float]]) -> None:
        """Attach vectors to rows of `kind` of this user (other users' ids match nothing)."""
        check_user_id(user_id)
        blobs = {row_id: blob(vec) for row_id, vec in embeddings.items()}
        if not blobs:
            return
        with self._write() as conn:
            self._check_dims(conn, {dim for _, dim in blobs.values() if dim is not None})
            version = self._bump(conn, user_id, kind)
            conn.executemany(
                f"UPDATE {kind} SET embedding = ?, dim = ?, row_version = ? WHERE +user_id = ? AND id = ?",
                [(data, dim, version, user_id, row_id) for row_id, (data, dim) in blobs.items()],
            )

    @_mapped
    def messages_without_embedding(self, user_id: str, limit: int = 256) -> list[Message]:
        """Messages of this user that have no vector yet, oldest first."""
        check_user_id(user_id)
        rows = self._conn().execute(
            "SELECT * FROM messages WHERE user_id = ? AND embedding IS NULL ORDER BY created_at, id LIMIT ?",
            (user_id, limit),
        )
        return [message_from_row(r) for r in rows.fetchall()]

    @_mapped
    def search_messages(
        self, user_id: str, query: SearchQuery, filter: MessageFilter | None = None
    ) -> list[ScoredMessage]:
        """Hybrid search over one user's messages."""
        check_user_id(user_id)
        f = filter or MessageFilter()
        where, params = message_where(user_id, f)
        rows = self._rows_between(where, params) if f.time_range is not None else None
        hits = self._hybrid("messages", user_id, query, where, params, lambda ix: message_mask(ix, f), rows)
        found = self._rows_by_id("messages", user_id, [h.id for h in hits], message_from_stored, _MESSAGE_SELECT)
        return [ScoredMessage.of(found[h.id], h) for h in hits if h.id in found]

    @_mapped
    def message_text_ranking(
        self, user_id: str, query: SearchQuery, filter: MessageFilter | None = None
    ) -> list[str] | None:
        """The text channel of `search_messages` alone (see `SearchQuery.text_ranking`)."""
        check_user_id(user_id)
        where, params = message_where(user_id, filter or MessageFilter())
        return self._text_ranking("messages", query, where, params)

    @_mapped
    def users_with_pending(self, limit: int = 1000) -> list[tuple[str, str]]:
        """(user_id, agent_id) pairs that have pending messages: the sweep's source of truth."""
        rows = self._conn().execute(
            "SELECT DISTINCT user_id, agent_id FROM messages WHERE consolidated_at IS NULL"
            " ORDER BY user_id, agent_id LIMIT ?",
            (limit,),
        )
        return [(r[0], r[1]) for r in rows.fetchall()]

    @_mapped
    def message_neighbours(
        self, user_id: str, message_ids: Sequence[str], before: int = 1, after: int = 1
    ) -> dict[str, list[Message]]:
        """The turns just before and after each message in its conversation (agent, session), oldest first."""
        check_user_id(user_id)
        check_neighbour_window(before, after)
        ids = list(dict.fromkeys(message_ids))
        out: dict[str, list[Message]] = {}
        if not ids:
            return out
        with self._read() as conn:
            anchors = conn.execute(
                "SELECT id, agent_id, session_id, created_at FROM messages"
                " WHERE +user_id = ? AND id IN (SELECT value FROM json_each(?))",
                (user_id, to_json(ids)),
            ).fetchall()
            if not anchors:
                return out
            found = _adjacent(conn, user_id, anchors, before, after)
        for (mid, *_rest), rows in zip(anchors, found, strict=True):
            out[mid] = [message_from_stored(r[1:]) for r in rows]  # r[0]: the anchor's position
        return out

    # -- identity and per-user leases ----------------------------------------------------------------

    def store_id(self) -> str:
        """This store's identity, written into `meta` when the file was created."""
        return self._store_id

    @_mapped
    def acquire_lease(self, user_id: str, holder: str, ttl_s: float) -> int | None:
        """Take the user's lease if free, expired or `holder`'s; its fencing token, or None while busy."""
        check_user_id(user_id)
        with self._write() as conn:
            return leases.acquire(conn, user_id, holder, ttl_s)

    @_mapped
    def renew_lease(self, user_id: str, token: int, ttl_s: float) -> bool:
        """Extend the lease while it has `token`; False once another holder took it."""
        with self._write() as conn:
            return leases.renew(conn, user_id, token, ttl_s)

    @_mapped
    def release_lease(self, user_id: str, token: int) -> None:
        """Expire the lease now if it still has `token`."""
        with self._write() as conn:
            leases.release(conn, user_id, token)

    # -- memories ------------------------------------------------------------------------------------

    @_mapped
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

        Idempotent: a node equal to the stored one, ignoring updated_at and the access counters,
        records nothing and is not written. Returns the events. With `fence`, the lease token is
        checked in the same transaction (LeaseLost writes nothing); `consolidates` marks its messages
        in that transaction too.
        """
        rows = [memory_row(node) for node in memories]
        if not rows and consolidates is None:
            return []
        events: list[MemoryEvent] = []
        with self._write() as conn:
            leases.check_fence(conn, fence)
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
            if consolidates is not None:
                check_user_id(consolidates.user_id)
                self._mark(conn, consolidates)
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
        kind = change_kind(old, row)
        if kind is None:
            return None
        row["row_version"] = version_of(row["user_id"])
        before = None
        if old is None:
            cur = conn.execute(
                f"INSERT INTO memories ({', '.join(MEMORY_COLUMNS)}) VALUES ({', '.join('?' * len(MEMORY_COLUMNS))})",
                [row[c] for c in MEMORY_COLUMNS],
            )
            conn.execute(
                "INSERT INTO memories_fts (rowid, body) VALUES (?, ?)",
                (cur.lastrowid, fts_normalize(row["content"])),
            )
        else:
            before = memory_from_row(old).public_dict()
            row["access_count"], row["last_accessed_at"] = kept_access(
                row["access_count"], row["last_accessed_at"], old["access_count"], old["last_accessed_at"]
            )
            assignments = ", ".join(f"{c} = ?" for c in MEMORY_COLUMNS[1:])
            conn.execute(
                f"UPDATE memories SET {assignments} WHERE pk = ?",
                [*(row[c] for c in MEMORY_COLUMNS[1:]), old["pk"]],
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
            after=memory_from_row(row).public_dict(),
            operation=operation,
            run_id=run_id,
            created_at=utcnow(),
        )
        conn.execute(
            "INSERT INTO memory_events (id, user_id, agent_id, memory_id, kind, before, after, operation,"
            " run_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.id, event.user_id, event.agent_id, event.memory_id, str(event.kind),
                None if before is None else to_json(before), to_json(event.after), operation, run_id,
                to_us(event.created_at),
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
        return None if row is None else memory_from_row(row)

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
        where, params = memory_where(user_id, filter or MemoryFilter())
        sql = f"SELECT * FROM memories m WHERE {where} ORDER BY m.created_at DESC, m.id DESC LIMIT ? OFFSET ?"
        rows = self._conn().execute(sql, [*params, -1 if limit is None else limit, offset])
        return [memory_from_row(r) for r in rows.fetchall()]

    @_mapped
    def search_memories(
        self, user_id: str, query: SearchQuery, filter: MemoryFilter | None = None
    ) -> list[ScoredMemory]:
        """Hybrid search over one user's memories, best first; no text and no vector finds nothing."""
        check_user_id(user_id)
        f = filter or MemoryFilter()
        where, params = memory_where(user_id, f)
        # A memory's time is an overlap of two times, which cannot bound FTS5's reads as a pk range bounds
        # a period of messages (_rows_between): BM25 would rank every row of the terms and keep the period's
        # (11 ms of a time-filtered search over 1M memories); past _PERIOD_POSTINGS, the period's vector
        # search stands alone (the open search's text channel still ranks all rows).
        postings = _PERIOD_POSTINGS if f.time_range is not None else None
        hits = self._hybrid("memories", user_id, query, where, params, lambda ix: memory_mask(ix, f), postings=postings)
        columns = _MEMORY_SELECT if query.with_vectors else _MEMORY_SELECT_NO_VECTOR
        found = self._rows_by_id("memories", user_id, [h.id for h in hits], memory_from_stored, columns)
        return [ScoredMemory.of(found[h.id], h) for h in hits if h.id in found]

    @_mapped
    def memory_text_ranking(
        self, user_id: str, query: SearchQuery, filter: MemoryFilter | None = None
    ) -> list[str] | None:
        """The text channel of `search_memories` alone (see `SearchQuery.text_ranking`)."""
        check_user_id(user_id)
        where, params = memory_where(user_id, filter or MemoryFilter())
        return self._text_ranking("memories", query, where, params)

    def _rows_by_id(
        self, kind: str, user_id: str, ids: list[str], convert: Callable[[Any], T], columns: str = "*"
    ) -> dict[str, T]:
        """This user's rows of `kind` with these ids (these columns, the id first), converted, by id."""
        if not ids:
            return {}
        rows = self._conn().execute(
            f"SELECT {columns} FROM {kind} WHERE +user_id = ? AND id IN (SELECT value FROM json_each(?))",
            (user_id, to_json(ids)),
        )
        return {r[0]: convert(r) for r in rows.fetchall()}

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
                    (to_us(at), user_id, to_json(list(dict.fromkeys(memory_ids)))),
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
                created_at=from_us(r["created_at"]),
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
        remove_snapshots(self._snapshots, user_id)
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
        mask_of: Callable[[VectorIndex], np.ndarray],
        rows: tuple[int, int] | None = None,
        postings: int | None = None,
    ) -> list[FusedHit]:
        """Run both channels and fuse them, best first; `rows`: the least and greatest pk `where` selects,
        which bound the text channel's full-text search (see `_rows_between`); `postings`: with a vector,
        the text channel runs only while its terms' rows (what FTS5 reads, whatever `where` keeps) are at
        most this many."""
        wanted = max(query.candidates, query.top_k)
        rankings: list[list[str]] = []
        vector_ids: list[str] = []
        text_ids: list[str] = []
        similarity: Callable[[str], float | None] = lambda _: None  # noqa: E731
        match: str | None = None
        if query.text_ranking is not None:  # the text channel ran ahead (see SearchQuery.text_ranking)
            text_ids = list(query.text_ranking)[:wanted]
            rankings.append(text_ids)
        else:
            match, vector_suffices, read = self._text_match(kind, query.text)
            if query.embedding is not None and (vector_suffices or (postings is not None and read > postings)):
                match = None  # one term in thousands of rows: BM25 cannot rank them, the vector channel does

        def text_channel() -> list[str]:
            return self._text_ids(kind, match or "", where, params, wanted, rows)

        # Both channels release the GIL (SQLite, BLAS): over a large matrix the text query runs on a helper
        # thread (its own connection) while the vector product runs here; small ones are not worth the hop.
        pending = None
        index = self._vector_index(kind, user_id, len(query.embedding)) if query.embedding is not None else None
        if match is not None and index is not None and len(index.ids) >= _PARALLEL_ROWS:
            pending = self._text_pool().submit(text_channel)
        if query.embedding is not None and index is not None:
            vector_ids, similarity = self._vector_channel(kind, user_id, index, query.embedding, wanted, mask_of)
            rankings.append(vector_ids)
        if match is not None:
            text_ids = pending.result() if pending is not None else text_channel()
            rankings.append(text_ids)
        if not rankings:
            return []
        return fuse_channels(vector_ids, text_ids, k=query.rrf_k, top_k=query.top_k, similarity=similarity)

    def _text_ids(
        self, kind: str, match: str, where: str, params: list[Any], wanted: int, rows: tuple[int, int] | None = None
    ) -> list[str]:
        """The ids BM25 ranks first for a MATCH expression among the rows `where` selects (whose pks lie
        within `rows`, when given: FTS5 then reads and ranks only that stretch of each term's rows)."""
        if rows is not None and rows[0] > rows[1]:
            return []  # `where` selects no row
        within = f" AND {kind}_fts.rowid BETWEEN ? AND ?" if rows is not None else ""
        sql = (
            f"SELECT m.id FROM {kind}_fts JOIN {kind} m ON m.pk = {kind}_fts.rowid"
            f" WHERE {kind}_fts MATCH ?{within} AND {where} ORDER BY rank LIMIT ?"  # rank = bm25, sorted inside FTS5
        )
        return [r[0] for r in self._conn().execute(sql, [match, *(rows or ()), *params, wanted]).fetchall()]

    def _rows_between(self, where: str, params: list[Any]) -> tuple[int, int]:
        """The least and greatest pk of the messages `where` selects ((0, -1): none), read from the (user_id,
        created_at) index. Turns are mostly written in time order, so a period's turns are one short stretch
        of pks, and BM25 bounded by it ranks that stretch alone, not every turn with the words (LoCoMo's
        questions naming a time: 0.59 -> 0.33 ms). A superset bound: the rows `where` selects decide."""
        sql = f"SELECT min(m.pk), max(m.pk) FROM messages m WHERE {where}"
        low, high = self._conn().execute(sql, params).fetchone()
        return (0, -1) if low is None else (low, high)

    def _text_ranking(self, kind: str, query: SearchQuery, where: str, params: list[Any]) -> list[str] | None:
        """The text channel of `_hybrid` alone; None when a vector search may stand in for it."""
        match, vector_suffices, _ = self._text_match(kind, query.text)
        if match is None:
            return []
        if vector_suffices:
            return None  # whether it does depends on the query vector: the search decides
        return self._text_ids(kind, match, where, params, max(query.candidates, query.top_k))

    def _text_match(self, kind: str, text: str | None) -> _TextMatch:
        """The MATCH expression of a query, whether a vector search can stand in for it, and how many rows
        its terms are in: terms that cannot rank, and in a large index unselective ones, are left out (see
        `sqlite_fts.plan_text_query`)."""
        terms = query_terms(text)
        if not terms:
            return _TextMatch(None, False, 0)
        conn = self._conn()
        total = conn.execute(f"SELECT max(pk) FROM {kind}").fetchone()[0] or 0  # rows ever written: a bound
        if total <= UNSELECTIVE_ROWS and (len(terms) == 1 or total == 0):
            return _TextMatch(fts_query(None, terms=terms), False, total)  # a small index keeps a lone term
        # Kept while the index grows by less than _COUNTS_SLACK (see _still_counts): the text and
        # time-filtered searches of one retrieval plan the same words, and at 100k rows the document counts
        # and the AND probe cost 1-2 ms (at 400 rows, 0.07 ms). An edit or a deletion does not renew it:
        # the counts only guide selectivity, which a few rows changed do not move.
        key = (kind, tuple(terms))
        with self._lock:
            kept = self._plans.get(key)
        if kept is not None and _still_counts(kept[0], total):
            return kept[1]
        planned = self._plan_text(conn, kind, terms, total)
        with self._lock:
            self._plans[key] = (total, planned)
            self._plans.move_to_end(key)
            while len(self._plans) > _PLANS_KEPT:
                self._plans.popitem(last=False)
        return planned

    def _plan_text(self, conn: sqlite3.Connection, kind: str, terms: list[str], rows: int) -> _TextMatch:
        """`_text_match`'s answer from the terms' document counts among `rows` rows."""
        counts = self._doc_freq(conn, kind, terms, rows)
        plan = plan_text_query(terms, counts, rows)
        match = fts_query(None, terms=plan.terms, all_required=plan.all_required)
        read = sum(counts.get(t) or 0 for t in plan.terms)  # FTS5 reads each term's rows, AND'ed ones too
        if plan.all_required:  # the terms may still occur together in thousands of rows: count, unranked
            probe = f"SELECT count(*) FROM (SELECT rowid FROM {kind}_fts WHERE {kind}_fts MATCH ? LIMIT ?)"
            together = conn.execute(probe, (match, UNSELECTIVE_ROWS + 1)).fetchone()[0]
            return _TextMatch(match, together > UNSELECTIVE_ROWS, read)
        return _TextMatch(match, plan.vector_suffices, read)

    def _doc_freq(self, conn: sqlite3.Connection, kind: str, terms: list[str], rows: int) -> dict[str, int | None]:
        """How many of the `rows` indexed rows contain each term (None for a CJK phrase, which is not one
        token). A count is kept per word while the index grows by less than _COUNTS_SLACK: fts5vocab counts
        by walking the term's rows (1.2 ms for a word in 25k rows), and common words recur query after query."""
        words = [t for t in terms if " " not in t]
        stems = self._stems(conn, words)
        freq: dict[str, int | None] = {t: None for t in terms}
        with self._lock:
            kept = {w: self._counts.get((kind, stems[w])) for w in words}
        for word, count in kept.items():
            if count is not None and _still_counts(count[1], rows):
                freq[word] = count[0]
        stale = [w for w in words if freq[w] is None]
        if stale:
            conn.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{kind}_vocab USING fts5vocab(main, {kind}_fts, 'row')"
            )
        for word in stale:
            row = conn.execute(f"SELECT doc FROM temp.{kind}_vocab WHERE term = ?", (stems[word],)).fetchone()
            freq[word] = row[0] if row else 0
            with self._lock:
                self._counts[(kind, stems[word])] = (freq[word] or 0, rows)
                self._counts.move_to_end((kind, stems[word]))
                while len(self._counts) > _STEMS_KEPT:
                    self._counts.popitem(last=False)
        return freq

    def _stems(self, conn: sqlite3.Connection, words: list[str]) -> dict[str, str]:
        """Each word as the FTS tokenizer indexes it (porter-stemmed), through a scratch FTS5 table."""
        missing = [w for w in words if w not in self._stem_cache]
        if missing:
            conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.stemmer USING fts5(t, tokenize='{FTS_TOKENIZER}')")
            conn.execute(
                "CREATE VIRTUAL TABLE IF NOT EXISTS temp.stemmer_terms USING fts5vocab(temp, stemmer, 'instance')"
            )
            conn.executemany("INSERT INTO temp.stemmer (rowid, t) VALUES (?, ?)", list(enumerate(missing, start=1)))
            found = {doc: term for term, doc in conn.execute("SELECT term, doc FROM temp.stemmer_terms")}
            conn.execute("DELETE FROM temp.stemmer")
            with self._lock:
                for n, word in enumerate(missing, start=1):
                    self._stem_cache[word] = found.get(n, word)
                while len(self._stem_cache) > _STEMS_KEPT:
                    self._stem_cache.popitem(last=False)
        return {w: self._stem_cache.get(w, w) for w in words}

    def _vector_channel(
        self,
        kind: str,
        user_id: str,
        index: VectorIndex,
        embedding: Sequence[float],
        wanted: int,
        mask_of: Callable[[VectorIndex], np.ndarray],
    ) -> tuple[list[str], Callable[[str], float | None]]:
        """Cosine top-`wanted` ids among the filtered rows of `index` (the user's vectors of the query's
        dimension), and a lookup of any row's exact similarity."""
        limit_blas_to_one_thread()  # once per process: see blas_threads
        q = np.asarray(embedding, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(q))
        if norm > 0:
            q = q / norm
        if not index.ids:
            return [], lambda row_id: None
        if index.ann is None:
            sims = self._similarities(kind, user_id, index, q)
            rows, _ = top_matches(sims, mask_of(index), wanted)

            def similarity(row_id: str) -> float | None:
                pos = index.ids.position(row_id)
                return None if pos is None else float(sims[pos])

            return [index.ids[r] for r in rows], similarity
        rows, scores = search(index, q, mask_of(index), wanted)
        found = {index.ids[r]: float(s) for r, s in zip(rows, scores, strict=True)}

        def exact(row_id: str) -> float | None:
            if row_id in found:
                return found[row_id]
            pos = index.ids.position(row_id)
            return None if pos is None else float(index.matrix[pos] @ q)

        return list(found), exact

    def _text_pool(self) -> ThreadPoolExecutor:
        """The helper thread(s) running text queries beside the vector search (made on first use)."""
        with self._lock:
            if self._closed:
                raise StoreError(f"the SQLite store {self.path} is closed; open a new SqliteStore")
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="memscope-sqlite")
            return self._pool

    def _similarities(self, kind: str, user_id: str, index: VectorIndex, q: np.ndarray) -> np.ndarray:
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

    def _vector_index(self, kind: str, user_id: str, dim: int) -> VectorIndex:
        """The cached matrix of one user's vectors, brought up to date with the user's version.

        Rows written since the cached version are patched in; after delete_user it is rebuilt. With no
        cached matrix, the newest snapshot on disk (see `vector_files`) is the starting point.
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
                return self._keep(key, cached, changed=False)
            if cached is None or cached.version < reset_at:
                snapshot = load_snapshot(self._snapshots, kind, user_id, dim, self._store_id, version)
                cached = snapshot if snapshot is not None and snapshot.version >= reset_at else None
            select, order = f"SELECT {VECTOR_COLUMNS[kind]} FROM {kind}", f"ORDER BY {TIME_ORDER[kind]}"
            if cached is not None:
                sql = f"{select} WHERE user_id = ? AND row_version > ? {order}"
                index = apply_rows(cached, conn.execute(sql, (user_id, cached.version)).fetchall(), version)
            else:
                sql = f"{select} WHERE user_id = ? AND dim = ? {order}"
                index = apply_rows(empty_index(dim), conn.execute(sql, (user_id, dim)).fetchall(), version)
        return self._keep(key, index, changed=True)

    def _keep(self, key: tuple[str, str, int], index: VectorIndex, *, changed: bool) -> VectorIndex:
        """Cache `index` (evicting the least recently used past _CACHE_BYTES, or while the cached indexes
        hold more than _OPEN_FILES_KEPT snapshot files open); start a graph build if it is large and its
        graph is missing or lags too far behind."""
        with self._lock:
            self._cache[key] = index
            self._cache.move_to_end(key)
            if changed:
                total = sum(ix.nbytes for ix in self._cache.values())
                while total > _CACHE_BYTES and len(self._cache) > 1:
                    _, evicted = self._cache.popitem(last=False)
                    total -= evicted.nbytes
                files = {k: ix.open_files for k, ix in self._cache.items()}
                held = sum(files.values())
                for old in [k for k, n in files.items() if n and k != key]:  # least recently used first
                    if held <= _OPEN_FILES_KEPT:
                        break
                    del self._cache[old]  # its mapped bytes are not counted above, but its open files are
                    held -= files[old]
            job = upkeep(index, self.ann_min_rows, self.snapshot_min_rows) if changed else None
            if job is not None and key not in self._building and not self._closed:
                self._building.add(key)
                self._builder().submit(self._build_graph if job == "graph" else self._save, key, index)
        return index

    def _builder(self) -> ThreadPoolExecutor:
        """The one background thread that builds graphs (under `_lock`)."""
        if self._graph_pool is None:
            self._graph_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memscope-vectors")
        return self._graph_pool

    def _build_graph(self, key: tuple[str, str, int], index: VectorIndex) -> VectorIndex:
        """Build the graph of `index`, save the snapshot, and give the graph to the cached index if that
        still extends the same rows."""
        try:
            try:
                graph = build_graph(index.matrix, len(index.ids), index.version, keep_going=lambda: not self._closed)
            except BuildStopped:
                return index
            built = replace(index, ann=graph)
            saved = self._write_snapshot(key, built)
            with self._lock:
                current = self._cache.get(key)
                if current is not None and current.ids.extends(built.ids):
                    if current.ann is None or current.ann.version < index.version:
                        self._cache[key] = current = replace(current, ann=built.ann)
                    if saved and current.saved < index.version:
                        self._cache[key] = replace(current, saved=index.version)
            return built
        finally:
            with self._lock:
                self._building.discard(key)

    def _save(self, key: tuple[str, str, int], index: VectorIndex) -> None:
        """Save `index` as the user's snapshot and mark the cached index as extending it."""
        try:
            if self._write_snapshot(key, index):
                with self._lock:
                    current = self._cache.get(key)
                    extends = current is not None and current.ids.extends(index.ids)
                    if current is not None and extends and current.saved < index.version:
                        self._cache[key] = replace(current, saved=index.version)
        finally:
            with self._lock:
                self._building.discard(key)

    def _write_snapshot(self, key: tuple[str, str, int], index: VectorIndex) -> bool:
        """Write the snapshot unless the user was reset since `index` (a deleted user's vectors stay deleted)."""
        if self._closed or self._reset_since(key[0], key[1], index.version):
            return False
        try:
            save_snapshot(self._snapshots, key[0], key[1], index, self._store_id)
        except OSError:
            return False
        return True

    def _reset_since(self, kind: str, user_id: str, version: int) -> bool:
        row = (
            self._conn()
            .execute("SELECT reset_at FROM versions WHERE user_id = ? AND kind = ?", (user_id, kind))
            .fetchone()
        )
        return row is not None and row[0] > version

    def build_vector_index(self, user_id: str, kind: str = "memories") -> None:
        """Bring one user's vector index (graph and snapshot on disk) fully up to date now, rather than in
        the background after the next search: for bulk imports and benchmarks."""
        check_user_id(user_id)
        if kind not in VECTOR_COLUMNS:
            raise ValidationError(f"kind must be one of {sorted(VECTOR_COLUMNS)}, got {kind!r}")
        sql = f"SELECT DISTINCT dim FROM {kind} WHERE user_id = ? AND dim IS NOT NULL"
        for (dim,) in self._conn().execute(sql, (user_id,)).fetchall():
            self._build_now(kind, user_id, int(dim))

    def _build_now(self, kind: str, user_id: str, dim: int) -> None:
        key = (kind, user_id, dim)
        self._vector_index(kind, user_id, dim)
        with self._lock:
            pool = self._builder()
        pool.submit(lambda: None).result()  # a build already started finishes first
        index = self._vector_index(kind, user_id, dim)
        graph = len(index.ids) >= self.ann_min_rows and ann_available()
        if len(index.ids) < self.snapshot_min_rows and not graph:
            return
        with self._lock:
            self._building.add(key)
        if graph and (index.ann is None or index.ann.version < index.version):
            self._build_graph(key, index)
        else:
            self._save(key, index)
