"""Job records in Redis (queued, running, succeeded, failed, with error text and timestamps), capped.

Layout under the namespace: `job:<id>` holds one record as JSON (expiring after `ttl_s`),
`jobs:all` and `jobs:user:<hash>` are sorted sets of job ids by queue time, trimmed to `keep` and
`keep_per_user` entries. Read by `MemoryScope.stats()` and `memscope jobs status`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import redis

from memscope.jobs.base import JobRecord, JobState
from memscope.jobs.redis_lock import hashed_key
from memscope.models import utcnow

__all__ = ["JobBook", "record_from_dict"]

_TIMES = ("queued_at", "started_at", "finished_at", "heartbeat_at")


def record_from_dict(data: dict[str, Any]) -> JobRecord:
    """The inverse of `JobRecord.to_dict()`."""
    values = dict(data)
    for key in _TIMES:
        values[key] = datetime.fromisoformat(values[key]) if values.get(key) else None
    values["state"] = JobState(values.get("state", JobState.QUEUED))
    if values["queued_at"] is None:
        values["queued_at"] = utcnow()
    known = set(JobRecord.__dataclass_fields__)
    return JobRecord(**{k: v for k, v in values.items() if k in known})


class JobBook:
    """Job records of one deployment (one namespace) in Redis."""

    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        *,
        keep: int = 1000,
        keep_per_user: int = 100,
        ttl_s: int = 7 * 24 * 3600,
    ) -> None:
        self.client, self.namespace = client, namespace
        self.keep, self.keep_per_user, self.ttl_s = keep, keep_per_user, ttl_s
        self._all = f"{namespace}:jobs:all"

    def _job_key(self, job_id: str) -> str:
        return hashed_key(self.namespace, "job", job_id)

    def _user_key(self, user_id: str) -> str:
        return hashed_key(self.namespace, "jobs:user", user_id)

    def put(self, record: JobRecord) -> None:
        """Write a record (new or changed) and index it; the oldest records beyond the caps are dropped."""
        score = record.queued_at.timestamp()
        user_key = self._user_key(record.user_id)
        pipe = self.client.pipeline()
        pipe.set(self._job_key(record.id), json.dumps(record.to_dict()), ex=self.ttl_s)
        pipe.zadd(self._all, {record.id: score})
        pipe.zadd(user_key, {record.id: score})
        pipe.expire(user_key, self.ttl_s)
        pipe.zcard(self._all)
        pipe.zcard(user_key)
        *_, total, per_user = pipe.execute()
        if total > self.keep:
            self._drop(self._all, int(total) - self.keep)
        if per_user > self.keep_per_user:
            self.client.zremrangebyrank(user_key, 0, int(per_user) - self.keep_per_user - 1)

    def _drop(self, index: str, count: int) -> None:
        popped: list[tuple[bytes | str, float]] = self.client.zpopmin(index, count)  # type: ignore[assignment]
        for raw, _ in popped:
            job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            self.client.delete(self._job_key(job_id))

    def get(self, job_id: str) -> JobRecord | None:
        """One record, or None when unknown (or expired)."""
        raw = self.client.get(self._job_key(job_id))
        return record_from_dict(json.loads(raw)) if raw else None

    def update(self, job_id: str, **changes: Any) -> JobRecord | None:
        """Change fields of a record (only its own task writes it after it was queued)."""
        record = self.get(job_id)
        if record is None:
            return None
        for key, value in changes.items():
            setattr(record, key, value)
        self.put(record)
        return record

    def mark_lost(self, stale_after_s: float) -> list[JobRecord]:
        """Mark running jobs whose heartbeat (else start) is older than `stale_after_s` as lost; returns them."""
        now = utcnow()
        lost = []
        for record in self.recent(limit=self.keep):
            seen = record.heartbeat_at or record.started_at
            if record.state is JobState.RUNNING and seen is not None and (now - seen).total_seconds() > stale_after_s:
                worker = record.summary.get("worker") or "its worker"
                changed = self.update(
                    record.id, state=JobState.LOST, finished_at=now,
                    error=f"no heartbeat since {seen.isoformat()}: {worker} died or stalled; the sweep queues its"
                          " work again (its messages stayed pending)",
                )
                if changed is not None:
                    lost.append(changed)
        return lost

    def recent(self, user_id: str | None = None, limit: int = 100) -> list[JobRecord]:
        """Records newest first, optionally of one user."""
        index = self._all if user_id is None else self._user_key(user_id)
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in self.client.zrevrange(index, 0, limit - 1)]
        if not ids:
            return []
        raws = self.client.mget([self._job_key(i) for i in ids])
        records = [record_from_dict(json.loads(raw)) for raw in raws if raw]
        return [r for r in records if user_id is None or r.user_id == user_id]
