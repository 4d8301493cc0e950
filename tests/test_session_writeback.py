"""A recorded Session written to memscope's own store and read back equal, on SQLite and Elasticsearch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from memscope import MemoryScope
from memscope.sessions import Session
from tests.support.es import store_section
from tests.support.scripted_server import ScriptedServer

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "elasticsearch"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    with store_section(request.param, tmp_path, "writeback") as section:
        yield section


def recorded(server: ScriptedServer) -> Session:
    server.script("", "Try the Musée d'Orsay.", "Le Louvre.")
    client = OpenAI(api_key="test", base_url=server.openai_base_url)
    s = Session(title="Paris tips", size_warning_bytes=50_000)
    s.add_prompt("Be brief.", role="system")
    ask = s.add_prompt("A museum in Paris?", name="tom", metadata={"channel": "web"})
    s.record_openai(client.chat.completions.create(model="gpt-4o-mini", messages=s.render("openai")),  # type: ignore[arg-type]
                    latency_ms=41.5, temperature=0.7, score=0.5)
    again = client.chat.completions.create(model="gpt-4o-mini", messages=s.render("openai")[:2])  # type: ignore[arg-type]
    s.record_openai(again, latency_ms=38.0, reply_to=ask.id, selected=False)
    s.add_response("", tool_calls=[{"id": "c1", "type": "function", "function": {"name": "map", "arguments": "{}"}}])
    s.add_prompt("Paris map", role="tool", tool_call_id="c1")
    s.add_prompt("thanks", id="my-own-id-7")  # a caller's own id comes back as given
    s.mask(-1)
    return s


def test_a_recorded_session_round_trips_through_the_store(store: dict[str, Any], model_server: ScriptedServer):
    session = recorded(model_server)
    with MemoryScope({"store": store, "llm": {"backend": "none"}}, background=False) as memory:
        stored = memory.save_session("tom", session, agent_id="guide")
        assert len(stored) == len(session.turns)
        back = memory.session("tom", session.id, agent_id="guide")
        assert back == session
        assert back.turns[2].model == "gpt-4o-mini" and back.turns[2].prompt_tokens
        assert back.render("anthropic") == session.render("anthropic")
        memory.save_session("tom", session, agent_id="guide")  # saving again stores nothing twice
        assert len(memory.list_messages("tom")) == len(session.turns)
