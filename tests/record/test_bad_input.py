"""Bad input and bad days on PostgreSQL: unknown ids, a closed session, the database gone mid-commit,
migrations run twice and at once, concurrent commits to one conversation. Each loses nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session as DBSession

from memscope import MemoryScope
from memscope.errors import ValidationError
from memscope.record import (
    ConversationConflict,
    ConversationNotFound,
    ConversationRow,
    MessageRow,
    Recorder,
    RecordError,
    RecordUnavailable,
    current_revision,
    migrate,
)
from tests.support.sql import TestDatabase, fresh_database

pytestmark = pytest.mark.integration


@pytest.fixture
def pg(postgres: TestDatabase) -> Iterator[sa.Engine]:
    engine = postgres.engine(pool_size=10)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["postgresql", "mariadb"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A migrated database on PostgreSQL (what the issue asks for), and the same on MariaDB."""
    with fresh_database(request.param, tmp_path) as database:
        engine = database.engine(pool_size=10)
        migrate(engine)
        yield engine
        engine.dispose()


@pytest.fixture
def memory(tmp_path: Path) -> Iterator[MemoryScope]:
    with MemoryScope({"store": {"path": str(tmp_path / "m.db")}, "llm": {"backend": "none"}}, background=False) as m:
        yield m


def count(engine: sa.Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


def test_unknown_and_malformed_ids_are_clear_errors(pg: sa.Engine):
    with DBSession(pg) as db:
        with pytest.raises(ConversationNotFound, match=r"no conversation 'missing'.*Recorder\.new"):
            Recorder.from_conversation(db, "missing")
        with pytest.raises(RecordError, match="a conversation id is a string, got int"):
            Recorder.from_conversation(db, 42)  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="conversation_id"):
            Recorder.from_conversation(db, "a\x00b")
        with pytest.raises(ValidationError, match="conversation_id"):
            Recorder.new("tom", conversation_id="x" * 65)
        rec = Recorder.new("tom")
        rec.add_prompt("hi")
        rec.commit(db)
        with pytest.raises(ValidationError, match="no turn with id 'nope'"):
            rec.session.remove("nope")
        with pytest.raises(ValidationError, match="no turn at index 5"):
            rec.session.get(5)
        with pytest.raises(ValidationError, match="reply_to 'nope' is not a turn"):
            rec.add_response("x", reply_to="nope", selected=False)
    with pytest.raises(RecordError, match=r"takes a sqlalchemy\.orm\.Session.*got Engine"):
        rec.commit(pg)  # type: ignore[arg-type]
    async_db = AsyncSession(create_async_engine(pg.url.set(drivername="postgresql+asyncpg")))
    with pytest.raises(RecordError, match=r"for an AsyncSession, `await recorder\.acommit\(db\)`"):
        rec.commit(async_db)  # type: ignore[arg-type]
    with pytest.raises(RecordError, match=r"takes a sqlalchemy\.ext\.asyncio\.AsyncSession, got Session"):
        asyncio.run(rec.acommit(DBSession(pg)))  # type: ignore[arg-type]
    assert count(pg, MessageRow) == 1


def test_a_conversation_deleted_since_it_was_loaded(pg: sa.Engine):
    rec = Recorder.new("tom")
    rec.add_prompt("hi")
    with DBSession(pg) as db:
        rec.commit(db)
        db.execute(sa.delete(ConversationRow))
        db.commit()
        rec.add_prompt("still there?")
        with pytest.raises(ConversationNotFound, match="was deleted since it was loaded; nothing was written"):
            rec.commit(db)
    assert count(pg, MessageRow) == 0 and [t.content for t in rec.new_turns] == ["still there?"]


def test_a_closed_session_is_refused_and_the_turns_are_kept(pg: sa.Engine, memory: MemoryScope):
    rec = Recorder.new("tom", memory=memory)
    rec.add_prompt("remember me")
    db = DBSession(pg, close_resets_only=False)
    db.close()
    with pytest.raises(RecordError, match="the database session passed is closed; open a new one"):
        rec.commit(db)
    with pytest.raises(RecordError, match="closed"):
        Recorder.from_conversation(db, rec.conversation_id)
    assert count(pg, ConversationRow) == 0 and len(rec.new_turns) == 1 and memory.list_messages("tom") == []
    with DBSession(pg) as fresh:
        assert rec.commit(fresh) == 1
    assert count(pg, MessageRow) == 1 and len(memory.list_messages("tom")) == 1


def test_database_gone_mid_commit_rolls_back_and_a_retry_succeeds(server: sa.Engine, memory: MemoryScope):
    engine = server
    rec = Recorder.new("tom", memory=memory)
    rec.add_prompt("I adopted a cat named Miso")
    rec.add_response("Miso is a lovely name!")
    with DBSession(engine) as db:
        rec.commit(db)
    rec.add_prompt("She is two years old")
    rec.add_response("A young cat, then.")

    admin = sa.create_engine(engine.url, poolclass=sa.NullPool)

    postgres = engine.dialect.name == "postgresql"

    def kill_backend(conn: sa.Connection) -> None:  # the server drops this connection just before COMMIT
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()" if postgres else "SELECT CONNECTION_ID()").scalar()
        with admin.begin() as other:
            kill = "SELECT pg_terminate_backend(:pid)" if postgres else f"KILL {int(pid or 0)}"
            other.execute(sa.text(kill), {"pid": pid})

    event.listen(engine, "commit", kill_backend, once=True)
    with DBSession(engine) as db, pytest.raises(RecordUnavailable, match="rolled back and nothing was written"):
        rec.commit(db)
    assert count(engine, MessageRow) == 2  # only the first commit's turns
    assert [t.content for t in rec.new_turns] == ["She is two years old", "A young cat, then."]
    assert len(memory.list_messages("tom")) == 2
    with DBSession(engine) as db:
        assert rec.commit(db) == 2
        assert Recorder.from_conversation(db, rec.conversation_id).session == rec.session
    assert len(memory.list_messages("tom")) == 4  # each turn once, the failed commit's included


def test_migrations_run_twice_and_at_once(postgres: TestDatabase):
    """Three processes (an app's instances starting together) and two threads migrate one database at once."""
    url = postgres.url.render_as_string(hide_password=False)
    code = "import sys, sqlalchemy as sa; from memscope.record import migrate; migrate(sa.create_engine(sys.argv[1]))"
    procs = [subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE, text=True) for _ in range(3)]
    engine = postgres.engine(pool_size=4)
    try:
        errors: list[BaseException] = []

        def run() -> None:
            try:
                migrate(engine)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        outcomes = [(p.wait(120), p.stderr.read() if p.stderr else "") for p in procs]
        assert errors == [] and all(code == 0 for code, _ in outcomes), outcomes
        assert current_revision(engine) == "0001"
        rec = Recorder.new("tom")
        rec.add_prompt("kept across migrations")
        with DBSession(engine) as db:
            rec.commit(db)
        migrate(engine)
        assert count(engine, MessageRow) == 1
    finally:
        engine.dispose()


def test_concurrent_commits_to_one_conversation_take_turns(server: sa.Engine, memory: MemoryScope):
    engine = server
    first = Recorder.new("tom", memory=memory)
    first.add_prompt("start")
    with DBSession(engine) as db:
        first.commit(db)
    writers = 4
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            with DBSession(engine) as db:
                rec = Recorder.from_conversation(db, first.conversation_id, memory=memory)
                db.rollback()  # end the read transaction; the commit below starts its own
                for k in range(3):
                    rec.add_prompt(f"writer {n} line {k}")
                barrier.wait(10)
                rec.commit(db)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with DBSession(engine) as db:
        rows = db.scalars(sa.select(MessageRow).order_by(MessageRow.position)).all()
    assert [r.position for r in rows] == list(range(1 + 3 * writers))
    for n in range(writers):  # each writer's turns in its own order
        mine = [r.content for r in rows if r.content.startswith(f"writer {n} ")]
        assert mine == [f"writer {n} line {k}" for k in range(3)]
    assert len(memory.list_messages("tom")) == 1 + 3 * writers


def test_two_writers_creating_one_conversation_id(pg: sa.Engine):
    a, b = (Recorder.new("tom", conversation_id="shared") for _ in range(2))
    a.add_prompt("from a")
    b.add_prompt("from b")
    with DBSession(pg) as db:
        a.commit(db)
    with DBSession(pg) as db:
        with pytest.raises(ConversationConflict, match=r"'shared' already exists.*from_conversation"):
            b.commit(db)
        assert [t.content for t in b.new_turns] == ["from b"]
        loaded = Recorder.from_conversation(db, "shared")
        loaded.add_prompt(b.new_turns[0].content)
        loaded.commit(db)
    assert count(pg, MessageRow) == 2 and count(pg, ConversationRow) == 1


def test_savepoints_a_rolled_back_one_forgets_only_its_own_writes(pg: sa.Engine, memory: MemoryScope):
    rec = Recorder.new("tom", memory=memory)
    rec.add_prompt("outside the savepoint")
    with DBSession(pg) as db:
        rec.stage(db)
        savepoint = db.begin_nested()
        rec.add_prompt("inside, rolled back")
        rec.stage(db)
        savepoint.rollback()
        with db.begin_nested():  # released: still only as durable as the outer transaction
            rec.add_prompt("inside, released")
            assert rec.stage(db) == 2  # the rolled-back turn is written again, with the new one
        assert memory.list_messages("tom") == []  # a savepoint's release is not a commit
        db.commit()
        assert rec.new_turns == [] and rec.commit(db) == 0
    with DBSession(pg) as db:
        assert Recorder.from_conversation(db, rec.conversation_id).session == rec.session
    assert [m.content for m in memory.list_messages("tom")] == [t.content for t in rec.session.turns]


def test_a_session_closed_without_commit_forgets_what_it_staged(pg: sa.Engine):
    rec = Recorder.new("tom")
    rec.add_prompt("never committed")
    with DBSession(pg) as db:
        rec.stage(db)
    assert count(pg, ConversationRow) == 0 and len(rec.new_turns) == 1
    with DBSession(pg) as db:
        assert rec.commit(db) == 1  # written again, conversation row included
    assert count(pg, MessageRow) == 1
