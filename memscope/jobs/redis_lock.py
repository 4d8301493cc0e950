"""A per-user Redis lock: `SET key token NX PX ttl`, released and extended only by its holder (Lua).

Keys are `<namespace>:lock:<sha256 of the name>`, so no user id, however hostile (`*`, `:`, newlines,
another key's name), can reach or collide with any other key. A lock whose holder died expires
after its TTL; a holder that runs long keeps it alive with `keep_alive()`.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from memscope.jobs.lease import kept_alive

__all__ = ["COMPARE_AND_DELETE", "RedisLock", "compare_and_delete", "hashed_key"]


COMPARE_AND_DELETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
COMPARE_AND_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


def hashed_key(namespace: str, kind: str, *parts: str | None) -> str:
    """`<namespace>:<kind>:<hex digest>`: the parts are hashed, so any text is a safe key component."""
    encoded = "".join("-" if p is None else f"{len(p)}:{p}" for p in parts)  # unambiguous: length-prefixed
    digest = hashlib.sha256(encoded.encode("utf-8", "surrogatepass"))
    return f"{namespace}:{kind}:{digest.hexdigest()}"


def compare_and_delete(client: redis.Redis, key: str, token: str) -> bool:
    """Delete `key` only while it still holds `token`; True when it did."""
    return bool(client.eval(COMPARE_AND_DELETE, 1, key, token))


class RedisLock:
    """An exclusive lock on one name (a user id) with a TTL; only the token holder can release or extend it."""

    def __init__(self, client: redis.Redis, namespace: str, name: str, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise ValueError(f"lock ttl must be positive, got {ttl_s}")
        self.client = client
        self.key = hashed_key(namespace, "lock", name)
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.token = secrets.token_hex(16)
        self.held = False

    def acquire(self) -> bool:
        """Take the lock if it is free; returns whether this holder has it now."""
        self.held = bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))
        return self.held

    def extend(self) -> bool:
        """Reset the TTL if this holder still has the lock; False when it was lost (expired, taken)."""
        ok = bool(self.client.eval(COMPARE_AND_EXTEND, 1, self.key, self.token, self.ttl_ms))
        self.held = self.held and ok
        return ok

    def release(self) -> bool:
        """Free the lock if this holder still has it; never frees a lock someone else took since."""
        self.held = False
        return compare_and_delete(self.client, self.key, self.token)

    def owner(self) -> str | None:
        """The token of whoever holds the lock now, or None when it is free."""
        value = self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else value  # type: ignore[return-value]

    @contextmanager
    def keep_alive(self, interval_s: float | None = None) -> Iterator[threading.Event]:
        """Extend the lock every `interval_s` (default: a third of the TTL) while the block runs.

        Yields an event that is set if the lock was lost meanwhile (the job may then overlap another).
        """
        with kept_alive(interval_s if interval_s is not None else self.ttl_ms / 3000, self.extend) as lost:
            yield lost
