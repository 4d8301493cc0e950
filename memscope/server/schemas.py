"""The REST API's request and response bodies: what /openapi.json publishes and what the server checks."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AddMemoryIn",
    "AddMessagesIn",
    "ContextOut",
    "DeletedOut",
    "ErrorOut",
    "EventOut",
    "HealthOut",
    "JobIn",
    "JobOut",
    "JobRef",
    "MemoriesOut",
    "MemoryOut",
    "MessageIn",
    "MessagesOut",
    "RetrieveIn",
    "RetrieveOut",
    "RetrievedItemOut",
    "StatsOut",
    "UpdateMemoryIn",
]

MAX_BATCH = 1000  # messages in one add request
Role = Literal["user", "assistant", "system", "tool"]
UserId = Field(min_length=1, max_length=256, description="Your id of the user (scoped to your key's tenant).")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    """Every error: a stable code, what went wrong, and what to do about it."""

    code: str
    message: str
    fix: str


class MessageIn(_In):
    """One turn, OpenAI-style; `created_at` (timezone-aware) for imported history."""

    role: Role = "user"
    content: str = ""
    name: str | None = None
    id: str | None = Field(default=None, description="Your id; re-sending it with the same content is a no-op.")
    created_at: datetime | None = None
    metadata: dict[str, Any] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class AddMessagesIn(_In):
    """Messages to store at once; consolidation is queued in the background."""

    user_id: str = UserId
    messages: list[MessageIn | str] = Field(min_length=1, max_length=MAX_BATCH)
    session_id: str | None = Field(default=None, max_length=256)
    agent_id: str | None = Field(default=None, max_length=256)


class MessageOut(BaseModel):
    """A stored message; `pending` until consolidation turned it into memories."""

    id: str
    user_id: str
    agent_id: str
    session_id: str | None
    role: str
    content: str
    name: str | None
    created_at: datetime
    metadata: dict[str, Any]
    consolidated_at: datetime | None
    pending: bool


class MessagesOut(BaseModel):
    """A list of messages, oldest first."""

    messages: list[MessageOut]


class EventTimeOut(BaseModel):
    """When the remembered thing happens."""

    start: datetime
    end: datetime
    granularity: str


class MemoryOut(BaseModel):
    """One memory with its provenance (source messages and memories)."""

    id: str
    user_id: str
    agent_id: str
    memory_type: str
    content: str
    key: str | None
    status: str
    event_time: EventTimeOut | None
    created_at: datetime
    updated_at: datetime
    source_message_ids: list[str]
    source_memory_ids: list[str]
    superseded_by: str | None
    importance: float
    access_count: int
    last_accessed_at: datetime | None
    metadata: dict[str, Any]


class MemoriesOut(BaseModel):
    """Memories, newest first."""

    memories: list[MemoryOut]


class AddMemoryIn(_In):
    """A memory an app adds directly."""

    user_id: str = UserId
    content: str = Field(min_length=1)
    memory_type: Literal["customized", "observation", "insight", "profile"] = "customized"  # profile: key "facts: job"
    key: str | None = Field(default=None, max_length=256)
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    metadata: dict[str, Any] | None = None
    time: str | None = Field(default=None, max_length=256, description='When it happens, e.g. "2026-05-01".')
    agent_id: str | None = Field(default=None, max_length=256)
    timezone: str | None = Field(default=None, max_length=64)


class UpdateMemoryIn(_In):
    """Fields to change; the event log keeps what was."""

    user_id: str = UserId
    content: str | None = Field(default=None, min_length=1)
    importance: float | None = Field(default=None, ge=0.0, le=1.0)
    metadata: dict[str, Any] | None = None
    key: str | None = Field(default=None, max_length=256)


class EventOut(BaseModel):
    """One change of a memory: add, update, expire or delete, with before and after."""

    id: str
    user_id: str
    memory_id: str
    kind: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    operation: str | None
    run_id: str | None
    created_at: datetime


class DeletedOut(BaseModel):
    """What a delete removed."""

    deleted: list[str] = Field(default_factory=list)
    records: int = 0


class RetrieveIn(_In):
    """A retrieval (inline, no model call)."""

    user_id: str = UserId
    query: str
    top_k: int | None = Field(default=None, ge=1, le=1000)
    agent_id: str | None = Field(default=None, max_length=256)
    memory_types: list[Literal["observation", "insight", "customized", "message"]] | None = None
    timezone: str | None = Field(default=None, max_length=64)
    now: datetime | None = Field(default=None, description="Resolve relative times against this instant.")


class RetrievedItemOut(BaseModel):
    """A ranked memory or raw turn."""

    kind: str
    id: str
    content: str
    score: float
    memory_type: str
    time: datetime
    event_time: EventTimeOut | None
    source_message_ids: list[str]
    session_id: str | None
    role: str | None
    name: str | None
    importance: float | None
    metadata: dict[str, Any]
    explain: dict[str, float]


class RetrieveOut(BaseModel):
    """Ranked items, the user's recent pending messages, a context block and the run's report."""

    items: list[RetrievedItemOut]
    pending_messages: list[MessageOut]
    context: str
    report: dict[str, Any]


class ContextOut(BaseModel):
    """A block ready for a system prompt."""

    context: str


class JobIn(_In):
    """Queue consolidation or reflection; `wait` blocks up to `timeout_s` and returns the finished record."""

    user_id: str = UserId
    agent_id: str | None = Field(default=None, max_length=256)
    wait: bool = False
    timeout_s: float = Field(default=60.0, gt=0, le=600)


class JobRef(BaseModel):
    """A queued job."""

    job_id: str


class JobOut(BaseModel):
    """A job and its outcome: state, error, and its run summary (model calls, tokens)."""

    id: str
    operation: str
    user_id: str
    agent_id: str | None
    state: str
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    attempts: int
    error: str | None
    summary: dict[str, Any]


class JobsOut(BaseModel):
    """Jobs, newest first."""

    jobs: list[JobOut]


class StatsOut(BaseModel):
    """Message counts, memories by status and type, failed jobs."""

    pending_messages: int
    total_messages: int
    memories: dict[str, dict[str, int]]
    failed_jobs: list[JobOut]


class HealthOut(BaseModel):
    """Liveness or readiness, with one entry per checked dependency."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)


class ProfileEntryOut(BaseModel):
    """One profile entry: its section and slot, the text, and the memories it cites."""

    id: str
    section: str
    slot: str
    text: str
    source_memory_ids: list[str]
    updated_at: datetime


class ProfileOut(BaseModel):
    """A user's profile for one agent (built by reflection), entries grouped by section."""

    user_id: str
    agent_id: str
    preferences: list[ProfileEntryOut]
    facts: list[ProfileEntryOut]
    traits: list[ProfileEntryOut]
    goals: list[ProfileEntryOut]
