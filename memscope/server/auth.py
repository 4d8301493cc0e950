"""Who is calling: the API key from `Authorization: Bearer KEY`, `X-API-Key`, or the browser's cookie."""

from __future__ import annotations

from fastapi import Request

from memscope.server.errors import ApiError
from memscope.server.keys import KeyRing, Principal
from memscope.server.scoped import ScopedMemory

__all__ = ["COOKIE", "presented_key", "principal_of", "scoped"]

COOKIE = "memscope_key"
FIX_KEY = "send your API key as 'Authorization: Bearer KEY' (`memscope keygen` makes one; the operator adds its hash)"


def presented_key(request: Request, cookie: bool = False) -> str | None:
    """The key a request carries, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if request.headers.get("x-api-key"):
        return request.headers["x-api-key"].strip()
    return request.cookies.get(COOKIE) if cookie else None


def principal_of(request: Request, cookie: bool = False) -> Principal:
    """The caller's principal; 401 without a known key."""
    keys: KeyRing | None = request.app.state.keys
    if keys is None:  # --no-auth on a loopback address: the local operator is admin
        return Principal(None)
    key = presented_key(request, cookie)
    found = keys.lookup(key)
    if found is None:
        message = "this API key is not known to the server" if key else "no API key was sent"
        raise ApiError(401, "unauthorized", message, FIX_KEY)
    return found


def scoped(request: Request) -> ScopedMemory:
    """FastAPI dependency: the memory API as the caller's key may see it."""
    view = ScopedMemory(request.app.state.memory, principal_of(request))
    request.state.scoped = view  # errors take the tenant prefix out of their messages
    return view
