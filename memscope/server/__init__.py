"""memscope over the network: the REST API (`memscope serve`), MCP (`memscope mcp`) and the memory browser.

Needs the `server` extra: `pip install 'memscope-ai[server]'`. Every request goes through one
`ScopedMemory`, which binds the caller's API key to its tenant namespace, so no path can reach
another tenant's users.
"""

from __future__ import annotations

__all__ = ["create_app"]


def create_app(*args, **kwargs):  # type: ignore[no-untyped-def]
    """The FastAPI application (imported lazily: FastAPI is an optional dependency)."""
    from memscope.server.app import create_app as build

    return build(*args, **kwargs)
