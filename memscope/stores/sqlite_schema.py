"""The SQLite store's schema (tables, indexes, FTS5 tables), its column lists, and the SQL filters.

Rows carry `row_version`, the per-user version (table `versions`) of the write that last touched
them, so the in-memory vector cache can patch in what changed since it was built.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

from memscope.models import LEGACY_REFLECTED_KEY, replied_turn_text
from memscope.stores.base import MemoryFilter, MessageFilter
from memscope.stores.sqlite_fts import fts_normalize, message_body
from memscope.stores.sqlite_leases import LEASES_TABLE
from memscope.stores.sqlite_rows import message_from_stored, span_bounds, to_json, to_us

__all__ = [
    "CONTEXT_WEIGHT", "FTS_TOKENIZER", "MEMORY_COLUMNS", "MESSAGE_COLUMNS", "SCHEMA", "SCHEMA_VERSION",
    "ensure_late_indexes", "memory_where", "message_where", "migrate_schema",
]  # fmt: skip

# 2: the `leases` table and the store id; 3: memories.reflected_at; 4: messages_fts.context (see MIGRATIONS)
SCHEMA_VERSION = 4
# BM25 weight of messages_fts.context (the turn a message replies to) against its body (1.0): a question's
# words find the answer after it, and a turn that says them itself still ranks first
CONTEXT_WEIGHT = 0.3

SCHEMA = """
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
    reflected_at INTEGER,
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
MESSAGES_FTS;
CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5(body, tokenize="FTS_TOKENIZER");
"""
FTS_TOKENIZER = "porter unicode61 remove_diacritics 2"  # the stemmer of sqlite.py must use the same
# body: `message_body` (name: content); context: `replied_turn_text` of the turn before it in its conversation
MESSAGES_FTS = 'CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(body, context, tokenize="FTS_TOKENIZER")'
SCHEMA = SCHEMA.replace("MESSAGES_FTS", MESSAGES_FTS).replace("FTS_TOKENIZER", FTS_TOKENIZER) + ";" + LEASES_TABLE
MESSAGES_FTS = MESSAGES_FTS.replace("FTS_TOKENIZER", FTS_TOKENIZER)
_REFILL_ROWS = 2_000  # messages read per step of the schema-4 rebuild of messages_fts

MEMORY_COLUMNS = (
    "id", "user_id", "agent_id", "memory_type", "content", "key", "embedding", "dim", "status",
    "event_time", "time_start", "time_end", "created_at", "updated_at", "source_message_ids",
    "source_memory_ids", "superseded_by", "importance", "access_count", "last_accessed_at", "metadata",
    "reflected_at", "row_version",
)  # fmt: skip
MESSAGE_COLUMNS = (
    "id", "user_id", "agent_id", "session_id", "role", "content", "name", "created_at", "metadata",
    "consolidated_at",
)  # fmt: skip

# a turn's neighbours in its conversation: a seek, not a walk over the user's earlier turns
CONVERSATION_INDEX = (
    "CREATE INDEX IF NOT EXISTS messages_conversation ON messages (user_id, agent_id, session_id, created_at, id)"
)
# Created after the migrations, so that an upgraded file has the columns they index; ensured at every
# open (IF NOT EXISTS), so an index added later reaches files of the current schema version too.
LATE_INDEXES = (
    "CREATE INDEX IF NOT EXISTS memories_user_unreflected ON memories (user_id, memory_type)"
    " WHERE reflected_at IS NULL",
    CONVERSATION_INDEX,
)


def migrate_v3_reflected_at(conn: sqlite3.Connection) -> None:
    """Schema 3: `reflected_at` becomes a column of memories, moved out of the metadata key that held it."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(memories)")}
    if "reflected_at" not in columns:
        conn.execute("ALTER TABLE memories ADD COLUMN reflected_at INTEGER")
    rows = conn.execute(
        "SELECT pk, metadata FROM memories WHERE reflected_at IS NULL AND json_type(metadata, ?) IS NOT NULL",
        (f"$.{LEGACY_REFLECTED_KEY}",),
    ).fetchall()
    for pk, metadata in rows:
        data = json.loads(metadata)
        stamp = data.pop(LEGACY_REFLECTED_KEY)
        try:
            when = to_us(datetime.fromisoformat(str(stamp)))
        except (TypeError, ValueError):  # not a time this store wrote: keep it in metadata, untouched
            continue
        conn.execute("UPDATE memories SET reflected_at = ?, metadata = ? WHERE pk = ?", (when, to_json(data), pk))


def rank_messages_fts(conn: sqlite3.Connection) -> None:
    """Make messages_fts's `rank` (what `ORDER BY rank` sorts by) bm25 with context weighed CONTEXT_WEIGHT.

    An FTS5 setting kept in the file, so every connection's `ORDER BY rank` keeps FTS5's own sort."""
    conn.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('rank', ?)", (f"bm25(1.0, {CONTEXT_WEIGHT})",))


def migrate_v4_reply_context(conn: sqlite3.Connection) -> None:
    """Schema 4: messages_fts gains `context`, the turn each message replies to; rebuilt from messages.

    Messages are read in conversation order, _REFILL_ROWS at a time, so Python holds one page; the
    rebuild is part of the upgrade's one transaction (SQLite spills it to the file, not to memory).
    """
    conn.execute("DROP TABLE IF EXISTS messages_fts")
    conn.execute(MESSAGES_FTS)
    rank_messages_fts(conn)
    conn.execute(CONVERSATION_INDEX)  # the walk below reads it in order
    columns = ", ".join(MESSAGE_COLUMNS)
    rows = conn.execute(
        f"SELECT pk, {columns} FROM messages ORDER BY user_id, agent_id, session_id, created_at, id"
    )
    previous: sqlite3.Row | None = None
    while page := rows.fetchmany(_REFILL_ROWS):
        values = []
        for row in page:
            same = previous is not None and all(row[c] == previous[c] for c in ("user_id", "agent_id", "session_id"))
            context = replied_turn_text(message_from_stored(previous[1:])) if same and previous is not None else ""
            body = message_body({"name": row["name"], "content": row["content"]})
            values.append((row["pk"], fts_normalize(body), fts_normalize(context)))
            previous = row
        conn.executemany("INSERT INTO messages_fts (rowid, body, context) VALUES (?, ?, ?)", values)


# (version it brings a file to, step): run in order on a file of an older version, in one transaction
MIGRATIONS: tuple[tuple[int, Callable[[sqlite3.Connection], None]], ...] = (
    (3, migrate_v3_reflected_at),
    (4, migrate_v4_reply_context),
)


def migrate_schema(conn: sqlite3.Connection, version: int) -> None:
    """Bring a file at schema `version` (0: new) to SCHEMA_VERSION: tables, then migrations, then late indexes."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    if version == 0:
        rank_messages_fts(conn)
    for target, step in MIGRATIONS:
        if 0 < version < target:
            step(conn)
    ensure_late_indexes(conn)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def ensure_late_indexes(conn: sqlite3.Connection) -> None:
    """Create the LATE_INDEXES a file lacks (a no-op once they exist)."""
    for statement in LATE_INDEXES:
        conn.execute(statement)


def memory_where(user_id: str, f: MemoryFilter) -> tuple[str, list[Any]]:
    """SQL conditions (on alias m) and parameters for one user's memories under a filter."""
    sql: list[str] = ["m.user_id = ?"]
    params: list[Any] = [user_id]
    if f.agent_id is not None:
        sql.append("m.agent_id = ?")
        params.append(f.agent_id)
    if f.memory_types is not None:
        sql.append("m.memory_type IN (SELECT value FROM json_each(?))")
        params.append(to_json([str(t) for t in f.memory_types]))
    sql.append("m.status IN (SELECT value FROM json_each(?))")
    params.append(to_json([str(s) for s in f.statuses]))
    if f.time_range is not None:
        start, end = span_bounds(f.time_range)
        sql.append("m.time_start < ? AND m.time_end > ?")
        params += [end, start]
    if f.key is not None:
        sql.append("m.key = ?")
        params.append(f.key)
    if f.ids is not None:
        sql.append("m.id IN (SELECT value FROM json_each(?))")
        params.append(to_json(list(f.ids)))
    if f.created_after is not None:
        sql.append("m.created_at > ?")
        params.append(to_us(f.created_after))
    if f.created_before is not None:
        sql.append("m.created_at < ?")
        params.append(to_us(f.created_before))
    if f.reflected is not None:
        sql.append("m.reflected_at IS NOT NULL" if f.reflected else "m.reflected_at IS NULL")
    return " AND ".join(sql), params


def message_where(user_id: str, f: MessageFilter) -> tuple[str, list[Any]]:
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
        start, end = span_bounds(f.time_range)
        sql.append("m.created_at >= ? AND m.created_at < ?")
        params += [start, end]
    if f.ids is not None:
        sql.append("m.id IN (SELECT value FROM json_each(?))")
        params.append(to_json(list(f.ids)))
    return " AND ".join(sql), params
