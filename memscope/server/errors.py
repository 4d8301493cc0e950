"""Errors as JSON `{code, message, fix}`: memscope's exceptions mapped to HTTP statuses at one boundary.

No stack trace ever reaches a client; an unexpected error is logged (scrubbed of known secrets) with
a request id that the client's answer carries.
"""

from __future__ import annotations

import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from memscope.errors import (
    ConfigError,
    EmbeddingMismatch,
    JobError,
    MemscopeError,
    ModelUnavailable,
    NoModelConfigured,
    StoreUnavailable,
    ValidationError,
)
from memscope.redact import scrub, scrubbed_logger
from memscope.server.limits import BodyTooLarge
from memscope.server.scoped import NotFound

__all__ = ["ApiError", "error_body", "install_error_handlers"]

log = scrubbed_logger("memscope.server")
FIX_INPUT = "change the request as the message says and send it again"


class ApiError(Exception):
    """An error the server answers with as it is."""

    def __init__(self, status: int, code: str, message: str, fix: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fix = status, code, message, fix


def error_body(code: str, message: str, fix: str) -> dict[str, str]:
    """The JSON of every error."""
    return {"code": code, "message": scrub(message), "fix": fix}


def _clean(request: Request, text: str) -> str:
    scoped = getattr(request.state, "scoped", None)
    return scoped.clean(text) if scoped is not None else text


def to_api_error(exc: Exception) -> ApiError:
    """memscope's exception as the status, code and fix a client gets."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, BodyTooLarge):
        return ApiError(413, "too_large", str(exc), "send fewer or shorter messages per request")
    if isinstance(exc, NotFound):
        return ApiError(404, "not_found", str(exc), "check the id and the user_id (ids are per user and per tenant)")
    if isinstance(exc, ValidationError):
        return ApiError(422, "invalid_input", str(exc), FIX_INPUT)
    if isinstance(exc, NoModelConfigured):
        return ApiError(409, "no_model", str(exc), "configure an LLM on the server (llm.backend, OPENAI_API_KEY)")
    if isinstance(exc, JobError):
        return ApiError(409, "job_error", str(exc), "check GET /v1/jobs/failed; retry with POST /v1/jobs/{id}/retry")
    if isinstance(exc, StoreUnavailable | ModelUnavailable):
        return ApiError(503, "unavailable", str(exc), "retry later; GET /readyz shows which dependency is down")
    if isinstance(exc, EmbeddingMismatch | ConfigError):
        return ApiError(503, "misconfigured", str(exc), "fix the server's configuration (memscope config check)")
    return ApiError(500, "internal_error", "", "retry; if it persists, report the request id to the operator")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error as JSON {code, message, fix}."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors()[:10]:
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        fix = "see /docs for the request's schema and fix the fields named"
        body = error_body("invalid_request", "; ".join(problems), fix)
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        fix = {404: "see /docs for the routes", 405: "see /docs for the methods of this route"}.get(
            exc.status_code, "see /docs"
        )
        return JSONResponse(error_body(code, str(exc.detail), fix), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))  # fmt: skip

    @app.exception_handler(Exception)
    async def any_error(request: Request, exc: Exception) -> JSONResponse:
        return answer(request, exc)


def answer(request: Request, exc: Exception) -> JSONResponse:
    """The JSON response for an exception raised by a route."""
    error = to_api_error(exc)
    if error.status >= 500 and not isinstance(exc, MemscopeError | ApiError):
        request_id = uuid.uuid4().hex[:12]
        log.error("request %s %s failed (request id %s): %s: %s", request.method, request.url.path, request_id,
                  type(exc).__name__, exc, exc_info=exc)  # fmt: skip
        error.message = f"an internal error occurred (request id {request_id})"
    return JSONResponse(error_body(error.code, _clean(request, error.message), error.fix), status_code=error.status)
