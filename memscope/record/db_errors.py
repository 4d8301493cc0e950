"""SQLAlchemy's errors as the record's, at one boundary: what was being done, and that nothing was half-written."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import exc, orm
from sqlalchemy.ext.asyncio import AsyncSession

from memscope.record.errors import ConversationConflict, RecordError, RecordUnavailable
from memscope.redact import scrub

__all__ = ["check_async", "check_session", "flush", "mapped", "reason", "rollback_quietly"]

log = logging.getLogger("memscope.record")


def check_session(db: Any, name: str, other: str) -> None:
    if isinstance(db, AsyncSession):
        raise RecordError(f"{name} takes a sqlalchemy.orm.Session; for an AsyncSession, `await recorder.{other}(db)`")
    if not isinstance(db, orm.Session):
        raise RecordError(f"{name} takes a sqlalchemy.orm.Session (e.g. Session(engine)), got {type(db).__name__}")


def check_async(db: Any, name: str, other: str) -> None:
    if not isinstance(db, AsyncSession):
        raise RecordError(
            f"{name} takes a sqlalchemy.ext.asyncio.AsyncSession, got {type(db).__name__}; for a Session use {other}"
        )


def flush(db: orm.Session, conflict: str) -> None:
    try:
        db.flush()
    except exc.IntegrityError as error:
        raise ConversationConflict(f"{conflict}; nothing was written ({reason(error)})") from error


def rollback_quietly(db: orm.Session) -> None:
    try:
        db.rollback()
    except exc.SQLAlchemyError as error:  # the connection is gone: the server rolled back
        log.warning("rollback after a failed commit also failed: %s", reason(error))


def reason(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return scrub(f"{type(orig).__name__}: {text}"[:300])


@contextmanager
def mapped(doing: str) -> Iterator[None]:
    """SQLAlchemy's errors as the record's, saying what was being done and that nothing was half-written."""
    try:
        yield
    except RecordError:
        raise
    except exc.InvalidRequestError as error:
        if "closed" in str(error):
            raise RecordError(
                f"{doing}: the database session passed is closed; open a new one and call again"
                " (the recorder keeps its turns)"
            ) from error
        raise RecordError(f"{doing} failed: {reason(error)}") from error
    except exc.IntegrityError as error:
        raise ConversationConflict(f"{doing} failed, nothing was written: {reason(error)}") from error
    except (exc.OperationalError, exc.InterfaceError) as error:
        raise RecordUnavailable(
            f"{doing} failed, the database is unreachable or went away ({reason(error)}); the transaction was"
            " rolled back and nothing was written. The recorder keeps its new turns: commit again when it is back"
        ) from error
    except exc.DBAPIError as error:
        if error.connection_invalidated:
            raise RecordUnavailable(
                f"{doing} failed, the database connection was lost ({reason(error)}); nothing was written."
                " The recorder keeps its new turns: commit again when the database is back"
            ) from error
        raise RecordError(f"{doing} failed, nothing was written: {reason(error)}") from error
    except exc.SQLAlchemyError as error:
        raise RecordError(f"{doing} failed: {reason(error)}") from error
