"""The REST routes under /v1: messages, retrieval, memories, users and jobs. Every route acts through
the caller's ScopedMemory; user ids travel in the body or the query string (they may contain '/')."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.routing import APIRoute

from memscope.jobs.base import CONSOLIDATE, REFLECT
from memscope.server.auth import scoped
from memscope.server.errors import ApiError, answer
from memscope.server.schemas import (
    AddMemoryIn,
    AddMessagesIn,
    ContextOut,
    DeletedOut,
    ErrorOut,
    EventOut,
    JobIn,
    JobOut,
    JobRef,
    JobsOut,
    MemoriesOut,
    MemoryOut,
    MessagesOut,
    ProfileOut,
    RetrieveIn,
    RetrieveOut,
    StatsOut,
    UpdateMemoryIn,
)
from memscope.server.scoped import ScopedMemory

__all__ = ["SafeRoute", "router"]


class SafeRoute(APIRoute):
    """A route whose errors become JSON {code, message, fix} here, so no traceback reaches a log or client."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def safe(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                if type(exc).__module__.startswith(("fastapi", "starlette")):
                    raise  # request validation and HTTP errors: the app's handlers answer them
                return answer(request, exc)

        return safe


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in {
        401: "No or unknown API key.",
        404: "No such memory, job or route for this key.",
        409: "A job failed, or no model is configured.",
        413: "The body is larger than the server's limit.",
        422: "Invalid input; the message says what to fix.",
        503: "A dependency (store, model, Redis) is unavailable.",
    }.items()
}
router = APIRouter(prefix="/v1", route_class=SafeRoute, responses=ERRORS)
Scoped = Annotated[ScopedMemory, Depends(scoped)]
UserQuery = Annotated[str, Query(min_length=1, max_length=256, description="Your id of the user.")]
AgentQuery = Annotated[str | None, Query(max_length=256)]
MEMORY_ID = "Path parameter: the memory's id."


# -- messages ------------------------------------------------------------------------------------
@router.post("/messages", status_code=201, tags=["messages"])
def add_messages(body: AddMessagesIn, memory: Scoped) -> MessagesOut:
    """Store messages durably; consolidation is queued in the background."""
    batch = [m if isinstance(m, str) else m.model_dump(exclude_none=True, mode="json") for m in body.messages]
    return MessagesOut(messages=memory.add_messages(body.user_id, batch, body.session_id, body.agent_id))


@router.get("/messages", tags=["messages"])
def list_messages(
    memory: Scoped,
    user_id: UserQuery,
    pending: bool | None = None,
    session_id: Annotated[str | None, Query(max_length=256)] = None,
    agent_id: AgentQuery = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> MessagesOut:
    """The user's messages, oldest first; `pending=true` for those not consolidated yet."""
    return MessagesOut(messages=memory.list_messages(user_id, pending, session_id, agent_id, limit))


@router.get("/messages/pending", tags=["messages"])
def pending_messages(
    memory: Scoped, user_id: UserQuery, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000
) -> MessagesOut:
    """The user's messages still waiting for consolidation."""
    return MessagesOut(messages=memory.list_messages(user_id, pending=True, limit=limit))


# -- retrieval -----------------------------------------------------------------------------------
@router.post("/retrieve", tags=["retrieval"])
def retrieve(body: RetrieveIn, memory: Scoped) -> RetrieveOut:
    """Ranked memories and raw turns for a query, plus the user's recent pending messages (no model call)."""
    return memory.retrieve(
        body.user_id, body.query, body.top_k, body.agent_id, body.memory_types, body.timezone, body.now
    )


@router.post("/context", tags=["retrieval"])
def context(body: RetrieveIn, memory: Scoped) -> ContextOut:
    """The retrieval as one block of text, ready for a system prompt."""
    found = memory.retrieve(
        body.user_id, body.query, body.top_k, body.agent_id, body.memory_types, body.timezone, body.now
    )
    return ContextOut(context=found.context)


# -- memories ------------------------------------------------------------------------------------
@router.get("/memories", tags=["memories"])
def list_memories(
    memory: Scoped,
    user_id: UserQuery,
    memory_type: Annotated[list[str] | None, Query(max_length=10)] = None,
    status: Annotated[list[str] | None, Query(max_length=3)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    agent_id: AgentQuery = None,
) -> MemoriesOut:
    """The user's memories, newest first; filter by type (repeatable) and status (default active)."""
    found = memory.list_memories(user_id, memory_type, tuple(status or ("active",)), limit, offset, agent_id)
    return MemoriesOut(memories=found)


@router.post("/memories", status_code=201, tags=["memories"])
def add_memory(body: AddMemoryIn, memory: Scoped) -> MemoryOut:
    """Add a memory directly (an app's own fact about the user)."""
    fields = body.model_dump(exclude={"user_id", "content"})
    return memory.add_memory(body.user_id, body.content, **fields)


@router.get("/memories/{memory_id}", tags=["memories"])
def get_memory(memory_id: str, memory: Scoped, user_id: UserQuery) -> MemoryOut:
    """One memory with its provenance."""
    return memory.get_memory(user_id, memory_id)


@router.patch("/memories/{memory_id}", tags=["memories"])
def update_memory(memory_id: str, body: UpdateMemoryIn, memory: Scoped) -> MemoryOut:
    """Change a memory's content, importance, metadata or key; the event log keeps what was."""
    fields = body.model_dump(exclude={"user_id"}, exclude_unset=True)
    if not fields:
        raise ApiError(422, "invalid_input", "nothing to change", "give content, importance, metadata or key")
    return memory.update_memory(body.user_id, memory_id, **fields)


@router.delete("/memories/{memory_id}", tags=["memories"])
def delete_memory(memory_id: str, memory: Scoped, user_id: UserQuery) -> DeletedOut:
    """Delete a memory (soft: its history keeps what it was)."""
    return DeletedOut(deleted=memory.delete_memory(user_id, memory_id))


@router.get("/memories/{memory_id}/history", tags=["memories"])
def memory_history(memory_id: str, memory: Scoped, user_id: UserQuery) -> list[EventOut]:
    """Every change of the memory, oldest first: add, update, expire, delete, with before and after."""
    return memory.history(user_id, memory_id)


@router.get("/profile", tags=["memories"])
def profile(memory: Scoped, user_id: UserQuery, agent_id: str | None = None) -> ProfileOut:
    """The user's profile (preferences, facts, traits, goals), each entry citing its memories."""
    return memory.profile(user_id, agent_id)


@router.get("/beliefs", tags=["memories"])
def beliefs(memory: Scoped, user_id: UserQuery, agent_id: str | None = None) -> list[MemoryOut]:
    """The user's actionable beliefs for the configured business_description, each citing its memories."""
    return memory.beliefs(user_id, agent_id)


# -- users ---------------------------------------------------------------------------------------
@router.get("/users/stats", tags=["users"])
def user_stats(memory: Scoped, user_id: UserQuery) -> StatsOut:
    """Pending and total messages, memories by status and type, failed jobs."""
    return memory.stats(user_id)


@router.delete("/users", tags=["users"])
def delete_user(memory: Scoped, user_id: UserQuery) -> DeletedOut:
    """Erase the user: messages, memories and their history."""
    return DeletedOut(records=memory.delete_user(user_id))


# -- jobs ----------------------------------------------------------------------------------------
def _queue(operation: str, body: JobIn, memory: ScopedMemory, response: Response) -> JobOut | JobRef:
    result = memory.queue(operation, body.user_id, body.agent_id, body.wait, body.timeout_s)
    if isinstance(result, str):
        response.status_code = 202
        return JobRef(job_id=result)
    return result


@router.post("/jobs/consolidate", tags=["jobs"], status_code=200, responses={202: {"model": JobRef}})
def consolidate(body: JobIn, memory: Scoped, response: Response) -> JobOut | JobRef:
    """Queue consolidation of the user's pending messages (202 with the job id; 200 and the record with wait)."""
    return _queue(CONSOLIDATE, body, memory, response)


@router.post("/jobs/reflect", tags=["jobs"], status_code=200, responses={202: {"model": JobRef}})
def reflect(body: JobIn, memory: Scoped, response: Response) -> JobOut | JobRef:
    """Queue reflection: insights from observations, long-range contradictions."""
    return _queue(REFLECT, body, memory, response)


@router.get("/jobs", tags=["jobs"])
def jobs_status(
    memory: Scoped, user_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None
) -> JobsOut:
    """Recent jobs, newest first: of one user, or of every user this key may see."""
    return JobsOut(jobs=memory.jobs(user_id))


@router.get("/jobs/failed", tags=["jobs"])
def jobs_failed(memory: Scoped) -> JobsOut:
    """Failed jobs of this key's users, newest first, with their errors."""
    return JobsOut(jobs=memory.jobs(state="failed"))


@router.get("/jobs/{job_id}", tags=["jobs"])
def job_status(job_id: str, memory: Scoped) -> JobOut:
    """One job: state, error, and its run summary (model calls, tokens)."""
    return memory.job(job_id)


@router.post("/jobs/{job_id}/retry", tags=["jobs"], status_code=202)
def job_retry(job_id: str, memory: Scoped) -> JobRef:
    """Queue a failed job's work again."""
    return JobRef(job_id=memory.retry(job_id))
