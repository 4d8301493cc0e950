"""The memory browser at /ui: server-rendered HTML (Jinja2) and the vendored htmx, behind the API keys.

The key is entered once and kept in an HttpOnly, SameSite=Strict cookie; every page acts through the
same ScopedMemory as the REST API, so a tenant's key shows only that tenant's users.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from memscope.models import MemoryStatus, MemoryType
from memscope.server.auth import COOKIE, principal_of
from memscope.server.errors import ApiError, to_api_error
from memscope.server.scoped import NotFound, ScopedMemory

__all__ = ["install_ui"]

BASE = "/ui"
HERE = Path(__file__).parent
_env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
UserId = Annotated[str, Query(min_length=1, max_length=256)]


def _render(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(base=BASE, **values), status_code=status)


def _view(request: Request) -> ScopedMemory | None:
    try:
        view = ScopedMemory(request.app.state.memory, principal_of(request, cookie=True))
    except ApiError:
        return None
    request.state.scoped = view
    return view


def _failure(request: Request, exc: Exception) -> HTMLResponse:
    error = to_api_error(exc)
    if error.status >= 500:
        return _render("home.html", error.status, error="the server could not do that; see its log", principal=None)
    view = getattr(request.state, "scoped", None)
    text = view.clean(error.message) if view else error.message
    return HTMLResponse(f'<p class="error">{_env.from_string("{{ t }}").render(t=text)}</p>', status_code=error.status)


def _filtered(view: ScopedMemory, user_id: str, q: str, memory_type: str, status: str) -> list[Any]:
    types = [memory_type] if memory_type else None
    found = view.list_memories(user_id, types, (status or "active",), limit=500)
    words = q.casefold().split()
    return [n for n in found if all(w in n.content.casefold() for w in words)]


def install_ui(app: FastAPI) -> None:
    """Add /ui and its static files to the app."""
    router = APIRouter(prefix=BASE, include_in_schema=False)

    @router.get("")
    @router.get("/")
    def home(request: Request) -> Response:
        view = _view(request)
        if view is None:
            return _render("login.html", principal=None)
        return _render("home.html", principal=view.principal.label)

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        key = (form.get("key") or [""])[0].strip()
        keys = request.app.state.keys
        if keys is not None and keys.lookup(key) is None:
            return _render("login.html", 401, error="that key is not known to this server", principal=None)
        response = RedirectResponse(f"{BASE}/", status_code=303)
        response.set_cookie(COOKIE, key, httponly=True, samesite="strict", path=BASE,
                            secure=request.url.scheme == "https")  # fmt: skip
        return response

    @router.post("/logout")
    def logout() -> Response:
        response = RedirectResponse(f"{BASE}/", status_code=303)
        response.delete_cookie(COOKIE, path=BASE)
        return response

    @router.get("/user")
    def user(request: Request, user_id: UserId, q: str = "") -> Response:
        view = _view(request)
        if view is None:
            return RedirectResponse(f"{BASE}/", status_code=303)
        try:
            values: dict[str, Any] = {
                "memories": _filtered(view, user_id, q, "", "active"),
                "stats": view.stats(user_id),
                "pending": view.list_messages(user_id, pending=True, limit=50),
                "jobs": view.jobs(user_id)[:20],
                "profile": view.profile(user_id),
                "beliefs": view.beliefs(user_id),
            }
        except Exception as exc:
            return _render("home.html", to_api_error(exc).status, error=view.clean(to_api_error(exc).message),
                           principal=view.principal.label)  # fmt: skip
        types, statuses = [t.value for t in MemoryType], [s.value for s in MemoryStatus]
        return _render("user.html", principal=view.principal.label, user_id=user_id, q=q, types=types,
                       statuses=statuses, **values)  # fmt: skip

    @router.get("/memories")
    def memories(request: Request, user_id: UserId, q: str = "", memory_type: str = "", status: str = "") -> Response:
        view = _view(request)
        if view is None:
            return HTMLResponse('<p class="error">signed out</p>', status_code=401)
        try:
            found = _filtered(view, user_id, q, memory_type, status)
        except Exception as exc:
            return _failure(request, exc)
        return _render("_memories.html", memories=found, user_id=user_id)

    @router.get("/memory/{memory_id}")
    def memory(request: Request, memory_id: str, user_id: UserId) -> Response:
        view = _view(request)
        if view is None:
            return HTMLResponse('<p class="error">signed out</p>', status_code=401)
        try:
            return _detail(view, user_id, memory_id)
        except Exception as exc:
            return _failure(request, exc)

    @router.delete("/memory/{memory_id}")
    def delete(request: Request, memory_id: str, user_id: UserId) -> Response:
        view = _view(request)
        if view is None:
            return HTMLResponse('<p class="error">signed out</p>', status_code=401)
        try:
            view.delete_memory(user_id, memory_id)
            response = _detail(view, user_id, memory_id)
        except Exception as exc:
            return _failure(request, exc)
        response.headers["HX-Trigger"] = "memories-changed"
        return response

    app.include_router(router)
    app.mount(f"{BASE}/static", StaticFiles(directory=HERE / "static"), name="ui-static")


def _detail(view: ScopedMemory, user_id: str, memory_id: str) -> HTMLResponse:
    node = view.get_memory(user_id, memory_id)
    source_memories = []
    for source_id in node.source_memory_ids[:20]:
        try:
            source_memories.append(view.get_memory(user_id, source_id))
        except NotFound:
            continue
    return _render(
        "_detail.html",
        memory=node,
        user_id=user_id,
        sources=view.get_messages(user_id, node.source_message_ids[:50]),
        source_memories=source_memories,
        events=view.history(user_id, memory_id),
    )
