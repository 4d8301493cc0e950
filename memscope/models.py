"""The data model: messages, memory nodes, memory events, and the small types around them."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from memscope.limits import normalize_id

__all__ = [
    "DEFAULT_AGENT",
    "EventKind",
    "EventTime",
    "Granularity",
    "MemoryEvent",
    "MemoryNode",
    "MemoryStatus",
    "MemoryType",
    "Message",
    "Role",
    "TimeRange",
    "check_user_id",
    "new_id",
    "replied_turn_text",
    "utcnow",
]

DEFAULT_AGENT = "default"
MAX_CONTENT_CHARS = 100_000
MAX_REPLIED_CHARS = 1000  # of the replied-to turn, in a message's vector text and full-text context


def utcnow() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


def new_id() -> str:
    """A time-ordered UUIDv7 string: ids sort by creation time."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def check_user_id(value: str, what: str = "user_id") -> str:
    """Validate a user or agent id and return its normal form (NFKC, stripped; see memscope.limits)."""
    return normalize_id(value, what)


LEGACY_REFLECTED_KEY = "reflected_at"  # the metadata key that held MemoryNode.reflected_at before it was a field


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("datetime must be timezone-aware (give a tzinfo, e.g. datetime.now(UTC))")
    return value


class Role(StrEnum):
    """Who said a message."""

    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


class MemoryType(StrEnum):
    """What kind of memory a node is."""

    OBSERVATION = "observation"
    INSIGHT = "insight"
    CUSTOMIZED = "customized"
    PROFILE = "profile"  # one entry of the user's profile (preference, fact, trait, goal)
    BELIEF = "belief"  # an actionable belief for the business (see business_description)
    SEGMENT = "segment"  # a mid-term segment: one session (or day) of conversation, summarised, with heat
    ASSISTANT = "assistant"  # what the assistant said about itself, promised, or taught: kept off the profile


class MemoryStatus(StrEnum):
    """Lifecycle of a memory: expired memories were superseded, deleted ones removed by request."""

    ACTIVE = "active"
    EXPIRED = "expired"
    DELETED = "deleted"


class Granularity(StrEnum):
    """How precisely an event time is known."""

    INSTANT = "instant"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


class EventKind(StrEnum):
    """The change a memory event records."""

    ADD = "add"
    UPDATE = "update"
    EXPIRE = "expire"
    DELETE = "delete"


class TimeRange(BaseModel):
    """A half-open interval [start, end) of aware datetimes."""

    model_config = ConfigDict(frozen=True)

    start: datetime
    end: datetime

    _check_start = field_validator("start", "end")(_aware)

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.end < self.start:
            raise ValueError(f"time range ends ({self.end}) before it starts ({self.start})")
        return self

    def effective_end(self) -> datetime:
        """The end, widened by one microsecond for an instant so it is a non-empty interval."""
        return max(self.end, self.start + timedelta(microseconds=1))

    def overlaps(self, other: TimeRange) -> bool:
        """True when the two intervals share any instant (an instant counts as one microsecond)."""
        return self.start < other.effective_end() and other.start < self.effective_end()


class EventTime(TimeRange):
    """When a remembered thing happens: an interval plus how precisely it is known."""

    granularity: Granularity = Granularity.DAY


class Message(BaseModel):
    """One conversation turn, kept durably; pending until consolidated."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=new_id)
    user_id: str
    agent_id: str = DEFAULT_AGENT
    session_id: str | None = None
    role: Role = Role.USER
    content: str
    name: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    metadata: dict[str, Any] = Field(default_factory=dict)
    consolidated_at: datetime | None = None

    _check_times = field_validator("created_at", "consolidated_at")(_aware)

    @field_validator("user_id", "agent_id")
    @classmethod
    def _ids(cls, value: str) -> str:
        check_user_id(value)  # validated; normalising is the API's job (stored ids are matched as given)
        return value

    @field_validator("content")
    @classmethod
    def _content(cls, value: str) -> str:
        if len(value) > MAX_CONTENT_CHARS:
            raise ValueError(
                f"message content is {len(value)} characters; the limit is {MAX_CONTENT_CHARS}."
                " Split it into several messages."
            )
        return value

    @property
    def pending(self) -> bool:
        """True until consolidation has turned this message into memories."""
        return self.consolidated_at is None


def replied_turn_text(previous: Message | None) -> str:
    """The turn a message replies to, as both its vector text and its full-text `context` hold it:
    "Melanie: What do you do for fun?" (its first MAX_REPLIED_CHARS characters); "" for none or a blank turn."""
    if previous is None or not previous.content.strip():
        return ""
    return f"{previous.name or previous.role.value}: {previous.content[:MAX_REPLIED_CHARS]}"


class MemoryNode(BaseModel):
    """One durable memory of a user: an observation, insight, or one added directly."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=new_id)
    user_id: str
    agent_id: str = DEFAULT_AGENT
    memory_type: MemoryType = MemoryType.OBSERVATION
    content: str
    key: str | None = None
    embedding: list[float] | None = None
    status: MemoryStatus = MemoryStatus.ACTIVE
    event_time: EventTime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    source_message_ids: list[str] = Field(default_factory=list)
    source_memory_ids: list[str] = Field(default_factory=list)
    superseded_by: str | None = None
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    access_count: int = Field(default=0, ge=0)
    last_accessed_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    reflected_at: datetime | None = None  # when a reflection processed this observation (null: not yet)

    _check_times = field_validator("created_at", "updated_at", "last_accessed_at", "reflected_at")(_aware)

    @model_validator(mode="before")
    @classmethod
    def _legacy_reflected_at(cls, data: Any) -> Any:
        """Nodes written before `reflected_at` was a field kept it as a metadata key: move it over."""
        if isinstance(data, dict) and data.get("reflected_at") is None:
            metadata = data.get("metadata")
            if isinstance(metadata, dict) and LEGACY_REFLECTED_KEY in metadata:
                rest = {k: v for k, v in metadata.items() if k != LEGACY_REFLECTED_KEY}
                data = {**data, "metadata": rest, "reflected_at": metadata[LEGACY_REFLECTED_KEY]}
        return data

    @field_validator("user_id", "agent_id")
    @classmethod
    def _ids(cls, value: str) -> str:
        check_user_id(value)
        return value

    @field_validator("content")
    @classmethod
    def _content(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("memory content must not be empty")
        if len(value) > MAX_CONTENT_CHARS:
            raise ValueError(f"memory content is {len(value)} characters; the limit is {MAX_CONTENT_CHARS}")
        return value

    def time_span(self) -> TimeRange:
        """The interval this memory is about: its event time, else the instant it was created."""
        start, end = self.time_bounds()
        return TimeRange(start=start, end=end)

    def time_bounds(self) -> tuple[datetime, datetime]:
        """`time_span()`'s start and end, without building a validated TimeRange (the retrieval's hot path)."""
        if self.event_time is not None:
            return self.event_time.start, self.event_time.end
        return self.created_at, self.created_at

    def public_dict(self) -> dict[str, Any]:
        """The node as JSON-ready data, without the embedding."""
        return self.model_dump(mode="json", exclude={"embedding"})


class MemoryEvent(BaseModel):
    """One entry of the append-only log of memory changes."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=new_id)
    user_id: str
    agent_id: str = DEFAULT_AGENT
    memory_id: str
    kind: EventKind
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    operation: str | None = None
    run_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
