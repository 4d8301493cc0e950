"""Following the caller's transaction: what each `stage` wrote, kept until the outermost transaction ends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import event, orm

from memscope.record.errors import RecordError

__all__ = ["Listener", "Staged", "innermost", "outbox", "within"]

_OUTBOX = "memscope.record.outbox"  # key in a SQLAlchemy Session's `info`


class Listener(Protocol):
    """What a recorder is told when the transaction it staged in ends."""

    def transaction_committed(self) -> None:
        """The outermost transaction committed: what was staged is stored."""

    def transaction_rolled_back(self, savepoint: orm.SessionTransaction | None = None) -> None:
        """Everything (or, for a savepoint, what was staged inside it) was rolled back."""


@dataclass
class Staged:
    """What one `stage` wrote, kept until the caller's transaction commits or rolls back."""

    transaction: orm.SessionTransaction  # the innermost (savepoint or outer) transaction it was written in
    rows: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # turn id -> values, None if deleted
    created: bool = False
    new_turns: list[Any] = field(default_factory=list)


def innermost(db: orm.Session) -> orm.SessionTransaction:
    """The transaction a write goes into now: the open savepoint, else the outer one."""
    transaction = db.get_nested_transaction() or db.get_transaction()
    if transaction is None:  # db.connection() began one; a session that cannot has failed before here
        raise RecordError("the database session has no transaction to write in")
    return transaction


def within(transaction: orm.SessionTransaction | None, ancestor: orm.SessionTransaction) -> bool:
    """True when `transaction` is `ancestor` or a savepoint inside it."""
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


@dataclass
class _Outbox:
    """The recorders staged in one SQLAlchemy Session's open transaction."""

    recorders: list[Listener] = field(default_factory=list)
    committed: bool = False

    def append(self, recorder: Listener) -> None:
        if recorder not in self.recorders:
            self.recorders.append(recorder)


def outbox(db: orm.Session) -> _Outbox:
    """The recorders staged in `db`'s transaction, told when it ends: committed, rolled back, or closed.

    A savepoint's release is not the end (after_commit fires for it too); its rollback forgets what was
    written inside it. The outermost transaction's end decides: committed, or everything forgotten.
    """
    box: _Outbox | None = db.info.get(_OUTBOX)
    if box is None:
        box = db.info[_OUTBOX] = _Outbox()

        def committed(session: orm.Session) -> None:
            if not session.in_nested_transaction():
                box.committed = True

        def savepoint_rolled_back(_: orm.Session, previous: orm.SessionTransaction) -> None:
            if previous.nested:
                for recorder in box.recorders:
                    recorder.transaction_rolled_back(previous)

        def ended(_: orm.Session, transaction: orm.SessionTransaction) -> None:
            if transaction.parent is not None:
                return
            recorders, done = list(box.recorders), box.committed
            box.recorders.clear()
            box.committed = False
            for recorder in recorders:
                if done:
                    recorder.transaction_committed()
                else:
                    recorder.transaction_rolled_back()

        event.listen(db, "after_commit", committed)
        event.listen(db, "after_soft_rollback", savepoint_rolled_back)
        event.listen(db, "after_transaction_end", ended)
    return box
