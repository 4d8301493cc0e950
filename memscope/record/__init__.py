"""The conversation record: a chatbot's conversations in the application's SQL database (SQLAlchemy 2 + Alembic).

PostgreSQL, MariaDB/MySQL and SQLite, sync or async sessions; `pip install 'memscope-ai[record]'`.
"""

from __future__ import annotations

from memscope.extras import install_hint

try:
    import alembic  # noqa: F401
    import sqlalchemy  # noqa: F401
except ImportError as _missing:
    raise ImportError(f"memscope.record needs SQLAlchemy and Alembic: {install_hint('record')}") from _missing

from memscope.record.errors import (
    ConversationConflict,
    ConversationNotFound,
    RecordError,
    RecordUnavailable,
)
from memscope.record.migrate import amigrate, current_revision, migrate
from memscope.record.recorder import MemoryLike, Recorder
from memscope.record.tables import Base, ConversationRow, MessageRow

__all__ = [
    "Base",
    "ConversationConflict",
    "ConversationNotFound",
    "ConversationRow",
    "MemoryLike",
    "MessageRow",
    "RecordError",
    "RecordUnavailable",
    "Recorder",
    "amigrate",
    "current_revision",
    "migrate",
]
