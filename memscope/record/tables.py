"""The record's two tables as SQLAlchemy 2 declarative models, portable to PostgreSQL, MariaDB/MySQL and SQLite.

Tables are prefixed `memscope_` so they sit beside the application's own; times are stored as UTC
with microseconds (MySQL's DATETIME(6)) and always read back timezone-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["VERSION_TABLE", "Base", "ConversationRow", "LongText", "MessageRow", "UTCDateTime"]

VERSION_TABLE = "memscope_record_version"  # the record's Alembic version table, beside the application's own

LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")  # TEXT is 64 KB on MySQL


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An aware datetime stored as naive UTC (microseconds kept everywhere) and read back aware."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("times in the record must be timezone-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """The record's own metadata (kept apart from the application's)."""


class ConversationRow(Base):
    """One conversation: who talks to which assistant, its title and times."""

    __tablename__ = "memscope_conversations"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.String(256), index=True)
    assistant: Mapped[str] = mapped_column(sa.String(256))
    title: Mapped[str | None] = mapped_column(sa.String(1024))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", sa.JSON, default=dict)


class MessageRow(Base):
    """One turn of a conversation, with how it was generated; `position` orders the turns."""

    __tablename__ = "memscope_messages"
    __table_args__ = (sa.UniqueConstraint("conversation_id", "position", name="uq_memscope_messages_position"),)

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        sa.String(64), sa.ForeignKey("memscope_conversations.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(sa.Integer)
    role: Mapped[str] = mapped_column(sa.String(16))
    content: Mapped[str] = mapped_column(LongText)
    name: Mapped[str | None] = mapped_column(sa.String(256))
    tool_calls: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    tool_call_id: Mapped[str | None] = mapped_column(sa.String(256))
    model: Mapped[str | None] = mapped_column(sa.String(256))
    temperature: Mapped[float | None] = mapped_column(sa.Double)
    prompt_tokens: Mapped[int | None] = mapped_column(sa.Integer)
    completion_tokens: Mapped[int | None] = mapped_column(sa.Integer)
    latency_ms: Mapped[float | None] = mapped_column(sa.Double)
    score: Mapped[float | None] = mapped_column(sa.Double)
    reply_to: Mapped[str | None] = mapped_column(sa.String(64))
    selected: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    masked: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
