"""`memscope mcp` with the official MCP SDK's own client, over stdio and over streamable HTTP."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.support.memscope_server import KEYS, ServerProcess, server_config
from tests.support.scripted_server import BUILTIN_MODES, ScriptedServer

pytestmark = pytest.mark.integration
TOOLS = {"add_messages", "retrieve", "list_memories", "update_memory", "delete_memory", "history", "profile"}


async def call(client: Client, tool: str, **arguments: Any) -> Any:
    """A tool's JSON answer; a tool error raises AssertionError with its text."""
    result = await client.call_tool(tool, arguments)
    text = result.content[0].text  # type: ignore[union-attr]
    if result.is_error:
        raise AssertionError(text)
    return json.loads(text)


async def until_memories(client: Client, user_id: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The user's memories once background consolidation wrote some."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = (await call(client, "list_memories", user_id=user_id))["memories"]
        if found:
            return list(found)
        await anyio.sleep(0.2)
    raise AssertionError(f"no memories for {user_id!r} within {timeout}s")


async def exercise(client: Client, user_id: str) -> None:
    """The tools end to end: add, retrieve, wait for consolidation, update, history, delete, the resource."""
    names = {t.name for t in (await client.list_tools()).tools}
    assert names >= TOOLS
    added = await call(client, "add_messages", user_id=user_id, messages=["I adopted a grey cat called Miso"])
    assert added["stored"] == 1
    found = await call(client, "retrieve", user_id=user_id, query="what is my cat called?")
    assert "Miso" in found["context"]
    memory = (await until_memories(client, user_id))[0]
    assert memory["user_id"] == user_id
    changed = await call(client, "update_memory", user_id=user_id, memory_id=memory["id"], content="The cat is Miso")
    assert changed["content"] == "The cat is Miso"
    kinds = [e["kind"] for e in (await call(client, "history", user_id=user_id, memory_id=memory["id"]))["events"]]
    assert kinds == ["add", "update"]
    resource = await client.read_resource(f"memscope://users/{user_id}/memories")
    assert "The cat is Miso" in resource.contents[0].text  # type: ignore[union-attr]
    assert (await call(client, "delete_memory", user_id=user_id, memory_id=memory["id"]))["deleted"] == [memory["id"]]
    profile = await call(client, "profile", user_id=user_id)
    assert set(profile) >= {"preferences", "facts", "traits", "goals"} and profile["user_id"] == user_id


def test_stdio(tmp_path: Path, model_server: ScriptedServer):
    model_server.default(None, BUILTIN_MODES["consolidation"])
    config = server_config(tmp_path, model_server.openai_base_url)
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "memscope.cli", "mcp", "--config", str(config), "--tenant", "acme"]
    )

    async def main() -> None:
        async with Client(params, read_timeout_seconds=60) as client:
            await exercise(client, "tom")
            bad = await client.call_tool("list_memories", {"user_id": "to\u200bm"})
            assert bad.is_error and "U+200B" in bad.content[0].text  # type: ignore[union-attr]

    anyio.run(main)


def _http(server: ServerProcess, key: str) -> Client:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
    return Client(streamable_http_client(f"{server.url}/mcp/", http_client=http), read_timeout_seconds=60)


def test_streamable_http_with_keys_and_tenants(server: ServerProcess, model_server: ScriptedServer):
    model_server.default(None, BUILTIN_MODES["consolidation"])

    async def main() -> None:
        async with _http(server, KEYS["acme"]) as acme:
            await exercise(acme, "mia")
            await call(acme, "add_messages", user_id="mia", messages=["My secret project is Bluebird"])
            kept = await until_memories(acme, "mia")
        async with _http(server, KEYS["globex"]) as globex:
            assert (await call(globex, "list_memories", user_id="mia"))["memories"] == []
            found = await call(globex, "retrieve", user_id="mia", query="secret project Bluebird")
            assert "Bluebird" not in json.dumps(found)
            stolen = await globex.call_tool("delete_memory", {"user_id": "mia", "memory_id": kept[0]["id"]})
            assert stolen.is_error
            assert "acme" not in stolen.content[0].text  # type: ignore[union-attr]

    anyio.run(main)
    with httpx2.Client() as plain:
        refused = plain.post(f"{server.url}/mcp/", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                             headers={"Authorization": "Bearer wrong-key"})  # fmt: skip
        assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"


def test_mcp_alone_over_http(tmp_path: Path, model_server: ScriptedServer):
    """`memscope mcp --transport http`: MCP without the REST routes or the browser, behind the same keys."""
    config = server_config(tmp_path, model_server.openai_base_url)
    server = ServerProcess(config, tmp_path / "mcp.log", command=("mcp", "--transport", "http")).wait_ready()
    try:

        async def main() -> None:
            async with _http(server, KEYS["acme"]) as client:
                assert {t.name for t in (await client.list_tools()).tools} >= TOOLS
                await call(client, "add_messages", user_id="kai", messages=["I run marathons"])
                assert "marathons" in (await call(client, "retrieve", user_id="kai", query="running"))["context"]

        anyio.run(main)
        with httpx2.Client(base_url=server.url) as plain:
            assert plain.get("/ui/").status_code == 404
            assert plain.post("/mcp/", json={}).status_code == 401
    finally:
        server.stop()
