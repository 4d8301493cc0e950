"""The record's errors: one base, each saying what happened to the caller's data and what to do."""

from __future__ import annotations

from memscope.errors import MemscopeError

__all__ = ["ConversationConflict", "ConversationNotFound", "RecordError", "RecordUnavailable"]


class RecordError(MemscopeError):
    """The conversation record could not do what was asked; nothing was half-written."""


class ConversationNotFound(RecordError, LookupError):
    """No conversation has the id given."""


class RecordUnavailable(RecordError):
    """The database failed or went away during a call; the transaction was rolled back."""


class ConversationConflict(RecordError):
    """Another writer changed the same conversation in a way this one cannot merge (e.g. created the same id)."""
