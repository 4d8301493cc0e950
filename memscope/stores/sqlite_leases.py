"""Per-user leases and the store's identity in SQLite: rows of `leases` and `meta`, used inside the
store's own transactions so that a fenced write and its token check commit together."""

from __future__ import annotations

import sqlite3
import time
import uuid

from memscope.errors import LeaseLost
from memscope.stores.base import Fence

__all__ = ["LEASES_TABLE", "acquire", "check_fence", "ensure_store_id", "release", "renew"]

LEASES_TABLE = """
CREATE TABLE IF NOT EXISTS leases (
    user_id TEXT PRIMARY KEY, holder TEXT NOT NULL, token INTEGER NOT NULL, expires_us INTEGER NOT NULL
)"""


def _now_us() -> int:
    return int(time.time() * 1_000_000)


def ensure_store_id(conn: sqlite3.Connection) -> str:
    """The id in `meta`, written once when the store is created (inside the caller's write transaction)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
    if row is not None:
        return str(row[0])
    store_id = uuid.uuid4().hex
    conn.execute("INSERT INTO meta (key, value) VALUES ('store_id', ?)", (store_id,))
    return store_id


def acquire(conn: sqlite3.Connection, user_id: str, holder: str, ttl_s: float) -> int | None:
    """Take the lease (free, expired or ours): a new token for a new holder; None while another holds it."""
    now = _now_us()
    row = conn.execute("SELECT holder, token, expires_us FROM leases WHERE user_id = ?", (user_id,)).fetchone()
    expires = now + int(ttl_s * 1_000_000)
    if row is None:
        conn.execute("INSERT INTO leases (user_id, holder, token, expires_us) VALUES (?, ?, 1, ?)",
                     (user_id, holder, expires))
        return 1
    if row[0] == holder and row[2] > now:
        conn.execute("UPDATE leases SET expires_us = ? WHERE user_id = ?", (expires, user_id))
        return int(row[1])
    if row[2] > now:
        return None
    token = int(row[1]) + 1
    conn.execute("UPDATE leases SET holder = ?, token = ?, expires_us = ? WHERE user_id = ?",
                 (holder, token, expires, user_id))
    return token


def renew(conn: sqlite3.Connection, user_id: str, token: int, ttl_s: float) -> bool:
    """Extend the lease while it has `token` (even if it expired meanwhile: nobody took it)."""
    expires = _now_us() + int(ttl_s * 1_000_000)
    cur = conn.execute("UPDATE leases SET expires_us = ? WHERE user_id = ? AND token = ?",
                       (expires, user_id, token))
    return cur.rowcount == 1


def release(conn: sqlite3.Connection, user_id: str, token: int) -> None:
    """Expire the lease now if it still has `token`."""
    conn.execute("UPDATE leases SET expires_us = 0 WHERE user_id = ? AND token = ?", (user_id, token))


def check_fence(conn: sqlite3.Connection, fence: Fence | None) -> None:
    """Raise LeaseLost unless the user's lease still has the fence's token (in the write's transaction)."""
    if fence is None:
        return
    row = conn.execute("SELECT token, holder FROM leases WHERE user_id = ?", (fence.user_id,)).fetchone()
    if row is None or int(row[0]) != fence.token:
        current = "none" if row is None else f"token {row[0]} of {row[1]}"
        raise LeaseLost(
            f"the lease of user {fence.user_id!r} was taken over (this job has token {fence.token}, the store has"
            f" {current}); its write was refused, and the new holder consolidates the user"
        )
