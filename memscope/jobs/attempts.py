"""Poison jobs: starts of (operation, user, agent) that never finished are counted in Redis.

A job that always hits the hard time limit or kills its worker never reaches its own error
handling, so Celery delivers it again (or the sweep queues it again) forever. Each start
increments `<ns>:unfinished:<hash>` and every way out of the task's own code clears it; past
`jobs.celery.max_attempts` unfinished starts the job is recorded failed, its work parked under
`<ns>:poisoned:<hash>` (the sweep skips it, its messages stay pending) until `memscope jobs retry`.
"""

from __future__ import annotations

import json

import redis

from memscope.jobs.redis_lock import hashed_key

__all__ = ["AttemptLog"]

KEEP_S = 7 * 24 * 3600


class AttemptLog:
    """Unfinished starts and parked (poisoned) work of one deployment."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client, self.namespace = client, namespace
        self._parked = f"{namespace}:poisoned:all"

    def _key(self, kind: str, operation: str, user_id: str, agent_id: str | None) -> str:
        return hashed_key(self.namespace, kind, operation, user_id, agent_id)

    def unfinished(self, operation: str, user_id: str, agent_id: str | None) -> int:
        """How many starts in a row never finished."""
        return int(self.client.get(self._key("unfinished", operation, user_id, agent_id)) or 0)

    def start(self, operation: str, user_id: str, agent_id: str | None) -> int:
        """Count a start; returns the unfinished starts including this one."""
        key = self._key("unfinished", operation, user_id, agent_id)
        pipe = self.client.pipeline()
        pipe.incr(key)
        pipe.expire(key, KEEP_S)
        count, _ = pipe.execute()
        return int(count)

    def finish(self, operation: str, user_id: str, agent_id: str | None) -> None:
        """The task's own code ran to an end (success, a recorded failure or a retry)."""
        self.client.delete(self._key("unfinished", operation, user_id, agent_id))

    def park(self, job_id: str, operation: str, user_id: str, agent_id: str | None) -> None:
        """Stop the work: the sweep skips it until `release`."""
        self.client.set(self._key("poisoned", operation, user_id, agent_id), job_id, ex=KEEP_S)
        self.client.hset(self._parked, job_id, json.dumps([operation, user_id, agent_id]))

    def parked(self, operation: str, user_id: str, agent_id: str | None) -> bool:
        """Whether this work is parked as poison (the sweep must not queue it)."""
        return bool(self.client.exists(self._key("poisoned", operation, user_id, agent_id)))

    def parked_jobs(self) -> dict[str, tuple[str, str, str | None]]:
        """Every parked job id with its (operation, user, agent)."""
        raw = self.client.hgetall(self._parked)
        out: dict[str, tuple[str, str, str | None]] = {}
        for job_id, value in raw.items():  # type: ignore[union-attr]
            operation, user_id, agent_id = json.loads(value)
            out[job_id.decode() if isinstance(job_id, bytes) else str(job_id)] = (operation, user_id, agent_id)
        return out

    def release(self, job_id: str, operation: str, user_id: str, agent_id: str | None) -> None:
        """Unpark the work and forget its unfinished starts (before it is queued again)."""
        pipe = self.client.pipeline()
        pipe.delete(self._key("poisoned", operation, user_id, agent_id))
        pipe.delete(self._key("unfinished", operation, user_id, agent_id))
        pipe.hdel(self._parked, job_id)
        pipe.execute()
