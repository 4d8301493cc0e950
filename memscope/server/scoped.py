"""ScopedMemory: the public API seen through one API key. Tenant keys get their user ids namespaced
(`tenant:user` inside the store) and never see the prefix back; admin keys use ids as stored.

Every route, MCP tool and browser page goes through this class, so the tenant boundary is drawn
in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from memscope.api import MemoryScope
from memscope.errors import JobError, ValidationError
from memscope.jobs.base import CONSOLIDATE, REFLECT, JobRecord, JobState
from memscope.limits import MAX_ID_LENGTH, normalize_id
from memscope.models import MemoryEvent, MemoryNode, Message
from memscope.server.keys import Principal
from memscope.server.schemas import (
    EventOut,
    JobOut,
    MemoryOut,
    MessageOut,
    ProfileOut,
    RetrievedItemOut,
    RetrieveOut,
    StatsOut,
)

__all__ = ["NotFound", "ScopedMemory"]

SEP = ":"


class NotFound(LookupError):
    """The thing asked for does not exist for this key (or belongs to another tenant: same answer)."""


class ScopedMemory:
    """One principal's view of a MemoryScope."""

    def __init__(self, memory: MemoryScope, principal: Principal) -> None:
        self.memory = memory
        self.principal = principal
        self.prefix = "" if principal.admin else principal.tenant + SEP  # type: ignore[operator]

    # -- ids -------------------------------------------------------------------------------------
    def inside(self, user_id: str) -> str:
        """The store's id of the caller's user (validated; the tenant prefix added)."""
        user = normalize_id(user_id, "user_id", limit=MAX_ID_LENGTH - len(self.prefix))
        return self.prefix + user

    def outside(self, stored: str) -> str:
        """The caller's id of a stored user id."""
        return stored[len(self.prefix):] if self.prefix and stored.startswith(self.prefix) else stored

    def owns(self, stored: str) -> bool:
        """True when the stored user id is within this key's namespace."""
        return not self.prefix or stored.startswith(self.prefix)

    def clean(self, text: str) -> str:
        """Text (an error message) with the tenant prefix taken out."""
        return text.replace(self.prefix, "") if self.prefix else text

    # -- messages --------------------------------------------------------------------------------
    def add_messages(
        self, user_id: str, messages: list[Any], session_id: str | None, agent_id: str | None
    ) -> list[MessageOut]:
        """Store messages; consolidation is queued."""
        stored = self.memory.add_messages(self.inside(user_id), messages, session_id=session_id, agent_id=agent_id)
        return [self._message(m) for m in stored]

    def list_messages(
        self,
        user_id: str,
        pending: bool | None = None,
        session_id: str | None = None,
        agent_id: str | None = None,
        limit: int | None = None,
    ) -> list[MessageOut]:
        """The user's messages, oldest first."""
        found = self.memory.list_messages(
            self.inside(user_id), pending=pending, session_id=session_id, agent_id=agent_id, limit=limit
        )
        return [self._message(m) for m in found]

    def get_messages(self, user_id: str, ids: Sequence[str]) -> list[MessageOut]:
        """Some of the user's messages by id (provenance); unknown ids are left out."""
        from memscope.stores.base import MessageFilter

        if not ids:
            return []
        found = self.memory.runtime.store.list_messages(
            self.inside(user_id), MessageFilter(ids=list(ids)), limit=len(ids)
        )
        return [self._message(m) for m in found]

    # -- retrieval -------------------------------------------------------------------------------
    def retrieve(
        self,
        user_id: str,
        query: str,
        top_k: int | None = None,
        agent_id: str | None = None,
        memory_types: Sequence[str] | None = None,
        timezone: str | None = None,
        now: datetime | None = None,
    ) -> RetrieveOut:
        """Ranked memories and turns for `query`."""
        result = self.memory.retrieve(
            self.inside(user_id), query, top_k, agent_id=agent_id, memory_types=memory_types,
            timezone=timezone, now=now,
        )  # fmt: skip
        return RetrieveOut(
            items=[RetrievedItemOut.model_validate(item.to_dict()) for item in result.items],
            pending_messages=[self._message(m) for m in result.pending_messages],
            context=self.clean(result.context),
            report=result.report.to_dict(),
        )

    # -- memories --------------------------------------------------------------------------------
    def list_memories(
        self,
        user_id: str,
        memory_types: Sequence[str] | None = None,
        statuses: Sequence[str] = ("active",),
        limit: int = 100,
        offset: int = 0,
        agent_id: str | None = None,
    ) -> list[MemoryOut]:
        """The user's memories, newest first."""
        found = self.memory.list_memories(
            self.inside(user_id), memory_types=memory_types, statuses=statuses, limit=limit, offset=offset,
            agent_id=agent_id,
        )  # fmt: skip
        return [self._memory(n) for n in found]

    def get_memory(self, user_id: str, memory_id: str) -> MemoryOut:
        """One memory; NotFound when the user has none with that id."""
        found = self.memory.get_memory(self.inside(user_id), memory_id)
        if found is None:
            raise NotFound(f"no memory {memory_id!r} for user {user_id!r}")
        return self._memory(found)

    def add_memory(self, user_id: str, content: str, **fields: Any) -> MemoryOut:
        """Add a memory directly."""
        return self._memory(self.memory.add_memory(self.inside(user_id), content, **fields))

    def update_memory(self, user_id: str, memory_id: str, **fields: Any) -> MemoryOut:
        """Change a memory; NotFound when the user has none with that id."""
        self.get_memory(user_id, memory_id)
        return self._memory(self.memory.update_memory(self.inside(user_id), memory_id, **fields))

    def delete_memory(self, user_id: str, memory_id: str) -> list[str]:
        """Soft-delete one memory; NotFound when the user has none with that id."""
        self.get_memory(user_id, memory_id)
        return self.memory.delete_memory(self.inside(user_id), memory_id)

    def history(self, user_id: str, memory_id: str) -> list[EventOut]:
        """Every change of one memory, oldest first."""
        return [self._event(e) for e in self.memory.history(self.inside(user_id), memory_id)]

    # -- users -----------------------------------------------------------------------------------
    def stats(self, user_id: str) -> StatsOut:
        """Counts and failed jobs."""
        data = self.memory.stats(self.inside(user_id))
        failed = [self._job_dict(r) for r in data.pop("failed_jobs")]
        return StatsOut(**data, failed_jobs=failed)

    def delete_user(self, user_id: str) -> int:
        """Erase the user; returns how many records went."""
        return self.memory.delete_user(self.inside(user_id))

    def profile(self, user_id: str, agent_id: str | None = None) -> ProfileOut:
        """The user's profile (one agent's; the default agent when None)."""
        data = self.memory.profile(self.inside(user_id), agent_id).to_dict()
        data["user_id"] = self.outside(data["user_id"])
        return ProfileOut.model_validate(data)

    def beliefs(self, user_id: str, agent_id: str | None = None) -> list[MemoryOut]:
        """The user's active beliefs for the configured business_description."""
        return [self._memory(n) for n in self.memory.beliefs(self.inside(user_id), agent_id)]

    # -- jobs ------------------------------------------------------------------------------------
    def queue(self, operation: str, user_id: str, agent_id: str | None, wait: bool, timeout_s: float) -> JobOut | str:
        """Queue consolidation or reflection; with `wait`, the finished record (JobError if it failed)."""
        if operation not in (CONSOLIDATE, REFLECT):
            raise ValidationError(f"unknown job operation {operation!r}")
        run = self.memory.consolidate if operation == CONSOLIDATE else self.memory.reflect
        result = run(self.inside(user_id), wait=wait, agent_id=agent_id, timeout=timeout_s)
        return self._job(result) if isinstance(result, JobRecord) else result

    def jobs(self, user_id: str | None = None, state: str | None = None) -> list[JobOut]:
        """Recent jobs of one user, or of every user this key may see; optionally only one state."""
        records = self.memory.jobs.status(self.inside(user_id) if user_id is not None else None)
        return [self._job(r) for r in records if self.owns(r.user_id) and (state is None or r.state.value == state)]

    def job(self, job_id: str) -> JobOut:
        """One job of this key's users; NotFound otherwise."""
        return self._job(self._record(job_id))

    def retry(self, job_id: str) -> str:
        """Queue a failed job's work again; returns the new job's id."""
        record = self._record(job_id)
        retry = getattr(self.memory.jobs, "retry", None)
        if retry is not None:  # Celery: unparks poison jobs too
            return str(retry(job_id))
        if record.state is not JobState.FAILED:
            raise JobError(f"job {job_id} is {record.state.value}, not failed; only failed jobs are retried")
        return self.memory.jobs.submit(record.operation, record.user_id, record.agent_id)

    def _record(self, job_id: str) -> JobRecord:
        try:
            record = self.memory.jobs.wait(job_id, timeout=0)
        except JobError:
            record = None
        if record is None or not self.owns(record.user_id):
            raise NotFound(f"no job {job_id!r}")
        return record

    # -- conversions (the prefix never leaves) ---------------------------------------------------
    def _message(self, m: Message) -> MessageOut:
        data = m.model_dump(mode="json")
        data["user_id"], data["pending"] = self.outside(m.user_id), m.pending
        return MessageOut.model_validate(data)

    def _memory(self, n: MemoryNode) -> MemoryOut:
        data = n.public_dict()
        data["user_id"] = self.outside(n.user_id)
        return MemoryOut.model_validate(data)

    def _event(self, e: MemoryEvent) -> EventOut:
        data = e.model_dump(mode="json")
        data["user_id"] = self.outside(e.user_id)
        for side in ("before", "after"):
            if isinstance(data[side], dict):
                data[side].pop("embedding", None)
                if isinstance(data[side].get("user_id"), str):
                    data[side]["user_id"] = self.outside(data[side]["user_id"])
        return EventOut.model_validate(data)

    def _job_dict(self, data: dict[str, Any]) -> JobOut:
        data = dict(data)
        data["user_id"] = self.outside(str(data["user_id"]))
        if data.get("error"):
            data["error"] = self.clean(str(data["error"]))
        return JobOut.model_validate(data)

    def _job(self, record: JobRecord) -> JobOut:
        return self._job_dict(record.to_dict())
