"""The Recorder on SQLite, PostgreSQL and MariaDB: every field kept, the caller's transaction respected."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dashscope
import pytest
import sqlalchemy as sa
from openai import OpenAI
from sqlalchemy.orm import Session as DBSession

from memscope import MemoryScope
from memscope.record import ConversationRow, MessageRow, Recorder, current_revision, migrate
from tests.support.scripted_server import ScriptedServer
from tests.support.sql import TestDatabase

pytestmark = pytest.mark.integration

TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "巴黎"}'}}


def full_conversation() -> Recorder:
    rec = Recorder.new("tom", assistant="travel-bot", title="Weather in Paris ☀️")
    rec.add_prompt("You are helpful.", role="system")
    ask = rec.add_prompt("What's the weather in Paris? 🌧️ 你好", name="tom", metadata={"lang": ["en", "zh"]})
    rec.add_response(
        "", model="gpt-4o-mini", temperature=0.2, prompt_tokens=20, completion_tokens=7, latency_ms=120.25,
        score=0.75, tool_calls=[TOOL_CALL], metadata={"finish_reason": "tool_calls"},
    )
    rec.add_prompt("18C and sunny", role="tool", tool_call_id="call_1")
    rec.add_response("It is 18C and sunny.", model="gpt-4o-mini", temperature=0.0)
    rec.add_response("Sunny, 18C.", model="gpt-4o-mini", reply_to=ask.id, selected=False)
    rec.add_prompt("x" * 100_000)  # memscope's content limit, past MySQL's 64 KB TEXT
    rec.session.mask(-1)
    return rec


def test_migrate_creates_the_tables_and_twice_is_a_no_op(database: TestDatabase):
    engine = database.engine()
    try:
        assert current_revision(engine) is None
        migrate(engine)
        migrate(engine)
        assert current_revision(engine) == "0001"
        names = set(sa.inspect(engine).get_table_names())
        assert {"memscope_conversations", "memscope_messages", "memscope_record_version"} <= names
        assert "alembic_version" not in names  # the application's own Alembic table is left alone
    finally:
        engine.dispose()


def test_every_field_round_trips(engine: sa.Engine):
    rec = full_conversation()
    with DBSession(engine) as db:
        assert rec.commit(db) == 7
        assert rec.new_turns == []
    with DBSession(engine) as db:
        again = Recorder.from_conversation(db, rec.conversation_id)
    assert again.session == rec.session
    assert (again.user_id, again.assistant) == ("tom", "travel-bot")
    response = again.session.turns[2]
    assert (response.model, response.temperature, response.latency_ms, response.score) == (
        "gpt-4o-mini", 0.2, 120.25, 0.75
    )
    assert again.session.created_at.tzinfo is not None
    assert [m["role"] for m in again.to_openai_format()] == ["system", "user", "assistant", "tool", "assistant"]
    assert again.to_anthropic_format()["system"] == "You are helpful."
    assert again.to_gemini_format()["contents"][1]["parts"][0]["functionCall"]["args"] == {"city": "巴黎"}
    assert "Sunny, 18C." not in again.to_text()  # the alternative is kept, not rendered


def test_edits_removals_and_a_new_selection_are_written(engine: sa.Engine):
    rec = full_conversation()
    with DBSession(engine) as db:
        rec.commit(db)
        rec = Recorder.from_conversation(db, rec.conversation_id)
        rec.session.select_response(3)  # the alternative, kept right after the answers to its prompt
        rec.session.remove(0)
        rec.session.title = "Paris"
        assert rec.commit(db) == 3  # two selections changed, one turn removed
        assert rec.commit(db) == 0  # nothing left to write
    with DBSession(engine) as db:
        again = Recorder.from_conversation(db, rec.conversation_id)
    assert again.session == rec.session
    assert again.session.title == "Paris" and "Sunny, 18C." in again.to_text()


def test_stage_leaves_the_commit_to_the_caller(engine: sa.Engine):
    rec = Recorder.new("tom")
    rec.add_prompt("hello")
    with DBSession(engine) as db, DBSession(engine) as other:
        assert rec.stage(db) == 1
        assert other.scalar(sa.select(sa.func.count()).select_from(MessageRow)) == 0  # not committed
        db.rollback()
        assert rec.new_turns and other.scalar(sa.select(sa.func.count()).select_from(ConversationRow)) == 0
        assert rec.stage(db) == 1  # after a rollback the turns are new again
        db.commit()
        other.rollback()
        assert other.scalar(sa.select(sa.func.count()).select_from(MessageRow)) == 1


def test_new_turns_reach_memory_once_after_the_commit(engine: sa.Engine, tmp_path: Path):
    config = {"store": {"path": str(tmp_path / "memory.db")}, "llm": {"backend": "none"}}
    with MemoryScope(config, background=False) as memory:
        rec = Recorder.new("tom", assistant="bot", memory=memory)
        rec.add_prompt("I moved to Lisbon last week")
        rec.add_response("Welcome to Lisbon!", model="m1", prompt_tokens=5)
        with DBSession(engine) as db:
            rec.stage(db)
            assert memory.list_messages("tom") == []  # not before the commit
            db.rollback()
            assert memory.list_messages("tom") == []  # nor after a rollback
            rec.commit(db)  # the retried commit
            rec.commit(db)
            rec.send_to_memory()
        stored = memory.list_messages("tom", session_id=rec.conversation_id)
        assert [m.content for m in stored] == ["I moved to Lisbon last week", "Welcome to Lisbon!"]
        assert {m.agent_id for m in stored} == {"bot"}
        assert memory.session("tom", rec.conversation_id, agent_id="bot").turns == rec.session.turns


def test_openai_and_dashscope_answers_through_the_real_sdks(engine: sa.Engine, model_server: ScriptedServer):
    model_server.script("", "Bonjour !", "你好。")
    rec = Recorder.new("tom")
    rec.add_prompt("Say hello in French")
    client = OpenAI(api_key="test", base_url=model_server.openai_base_url)
    started = time.perf_counter()
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=rec.to_openai_format())  # type: ignore[arg-type]
    rec.add_openai_response(completion, latency_ms=(time.perf_counter() - started) * 1000, temperature=0.3)
    rec.add_prompt("Now in Chinese")
    answer: Any = dashscope.Generation.call(
        model="qwen-plus", api_key="test", messages=rec.to_openai_format(), result_format="message",
        base_address=model_server.dashscope_base_url,
    )
    rec.add_dashscope_response(answer, model="qwen-plus", latency_ms=12.5)
    with DBSession(engine) as db:
        rec.commit(db)
        again = Recorder.from_conversation(db, rec.conversation_id)
    openai_turn, dashscope_turn = again.session.turns[1], again.session.turns[3]
    assert (openai_turn.content, openai_turn.model, openai_turn.temperature) == ("Bonjour !", "gpt-4o-mini", 0.3)
    assert openai_turn.prompt_tokens and openai_turn.completion_tokens and openai_turn.latency_ms
    assert openai_turn.metadata["finish_reason"] == "stop"
    assert (dashscope_turn.content, dashscope_turn.model, dashscope_turn.latency_ms) == ("你好。", "qwen-plus", 12.5)
    assert dashscope_turn.prompt_tokens and dashscope_turn.completion_tokens
    assert again.session == rec.session


def test_times_are_kept_to_the_microsecond_in_utc(engine: sa.Engine):
    rec = Recorder.new("tom")
    when = datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC)
    rec.add_prompt("leap", created_at=when)
    with DBSession(engine) as db:
        rec.commit(db)
        assert Recorder.from_conversation(db, rec.conversation_id).session.turns[0].created_at == when


def test_a_failed_hand_off_is_kept_and_a_refused_one_is_said(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    migrate(engine)
    config = {"store": {"path": str(tmp_path / "memory.db")}, "llm": {"backend": "none"}}
    closed = MemoryScope(config, background=False)
    closed.close()  # memory is down when the commit lands
    rec = Recorder.new("tom", memory=closed)
    rec.add_prompt("I play the cello")
    with DBSession(engine) as db:
        assert rec.commit(db) == 1  # the record does not wait for memory
    assert "memory did not take 1 turn(s)" in caplog.text
    with MemoryScope(config, background=False) as memory:
        rec.memory = memory
        assert rec.send_to_memory() == 1 and rec.send_to_memory() == 0
        rec.add_prompt("   ")  # memory refuses blank content: said once, not retried forever
        with DBSession(engine) as db:
            rec.commit(db)
        assert "memory refused 1 turn(s)" in caplog.text and rec.send_to_memory() == 0
        assert [m.content for m in memory.list_messages("tom")] == ["I play the cello"]
    engine.dispose()
