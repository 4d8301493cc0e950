"""The FastAPI application of `memscope serve`: REST under /v1, /healthz, /readyz, OpenAPI, /ui, /mcp."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from memscope import __version__
from memscope.api import MemoryScope
from memscope.config import Settings
from memscope.server.docs_page import install_docs
from memscope.server.errors import install_error_handlers
from memscope.server.keys import KeyRing
from memscope.server.limits import BodyLimit
from memscope.server.routes import router
from memscope.server.schemas import HealthOut

__all__ = ["create_app", "is_loopback"]


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(
    memory: MemoryScope, keys: KeyRing | None, *, mcp: bool = True, ui: bool = True, own_memory: bool = True
) -> FastAPI:
    """The app over one MemoryScope (embedded or Celery + Elasticsearch: whatever its config says).

    `keys` None means no authentication (the caller checked it is bound to loopback only).
    """
    settings: Settings = memory.settings
    mcp_app = None
    if mcp:
        from mcp.server.transport_security import TransportSecuritySettings

        from memscope.server.mcp import build_mcp, mcp_auth

        mcp_server = build_mcp(lambda: memory, keys)
        no_rebinding_check = TransportSecuritySettings(enable_dns_rebinding_protection=False)  # keys guard it
        mcp_app = mcp_server.streamable_http_app(
            streamable_http_path="/", stateless_http=True, transport_security=no_rebinding_check
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if mcp_app is not None:
            async with mcp_server.session_manager.run():
                yield
        else:
            yield
        if own_memory:
            await run_in_threadpool(memory.close)

    app = FastAPI(
        title="memscope",
        version=__version__,
        description="Long-term memory for LLM chatbots. Send your API key as `Authorization: Bearer KEY`.",
        lifespan=lifespan,
        docs_url=None,  # /docs is served from the installed swagger-ui-bundle below (FastAPI's loads a CDN)
        redoc_url=None,
    )
    install_docs(app)
    app.state.memory, app.state.keys = memory, keys
    install_error_handlers(app)
    app.include_router(router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> HealthOut:
        """The process is up."""
        return HealthOut(status="ok")

    @app.get("/readyz", tags=["health"], responses={503: {"model": HealthOut}})
    def readyz() -> Any:
        """The store, Redis (Celery mode) and the model server answer; 503 naming what does not."""
        from memscope.server.health import readiness

        checks = readiness(memory, float(settings.server.ready_timeout_s))
        ok = all(not v.startswith("unavailable") for v in checks.values())
        body = HealthOut(status="ok" if ok else "unavailable", checks=checks)
        return body if ok else JSONResponse(body.model_dump(), status_code=503)

    if ui:
        from memscope.server.ui import install_ui

        install_ui(app)
    if mcp_app is not None:
        app.mount("/mcp", mcp_auth(mcp_app, keys))
    app.add_middleware(BodyLimit, max_bytes=settings.server.max_body_bytes)
    return app
