"""The Recorder on AsyncSession: asyncpg, aiomysql and aiosqlite, the same flow and the same guarantees."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from memscope import MemoryScope
from memscope.record import ConversationNotFound, MessageRow, Recorder, amigrate, current_revision
from tests.support.sql import TestDatabase

pytestmark = pytest.mark.integration


def test_async_flow_round_trips_and_reaches_memory_once(database: TestDatabase, tmp_path: Path):
    config = {"store": {"path": str(tmp_path / "memory.db")}, "llm": {"backend": "none"}}

    async def main(memory: MemoryScope) -> None:
        engine = create_async_engine(database.async_url)
        try:
            await amigrate(engine)
            await amigrate(engine)
            rec = Recorder.new("ana", title="async", memory=memory)
            rec.add_prompt("I run every morning")
            rec.add_response("Great habit!", model="m", temperature=0.5, latency_ms=3.5)
            async with AsyncSession(engine) as db:
                assert await rec.astage(db) == 2
                await db.rollback()
                assert memory.list_messages("ana") == [] and len(rec.new_turns) == 2
                assert await rec.acommit(db) == 2
                assert await rec.acommit(db) == 0
            async with AsyncSession(engine) as db:
                again = await Recorder.afrom_conversation(db, rec.conversation_id)
                assert again.session == rec.session
                assert await db.scalar(sa.select(sa.func.count()).select_from(MessageRow)) == 2
                with pytest.raises(ConversationNotFound, match="no conversation 'nope'"):
                    await Recorder.afrom_conversation(db, "nope")
        finally:
            await engine.dispose()

    with MemoryScope(config, background=False) as memory:
        asyncio.run(main(memory))
        assert [m.content for m in memory.list_messages("ana")] == ["I run every morning", "Great habit!"]
    sync = database.engine()
    try:
        assert current_revision(sync) == "0001"
    finally:
        sync.dispose()
