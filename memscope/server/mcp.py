"""`memscope mcp`: memscope as an MCP server (the official `mcp` SDK), over stdio or streamable HTTP.

Tools: add_messages, retrieve, list_memories, update_memory, delete_memory, history, profile.
Resource: `memscope://users/{user_id}/memories`. Over HTTP every request needs an API key (as for
the REST API) and acts in that key's tenant; over stdio the process acts for `--tenant`, or as
admin (ids as stored) when none is given.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from memscope.api import MemoryScope
from memscope.errors import MemscopeError
from memscope.redact import scrub
from memscope.server.keys import KeyRing, Principal
from memscope.server.scoped import NotFound, ScopedMemory

__all__ = ["build_mcp", "mcp_auth"]

INSTRUCTIONS = (
    "Long-term memory of the users you talk with. Call retrieve before answering a user, and "
    "add_messages after each exchange so that it is remembered."
)


def _principal(ctx: Context[Any, Any] | None, keys: KeyRing | None, fixed: Principal | None) -> Principal:
    if keys is None or fixed is not None:
        return fixed or Principal(None)
    headers = (ctx.headers if ctx is not None else None) or {}
    header = str(headers.get("authorization", ""))
    key = header[7:].strip() if header.lower().startswith("bearer ") else str(headers.get("x-api-key", ""))
    found = keys.lookup(key)
    if found is None:
        raise ToolError("no known API key on this request; send it as 'Authorization: Bearer KEY'")
    return found


def build_mcp(
    get_memory: Callable[[], MemoryScope], keys: KeyRing | None, fixed: Principal | None = None
) -> MCPServer[Any]:
    """The MCP server; each call acts through the caller's ScopedMemory."""
    server: MCPServer[Any] = MCPServer("memscope", instructions=INSTRUCTIONS)

    async def call(ctx: Context[Any, Any] | None, action: Callable[[ScopedMemory], Any]) -> Any:
        view = ScopedMemory(get_memory(), _principal(ctx, keys, fixed))
        try:
            result = await anyio.to_thread.run_sync(action, view)
        except (MemscopeError, NotFound, ValueError) as exc:
            raise ToolError(view.clean(scrub(str(exc)))) from None
        return _plain(result)

    @server.tool()
    async def add_messages(
        user_id: str, messages: list[str | dict[str, Any]], session_id: str | None = None, ctx: Context | None = None
    ) -> Any:
        """Remember conversation turns (strings, or {role, content} dicts); consolidation runs in the background."""
        stored = await call(ctx, lambda m: m.add_messages(user_id, messages, session_id, None))
        return {"stored": len(stored), "ids": [s["id"] for s in stored]}

    @server.tool()
    async def retrieve(user_id: str, query: str, top_k: int = 10, ctx: Context | None = None) -> Any:
        """What is known about the user that matters for `query`: ranked memories and a context block."""
        found = await call(ctx, lambda m: m.retrieve(user_id, query, top_k))
        return {"context": found["context"], "items": found["items"]}

    @server.tool()
    async def list_memories(
        user_id: str, memory_type: str | None = None, limit: int = 100, ctx: Context | None = None
    ) -> Any:
        """The user's active memories, newest first (optionally one type: observation, insight, customized)."""
        types = [memory_type] if memory_type else None
        return {"memories": await call(ctx, lambda m: m.list_memories(user_id, types, limit=limit))}

    @server.tool()
    async def update_memory(
        user_id: str, memory_id: str, content: str | None = None, importance: float | None = None,
        ctx: Context | None = None,
    ) -> Any:  # fmt: skip
        """Change a memory's content or importance; its history keeps what it was."""
        fields = {k: v for k, v in {"content": content, "importance": importance}.items() if v is not None}
        return await call(ctx, lambda m: m.update_memory(user_id, memory_id, **fields))

    @server.tool()
    async def delete_memory(user_id: str, memory_id: str, ctx: Context | None = None) -> Any:
        """Forget one memory (soft delete: its history remains)."""
        return {"deleted": await call(ctx, lambda m: m.delete_memory(user_id, memory_id))}

    @server.tool()
    async def history(user_id: str, memory_id: str, ctx: Context | None = None) -> Any:
        """Every change of one memory: add, update, expire, delete, with before and after."""
        return {"events": await call(ctx, lambda m: m.history(user_id, memory_id))}

    @server.tool()
    async def profile(user_id: str, ctx: Context | None = None) -> Any:
        """The user's profile: preferences, facts, traits and goals, each entry citing its memories."""
        return await call(ctx, lambda m: m.profile(user_id))

    @server.resource("memscope://users/{user_id}/memories", mime_type="application/json")
    async def user_memories(user_id: str, ctx: Context | None = None) -> str:
        """A user's active memories as JSON."""
        return json.dumps(await call(ctx, lambda m: m.list_memories(user_id)), ensure_ascii=False)

    return server


def _plain(value: Any) -> Any:
    """Response models as JSON-ready data."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


def mcp_auth(app: Any, keys: KeyRing | None) -> Any:
    """ASGI wrapper: an MCP HTTP request without a known API key gets 401 before the SDK sees it."""

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and keys is not None:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            auth = headers.get("authorization", "")
            key = auth[7:].strip() if auth.lower().startswith("bearer ") else headers.get("x-api-key", "")
            if keys.lookup(key) is None:
                body = json.dumps({"code": "unauthorized", "message": "no known API key was sent",
                                   "fix": "send your API key as 'Authorization: Bearer KEY'"}).encode()  # fmt: skip
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json")]})  # fmt: skip
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded
