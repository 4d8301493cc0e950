"""The job dispatcher protocol and job records: a job is "run this operation for this user"."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from memscope.models import new_id, utcnow

__all__ = ["CONSOLIDATE", "FINAL_STATES", "REFLECT", "Dispatcher", "JobRecord", "JobState"]

CONSOLIDATE = "consolidate_memory"
REFLECT = "reflect_and_reconsolidate"


class JobState(StrEnum):
    """Where a job is."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LOST = "lost"  # its heartbeat stopped (worker killed or paused); the sweep queued its work again


FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.LOST})


@dataclass
class JobRecord:
    """One job and its outcome; a failure keeps its error, never swallowed."""

    operation: str
    user_id: str
    agent_id: str | None = None
    id: str = field(default_factory=new_id)
    state: JobState = JobState.QUEUED
    queued_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None  # renewed while it runs; a stale one means the job was lost
    attempts: int = 0
    error: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        for key in ("queued_at", "started_at", "finished_at", "heartbeat_at"):
            data[key] = data[key].isoformat() if data[key] else None
        data["state"] = self.state.value
        return data


@runtime_checkable
class Dispatcher(Protocol):
    """Queues operations for users and reports on them."""

    def submit(self, operation: str, user_id: str, agent_id: str | None = None) -> str:
        """Queue `operation` for the user; returns a job id (an already-queued one is reused)."""
        ...

    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        """Block until the job finished (or the timeout passed) and return its record."""
        ...

    def status(self, user_id: str | None = None) -> list[JobRecord]:
        """Recent jobs, newest first, optionally of one user."""
        ...

    def close(self, wait: bool = True) -> None:
        """Stop taking jobs; running ones finish, queued ones stay pending in the store."""
        ...
