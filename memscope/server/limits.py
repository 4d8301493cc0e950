"""A request body limit, enforced before the body is parsed (Content-Length and the bytes actually sent)."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["BodyLimit", "BodyTooLarge"]

Scope = dict[str, Any]


class BodyLimit:
    """ASGI middleware: a body larger than `max_bytes` gets 413 with a JSON error; nothing is stored."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps({
            "code": "too_large",
            "message": f"the request body is larger than the server's limit of {self.max_bytes:,} bytes",
            "fix": "send fewer or shorter messages per request (or raise server.max_body_bytes)",
        }).encode()  # fmt: skip
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    """The body passed the limit while it was being read."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the request body is larger than the server's limit of {max_bytes:,} bytes")
