"""The Python API end to end on each store (a real SQLite file, a live Elasticsearch), with the real
OpenAI SDK against the scripted server. Tests marked `embedded_only` run on SQLite alone.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from memscope import AsyncMemoryScope, MemoryScope
from memscope.demo import run_demo
from memscope.errors import NoModelConfigured, ValidationError
from memscope.messages import to_messages
from tests.support.es import store_section
from tests.support.scripted_server import BUILTIN_MODES, ScriptedServer

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
_STORE: dict[str, Any] = {}  # the store section of this test's config, set by `_store`


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test on both stores, unless marked `embedded_only`."""
    if metafunc.definition.get_closest_marker("embedded_only") is None:
        metafunc.parametrize("_store", ["sqlite", "elasticsearch"], indirect=True)


@pytest.fixture(autouse=True)
def _store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The store `config` uses: a SQLite file in tmp_path, or fresh indices on the live Elasticsearch."""
    backend = getattr(request, "param", "sqlite")
    with store_section(backend, tmp_path, "api") as section:
        _STORE.clear()
        _STORE.update(section)
        yield backend


def config(tmp_path: Path, server: ScriptedServer | None) -> dict[str, Any]:
    """Local jobs on this test's store; models on the scripted server (or no LLM)."""
    cfg: dict[str, Any] = {
        "store": dict(_STORE),
        "jobs": {"sweep_interval_s": 0.2},
        "llm": {"backend": "none"},
    }
    if server is not None:
        cfg["llm"] = {"backend": "openai", "model": "test-model", "api_key": "test", "base_url": server.openai_base_url}
        cfg["embedding"] = {
            "backend": "openai",
            "model": "test-embed",
            "api_key": "test",
            "base_url": server.openai_base_url,
            "dim": 64,
        }
    return cfg


def wait_until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_read_your_writes_before_any_consolidation(tmp_path: Path, model_server: ScriptedServer):
    with MemoryScope(config(tmp_path, model_server), background=False) as memory:
        memory.add_messages("ana", "I adopted a grey cat called Miso yesterday")
        result = memory.retrieve("ana", "what is my cat called?")
        said = [m.content for m in result.pending_messages] + [i.content for i in result.items]
        assert any("Miso" in text for text in said)
        assert "Miso" in result.context
        assert memory.stats("ana")["pending_messages"] == 1


def test_tenant_isolation_through_the_api(tmp_path: Path, model_server: ScriptedServer):
    model_server.default(None, BUILTIN_MODES["consolidation"])
    with MemoryScope(config(tmp_path, model_server), background=False) as memory:
        memory.add_messages("alice", "My secret project is called Bluebird")
        memory.add_messages("bob", "I like tea")
        memory.consolidate("alice", wait=True)
        memory.consolidate("bob", wait=True)
        alice_ids = {n.id for n in memory.list_memories("alice")}
        assert alice_ids
        found = memory.retrieve("bob", "secret project Bluebird")
        assert all("Bluebird" not in item.content for item in found.items)
        assert all("Bluebird" not in m.content for m in found.pending_messages)
        for memory_id in alice_ids:
            assert memory.get_memory("bob", memory_id) is None
            assert memory.history("bob", memory_id) == []
        assert not memory.delete_memory("bob", next(iter(alice_ids)))
        assert memory.get_memory("alice", next(iter(alice_ids))) is not None


def test_delete_user_leaves_nothing(tmp_path: Path, model_server: ScriptedServer):
    model_server.default(None, BUILTIN_MODES["consolidation"])
    with MemoryScope(config(tmp_path, model_server), background=False) as memory:
        memory.add_messages("carol", ["I live in Lisbon", "I am a nurse"])
        memory.add_messages("dave", "I live in Oslo")
        memory.consolidate("carol", wait=True)
        ids = [n.id for n in memory.list_memories("carol")]
        assert ids
        assert memory.delete_user("carol") > 0
        assert memory.list_messages("carol") == []
        assert memory.list_memories("carol", statuses=("active", "expired", "deleted")) == []
        assert all(memory.history("carol", i) == [] for i in ids)
        assert memory.stats("carol")["total_messages"] == 0
        assert len(memory.list_messages("dave")) == 1


def test_restart_resumes_pending_work(tmp_path: Path, model_server: ScriptedServer):
    model_server.default(None, BUILTIN_MODES["consolidation"])
    no_llm = config(tmp_path, model_server)
    no_llm["llm"] = {"backend": "none"}
    with MemoryScope(no_llm) as memory:  # no model: the messages are stored and stay pending
        memory.add_messages("erin", ["I started a pottery class", "My sister is called Jo"])
        assert memory.stats("erin")["pending_messages"] == 2
    with MemoryScope(config(tmp_path, model_server)) as memory:  # the first sweep picks them up
        wait_until(lambda: memory.stats("erin")["pending_messages"] == 0)
        assert memory.list_memories("erin")


def test_async_api_under_fifty_concurrent_calls(tmp_path: Path, model_server: ScriptedServer):
    async def main() -> None:
        async with AsyncMemoryScope(config(tmp_path, model_server), background=False) as memory:
            adds = [memory.add_messages("fay", f"fact number {i}: I own {i} books") for i in range(25)]
            reads = [memory.retrieve("fay", f"how many books {i}") for i in range(25)]
            results = await asyncio.gather(*adds, *reads)
            assert len(results) == 50
            assert len(await memory.list_messages("fay")) == 25

    asyncio.run(main())


def test_sync_api_works_inside_a_running_event_loop(tmp_path: Path):
    async def main() -> int:
        with MemoryScope(config(tmp_path, None), background=False) as memory:
            memory.add_messages("gus", "hello from inside asyncio")
            return len(memory.list_messages("gus"))

    assert asyncio.run(main()) == 1


def test_bad_input_is_refused_and_nothing_is_stored(tmp_path: Path):
    with MemoryScope(config(tmp_path, None), background=False) as memory:
        for bad in ("", "   ", "x" * 100_001):
            with pytest.raises(ValidationError):
                memory.add_messages("hal", bad)
        with pytest.raises(ValidationError, match="message 1"):
            memory.add_messages("hal", ["fine", {"role": "wizard", "content": "x"}])
        with pytest.raises(ValidationError, match="control characters"):
            memory.add_messages("bad\x00id", "hi")
        with pytest.raises(ValidationError, match="unknown keys"):
            memory.add_messages("hal", {"role": "user", "content": "x", "colour": "red"})
        assert memory.list_messages("hal") == []
        hostile = "x' OR 1=1 --; DROP TABLE messages; 你好 🚀"
        memory.add_messages(hostile, "odd but valid")
        assert [m.content for m in memory.list_messages(hostile)] == ["odd but valid"]
        with pytest.raises(NoModelConfigured, match="OPENAI_API_KEY"):
            memory.chat("hal", "hello")


def test_openai_style_dicts_with_tool_calls_and_times(tmp_path: Path):
    with MemoryScope(config(tmp_path, None), background=False) as memory:
        calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
        memory.add_messages(
            "ivy",
            [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "check the weather"}],
                    "created_at": "2023-05-08T10:00:00+00:00",
                },
                {"role": "assistant", "content": None, "tool_calls": calls},
                {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
            ],
            session_id="s",
        )
        stored = memory.list_messages("ivy")
        assert stored[0].content == "check the weather" and stored[0].created_at.year == 2023
        rendered = memory.session("ivy", "s").render("openai")
        assert rendered[1]["tool_calls"] == calls and rendered[2]["tool_call_id"] == "c1"


def test_chat_answers_with_memory_and_remembers(tmp_path: Path, model_server: ScriptedServer):
    model_server.default(None, BUILTIN_MODES["consolidation"])
    model_server.script("chat", "Your cat is called Miso.")
    with MemoryScope(config(tmp_path, model_server), background=False) as memory:
        memory.add_messages("jo", "My cat is called Miso")
        assert memory.chat("jo", "what's my cat called?", session_id="s1") == "Your cat is called Miso."
        [chat_call] = [
            r for r in model_server.requests_to("/chat/completions") if r.header("X-Memscope-Worker") == "chat"
        ]
        system = chat_call.json["messages"][0]["content"]
        assert "Miso" in system
        assert [m.role.value for m in memory.list_messages("jo", session_id="s1")] == ["user", "assistant"]
        model_server.script("chat", "Anything else?")
        memory.chat("jo", "thanks", session_id="s1")
        second = [r for r in model_server.requests_to("/chat/completions") if r.header("X-Memscope-Worker") == "chat"][
            -1
        ]
        turns = [(m["role"], m["content"]) for m in second.json["messages"][1:]]
        assert turns == [
            ("user", "what's my cat called?"),
            ("assistant", "Your cat is called Miso."),
            ("user", "thanks"),
        ]  # the session so far, oldest first, then the new message


def test_demo_without_and_with_a_model(tmp_path: Path, model_server: ScriptedServer):
    out = io.StringIO()
    outcome = run_demo(config(tmp_path, model_server) | {"llm": {"backend": "none"}}, console=Console(file=out))
    assert outcome["skipped"] and "No LLM is configured" in out.getvalue()
    assert outcome["stats"]["pending_messages"] == 9
    model_server.default(None, BUILTIN_MODES["consolidation"])
    outcome = run_demo(config(tmp_path, model_server), console=Console(file=io.StringIO()))
    assert not outcome["skipped"] and outcome["memories"] and outcome["stats"]["pending_messages"] == 0


@pytest.mark.slow
@pytest.mark.embedded_only
def test_demo_command_runs_on_the_embedded_default_without_a_model(tmp_path: Path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MEMSCOPE_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "memscope.cli", "demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "No LLM is configured" in done.stdout


def test_consolidation_batch_size_comes_from_the_config(tmp_path: Path, model_server: ScriptedServer):
    model_server.default(None, BUILTIN_MODES["consolidation"])
    cfg = config(tmp_path, model_server)
    cfg["jobs"]["consolidate_batch"] = 2
    with MemoryScope(cfg, background=False) as memory:
        memory.runtime.store.add_messages(to_messages("kim", [f"I have {i} plants" for i in range(5)]))
        first = memory.runtime.run("consolidate_memory", user_id="kim")
        assert len(first["consolidated_ids"]) == 2 and first["more_pending"] is True
        record = memory.consolidate("kim", wait=True)  # the job drains the rest, batch by batch
        assert memory.stats("kim")["pending_messages"] == 0
        assert record.summary["runs"] >= 2  # 3 left in batches of 2; a reflection run may follow
