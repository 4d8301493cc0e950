"""The Recorder: a conversation kept in the application's own SQL database, inside its own transactions.

Flow (Memento's): `Recorder.from_conversation(db, id)` -> `to_openai_format()` -> call the model ->
`add_openai_response(completion)` -> `commit(db)`. `stage(db)` writes into the caller's transaction
and leaves the commit to them; nothing else commits. Turns that reached the database are handed to
memscope's memory (if one is given) after the transaction commits, once: a rolled-back commit hands
nothing, and a repeated hand-off is harmless because the turns keep their ids.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import exc, orm
from sqlalchemy.ext.asyncio import AsyncSession

from memscope.errors import ValidationError
from memscope.limits import normalize_id
from memscope.models import DEFAULT_AGENT, Role, new_id
from memscope.record.db_errors import check_async, check_session, flush, mapped, reason, rollback_quietly
from memscope.record.errors import ConversationConflict, ConversationNotFound, RecordError
from memscope.record.rows import row_values, turn_from_row
from memscope.record.tables import ConversationRow, MessageRow
from memscope.record.transactions import Staged, innermost, outbox, within
from memscope.redact import scrub
from memscope.sessions import Format, Prompt, Response, Session

__all__ = ["MemoryLike", "Recorder"]

log = logging.getLogger("memscope.record")
MAX_CONVERSATION_ID = 64
MAX_TITLE = 1024


class MemoryLike(Protocol):
    """What the Recorder hands committed turns to: `MemoryScope` (or anything with its add_messages)."""

    def add_messages(
        self, user_id: str, messages: Any, session_id: str | None = None, agent_id: str | None = None
    ) -> Any: ...


class Recorder:
    """One conversation of one user with one assistant, as a memscope `Session` backed by SQL rows."""

    def __init__(
        self, session: Session, *, user_id: str, assistant: str = DEFAULT_AGENT, memory: MemoryLike | None = None
    ) -> None:
        self.session = session
        self.user_id = normalize_id(user_id, "user_id")
        self.assistant = normalize_id(assistant, "assistant")
        self.memory = memory
        self._stored: dict[str, dict[str, Any]] = {}  # turn id -> row values as committed
        self._exists = False  # the conversation row is committed
        self._staged: list[Staged] = []  # one per `stage` in the open transaction, oldest first
        self._unsent: list[Prompt | Response] = []  # committed turns memory has not taken yet

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def new(
        cls,
        user_id: str,
        *,
        assistant: str = DEFAULT_AGENT,
        title: str | None = None,
        conversation_id: str | None = None,
        memory: MemoryLike | None = None,
    ) -> Recorder:
        """A conversation not yet in the database; the first `commit` creates it."""
        session = Session(id=_conversation_id(conversation_id or new_id()), title=_title(title))
        return cls(session, user_id=user_id, assistant=assistant, memory=memory)

    @classmethod
    def from_conversation(
        cls, db: orm.Session, conversation_id: str, *, memory: MemoryLike | None = None
    ) -> Recorder:
        """The stored conversation with its turns in order; an unknown id is ConversationNotFound."""
        cid = _conversation_id(conversation_id)
        check_session(db, "from_conversation", "afrom_conversation")
        with mapped(f"loading conversation {cid!r}"):
            conv = db.get(ConversationRow, cid, populate_existing=True)
            if conv is None:
                raise ConversationNotFound(
                    f"no conversation {cid!r} in the record; start one with Recorder.new(user_id, ...) and commit it"
                )
            query = sa.select(MessageRow).where(MessageRow.conversation_id == cid).order_by(MessageRow.position)
            rows = db.scalars(query.execution_options(populate_existing=True)).all()
            turns = [turn_from_row(r) for r in rows]
        session = Session(
            id=cid, title=conv.title, created_at=conv.created_at, modified_at=conv.updated_at, turns=turns
        )
        recorder = cls(session, user_id=conv.user_id, assistant=conv.assistant, memory=memory)
        recorder._stored = {t.id: row_values(t) for t in turns}
        recorder._exists = True
        return recorder

    @classmethod
    async def afrom_conversation(
        cls, db: AsyncSession, conversation_id: str, *, memory: MemoryLike | None = None
    ) -> Recorder:
        """`from_conversation` on an AsyncSession."""
        check_async(db, "afrom_conversation", "from_conversation")
        return await db.run_sync(lambda sync: cls.from_conversation(sync, conversation_id, memory=memory))

    # -- the conversation ------------------------------------------------------------------------
    @property
    def conversation_id(self) -> str:
        """The conversation's id (its session's id)."""
        return self.session.id

    @property
    def new_turns(self) -> list[Prompt | Response]:
        """Turns added since the conversation was loaded or last committed."""
        return [t for t in self.session.turns if t.id not in self._stored]

    def add_prompt(self, content: str, role: Role | str = Role.USER, **fields: Any) -> Prompt:
        """Add a user, system or tool turn (see Session.add_prompt)."""
        return self.session.add_prompt(content, role, **fields)

    def add_response(self, content: str, **fields: Any) -> Response:
        """Add an assistant turn (see Session.add_response)."""
        return self.session.add_response(content, **fields)

    def add_openai_response(self, completion: Any, **fields: Any) -> Response:
        """Add the answer of an `openai` ChatCompletion: model, tokens, tool calls, finish reason."""
        return self.session.record_openai(completion, **fields)

    def add_dashscope_response(self, response: Any, *, model: str, **fields: Any) -> Response:
        """Add the answer of a `dashscope.Generation.call` (the SDK's response does not carry the model)."""
        return self.session.record_dashscope(response, model=model, **fields)

    def render(self, format: Format = "openai") -> Any:
        """The visible turns in a provider's format (see Session.render)."""
        return self.session.render(format)

    def to_openai_format(self) -> list[dict[str, Any]]:
        """OpenAI chat messages."""
        return self.session.render("openai")  # type: ignore[no-any-return]

    def to_anthropic_format(self) -> dict[str, Any]:
        """Anthropic Messages: `system` and `messages`."""
        return self.session.render("anthropic")  # type: ignore[no-any-return]

    def to_gemini_format(self) -> dict[str, Any]:
        """Gemini: `contents` and `system_instruction`."""
        return self.session.render("gemini")  # type: ignore[no-any-return]

    def to_text(self) -> str:
        """One `Speaker: text` line per turn."""
        return self.session.render("text")  # type: ignore[no-any-return]

    # -- writing ---------------------------------------------------------------------------------
    def stage(self, db: orm.Session) -> int:
        """Write the changes (new, edited and removed turns, title) into `db`'s transaction and flush.

        The caller commits. Returns how many message rows were written. After the caller's commit the
        new turns go to memory; after a rollback they stay new, so staging again writes them again.
        """
        check_session(db, "stage", "astage")
        with mapped(f"writing conversation {self.conversation_id!r}"):
            return self._stage(db)

    def commit(self, db: orm.Session) -> int:
        """`stage`, then commit `db` (with whatever else the caller had pending in it); on failure, roll back."""
        check_session(db, "commit", "acommit")
        try:
            written = self.stage(db)
            with mapped(f"committing conversation {self.conversation_id!r}"):
                db.commit()
        except RecordError:
            rollback_quietly(db)
            raise
        return written

    async def astage(self, db: AsyncSession) -> int:
        """`stage` on an AsyncSession."""
        check_async(db, "astage", "stage")
        return await db.run_sync(lambda sync: self.stage(sync))

    async def acommit(self, db: AsyncSession) -> int:
        """`commit` on an AsyncSession."""
        check_async(db, "acommit", "commit")
        try:
            written = await self.astage(db)
            with mapped(f"committing conversation {self.conversation_id!r}"):
                await db.commit()
        except RecordError:
            try:
                await db.rollback()
            except exc.SQLAlchemyError as error:
                log.warning("rollback after a failed commit also failed: %s", reason(error))
            raise
        return written

    def _stage(self, db: orm.Session) -> int:
        cid = self.conversation_id
        db.connection()  # begin the caller's transaction if it has not begun, so this write knows it
        known: dict[str, dict[str, Any] | None] = dict(self._stored)
        for earlier in self._staged:
            known.update(earlier.rows)
        exists = self._exists or any(earlier.created for earlier in self._staged)
        current = {t.id: (t, row_values(t)) for t in self.session.turns}
        inserts = [(t, v) for t, v in current.values() if known.get(t.id) is None]
        updates = [(t, v) for t, v in current.values() if known.get(t.id) not in (None, v)]
        deletes = [tid for tid, v in known.items() if v is not None and tid not in current]
        if exists and not (inserts or updates or deletes) and not self._head_changed(db):
            return 0
        staged = Staged(transaction=innermost(db))
        self._staged.append(staged)
        outbox(db).append(self)  # told when the caller's transaction commits or rolls back
        if exists:
            conv = db.scalars(
                sa.select(ConversationRow)
                .where(ConversationRow.id == cid)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).one_or_none()  # the row lock makes concurrent writers of one conversation take turns
            if conv is None:
                raise ConversationNotFound(f"conversation {cid!r} was deleted since it was loaded; nothing was written")
            conv.title, conv.updated_at = _title(self.session.title), self.session.modified_at
        else:
            db.add(self._conversation_row())
            taken = f"conversation {cid!r} already exists (another writer created it): load it with from_conversation"
            flush(db, taken)
            staged.created = True
        last = db.scalar(
            sa.select(sa.func.coalesce(sa.func.max(MessageRow.position), -1)).where(MessageRow.conversation_id == cid)
        )
        for offset, (turn, values) in enumerate(inserts, start=1):
            db.add(MessageRow(conversation_id=cid, position=int(last if last is not None else -1) + offset, **values))
            staged.rows[turn.id] = values
            staged.new_turns.append(turn)
        for turn, values in updates:
            row = db.get(MessageRow, turn.id)
            if row is None or row.conversation_id != cid:
                raise ConversationConflict(f"turn {turn.id!r} of conversation {cid!r} was deleted by another writer")
            for key, value in values.items():
                setattr(row, key, value)
            staged.rows[turn.id] = values
        if deletes:
            db.execute(sa.delete(MessageRow).where(MessageRow.conversation_id == cid, MessageRow.id.in_(deletes)))
            staged.rows.update(dict.fromkeys(deletes))
        flush(db, f"another writer added the same turns to conversation {cid!r}: load it again with from_conversation")
        return len(inserts) + len(updates) + len(deletes)

    def _conversation_row(self) -> ConversationRow:
        s = self.session
        return ConversationRow(
            id=s.id, user_id=self.user_id, assistant=self.assistant, title=_title(s.title),
            created_at=s.created_at, updated_at=s.modified_at, meta={},
        )

    def _head_changed(self, db: orm.Session) -> bool:
        row = db.get(ConversationRow, self.conversation_id)
        return row is None or (row.title, row.updated_at) != (self.session.title, self.session.modified_at)

    # -- after the caller's transaction ends -----------------------------------------------------
    def transaction_committed(self) -> None:
        """The caller's transaction committed: what was staged is stored, and its new turns go to memory."""
        layers, self._staged = self._staged, []
        for staged in layers:
            for tid, values in staged.rows.items():
                if values is None:
                    self._stored.pop(tid, None)
                else:
                    self._stored[tid] = values
            self._exists = self._exists or staged.created
            self._unsent += [t for t in staged.new_turns if not t.masked and getattr(t, "selected", True)]
        if layers:
            self.send_to_memory()

    def transaction_rolled_back(self, savepoint: orm.SessionTransaction | None = None) -> None:
        """Forget what was staged in the rolled-back transaction (a savepoint: only what was written inside it)."""
        self._staged = [s for s in self._staged if savepoint is not None and not within(s.transaction, savepoint)]

    def send_to_memory(self) -> int:
        """Give memory the committed turns it has not taken yet; returns how many. A failure is logged and kept."""
        if self.memory is None or not self._unsent:
            return 0
        batch = Session.model_construct(
            id=self.session.id, title=self.session.title, created_at=self.session.created_at,
            modified_at=self.session.modified_at, size_warning_bytes=None, turns=list(self._unsent),
        )
        try:
            self.memory.add_messages(
                self.user_id, batch.to_messages(), session_id=self.conversation_id, agent_id=self.assistant
            )
        except ValidationError as error:  # never accepted however often it is sent: say so once, drop
            log.error(
                "memory refused %d turn(s) of conversation %r: %s; they stay in the record only",
                len(self._unsent), self.conversation_id, error,
            )
            self._unsent = []
            return 0
        except Exception as error:
            log.warning(
                "memory did not take %d turn(s) of conversation %r (%s); they are kept and go with the next"
                " commit, or call send_to_memory()", len(self._unsent), self.conversation_id, scrub(str(error)),
            )
            return 0
        sent, self._unsent = len(self._unsent), []
        return sent


def _conversation_id(value: Any) -> str:
    if not isinstance(value, str):
        raise RecordError(f"a conversation id is a string, got {type(value).__name__}")
    return normalize_id(value, "conversation_id", MAX_CONVERSATION_ID)


def _title(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > MAX_TITLE):
        raise RecordError(f"a title is a string of at most {MAX_TITLE} characters")
    return value  # type: ignore[no-any-return]


