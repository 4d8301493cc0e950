"""MemoryScope and AsyncMemoryScope: the Python API a chatbot calls on every turn."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from memscope.config import Settings
from memscope.engine import RunReport
from memscope.errors import JobError, NoModelConfigured, ValidationError
from memscope.jobs.base import CONSOLIDATE, REFLECT, Dispatcher, JobRecord
from memscope.limits import check_metadata, check_text
from memscope.messages import EXTERNAL_ID, to_messages
from memscope.models import MemoryEvent, MemoryNode, MemoryStatus, Message, check_user_id
from memscope.profile import Profile
from memscope.retrieval import RetrievedItem
from memscope.runtime import Runtime
from memscope.stores.base import MessageFilter

if TYPE_CHECKING:
    from memscope.sessions import Session

__all__ = ["AsyncMemoryScope", "MemoryScope", "RetrievalResult"]

log = logging.getLogger("memscope")
ConfigSource = Settings | str | Path | dict[str, Any] | None
MAX_COUNT = 100_000  # the most items one call returns (limit, top_k)


@dataclass
class RetrievalResult:
    """What retrieval found: ranked items (memories and raw turns), pending messages, a context block."""

    items: list[RetrievedItem]
    pending_messages: list[Message]
    context: str
    report: RunReport
    query_time: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    profile: Profile | None = None  # with no query: the user's profile
    segments: list[MemoryNode] = field(default_factory=list)  # with no query: the hottest mid-term segments
    beliefs: list[MemoryNode] = field(default_factory=list)  # when retrieval.include_beliefs is on

    def __iter__(self) -> Iterator[RetrievedItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def _make_dispatcher(runtime: Runtime, start_timers: bool) -> Dispatcher:
    if runtime.settings.jobs.backend == "celery":
        from memscope.jobs.celery_dispatch import CeleryDispatcher

        return CeleryDispatcher(runtime)
    from memscope.jobs.local import LocalDispatcher

    return LocalDispatcher(runtime, start_timers=start_timers)


def _count(value: Any, what: str, *, allow_none: bool = False, most: int = MAX_COUNT) -> None:
    """A whole number from 1 to `most` (or None when allowed); else ValidationError saying so."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise ValidationError(f"{what} must be a whole number from 1 to {most:,}, got {value!r}")


ACCESS_FLUSH_S = 5.0  # longest a memory read waits for queued access counts (see memscope.access)


class MemoryScope:
    """Long-term memory for a chatbot. With no argument: `MEMSCOPE_CONFIG`'s file, else the embedded default."""

    def __init__(self, config: ConfigSource = None, *, runtime: Runtime | None = None, background: bool = True) -> None:
        self.runtime = runtime or Runtime(config)
        self.settings = self.runtime.settings
        self.jobs: Dispatcher = _make_dispatcher(self.runtime, start_timers=background)
        self._closed = False

    # -- conversation ----------------------------------------------------------------------------
    def add_messages(
        self,
        user_id: str,
        messages: str | Mapping[str, Any] | Message | Iterable[str | Mapping[str, Any] | Message],
        session_id: str | None = None,
        agent_id: str | None = None,
    ) -> list[Message]:
        """Store messages durably and return at once; consolidation is queued in the background."""
        user_id = check_user_id(user_id)
        given: set[str] = set()
        batch = to_messages(user_id, messages, session_id=session_id, agent_id=agent_id, given_ids=given)
        if not batch:
            return []
        stored = self._already_stored(user_id, batch) if given else {}  # fresh ids cannot be stored yet
        self.runtime.store.add_messages(batch)
        batch = [stored.get(m.id, m) for m in batch]  # a re-sent id: what the store keeps, never an echo
        if self.runtime.has_llm:
            try:
                self.jobs.submit(CONSOLIDATE, user_id, agent_id)
            except Exception as exc:  # the messages are stored; the periodic sweep will queue them
                log.warning("could not queue consolidation for %r (%s); the sweep will retry", user_id, exc)
        return batch

    def _already_stored(self, user_id: str, batch: list[Message]) -> dict[str, Message]:
        """The batch's messages the store already holds; a re-sent id with other content is a ValidationError."""
        seen: dict[str, Message] = {}
        for m in batch:
            seen.setdefault(m.id, m)
        ids = list(seen)
        stored = {m.id: m for m in self.runtime.store.list_messages(user_id, MessageFilter(ids=ids), limit=len(ids))}
        first = {**seen, **stored}
        clashes = [m for m in batch if (first[m.id].role, first[m.id].content) != (m.role, m.content)]
        if clashes:
            shown = [m.metadata.get(EXTERNAL_ID, m.id) for m in clashes[:5]]
            raise ValidationError(
                f"message id(s) {shown} were already given with other content; nothing was stored."
                " Give each new message a new id (re-sending the same message is fine)"
            )
        return stored

    def list_messages(
        self,
        user_id: str,
        pending: bool | None = None,
        session_id: str | None = None,
        agent_id: str | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        """The user's messages, oldest first; `pending=True` for those not consolidated yet."""
        user_id = check_user_id(user_id)
        _count(limit, "limit", allow_none=True)
        return self.runtime.store.list_messages(
            user_id, MessageFilter(agent_id=agent_id, session_id=session_id, pending=pending), limit=limit
        )

    # -- retrieval -------------------------------------------------------------------------------
    def retrieve(
        self,
        user_id: str,
        query: str | None = None,
        top_k: int | None = None,
        *,
        agent_id: str | None = None,
        memory_types: Sequence[str] | None = None,
        timezone: str | None = None,
        now: datetime | None = None,
        max_tokens: int | None = None,
    ) -> RetrievalResult:
        """What memscope knows about the user that matters for `query` (inline, no LLM call).

        With no query (None or blank): the general context, the profile, the hottest segments and
        the recent pending turns. `max_tokens` (default retrieval.max_tokens) bounds the context block.
        """
        user_id = check_user_id(user_id)
        _count(max_tokens, "max_tokens", allow_none=True, most=10**7)
        r = self.settings.retrieval
        common: dict[str, Any] = {
            "user_id": user_id,
            "agent_id": agent_id,
            "timezone": timezone,
            "pending_limit": r.pending_limit if r.include_pending else 0,
            "max_tokens": max_tokens or r.max_tokens,
            "include_beliefs": r.include_beliefs,
        }
        if query is None or (isinstance(query, str) and not query.strip()):
            general = self.runtime.run("general_context", hot_segments=r.hot_segments, **common)
            return RetrievalResult(
                items=[],
                pending_messages=list(general["pending_messages"]),
                context=str(general["context_text"]),
                report=general.report,
                profile=general["profile"],
                segments=list(general["segments"]),
                beliefs=list(general["beliefs"]),
            )
        check_text(query, "query")
        _count(top_k, "top_k", allow_none=True)
        result = self.runtime.run(
            "retrieve_memory",
            query=query,
            top_k=top_k or r.top_k,
            memory_types=list(memory_types) if memory_types else None,
            now=now,
            candidates=r.candidates,
            **common,
        )
        return RetrievalResult(
            items=list(result["results"]),
            pending_messages=list(result["pending_messages"]),
            context=str(result["context_text"] or ""),
            report=result.report,
            query_time=result["query_time"],
            beliefs=list(result.outputs.get("beliefs") or []),  # an override may leave beliefs out
        )

    def context(self, user_id: str, query: str | None = None, **kwargs: Any) -> str:
        """A block for a system prompt: memories relevant to `query`, or with no query the general
        context (profile, beliefs when enabled, hottest segments, pending turns)."""
        return self.retrieve(user_id, query, **kwargs).context

    def profile(self, user_id: str, agent_id: str | None = None) -> Profile:
        """The user's profile (one agent's; default agent when None): preferences, facts, traits, goals."""
        user_id = check_user_id(user_id)
        profile: Profile = self.runtime.run("get_profile", user_id=user_id, agent_id=agent_id)["profile"]
        return profile

    def beliefs(self, user_id: str, agent_id: str | None = None) -> list[MemoryNode]:
        """The user's active beliefs for the configured business_description, each citing its memories."""
        user_id = check_user_id(user_id)
        return list(self.runtime.run("get_beliefs", user_id=user_id, agent_id=agent_id)["beliefs"])

    def chat(self, user_id: str, message: str, session_id: str | None = None, agent_id: str | None = None) -> str:
        """Answer `message` with memory, then remember both turns."""
        user_id = check_user_id(user_id)
        llm = self.runtime.llm
        if llm is None:
            raise NoModelConfigured(
                "chat needs an LLM: set OPENAI_API_KEY (and OPENAI_BASE_URL for a compatible server) "
                "or DASHSCOPE_API_KEY, or llm.backend in the config"
            )
        from memscope.sessions import Session

        general = self.context(user_id, agent_id=agent_id)
        memory = self.context(user_id, message, agent_id=agent_id)
        window = self.settings.tiers.short_term_turns  # the short-term tier: the last N turns
        recent = MessageFilter(agent_id=agent_id, session_id=session_id)
        history = self.runtime.store.list_messages(user_id, recent, limit=window, newest_first=True) if window else []
        history.reverse()
        turns = Session.from_messages([m for m in history if m.role.value in ("user", "assistant")])
        system = "You are a helpful assistant with long-term memory of this user."
        system = "\n".join(part for part in (system, general, memory) if part)
        prompt: list[dict[str, Any]] = [{"role": "system", "content": system}, *turns.render("openai")]
        prompt.append({"role": "user", "content": message})
        answer = llm.chat(prompt, tag="chat", temperature=0.7).text
        self.add_messages(
            user_id,
            [{"role": "user", "content": message}, {"role": "assistant", "content": answer}],
            session_id=session_id,
            agent_id=agent_id,
        )
        return answer

    # -- background work -------------------------------------------------------------------------
    @overload
    def consolidate(
        self, user_id: str, wait: Literal[False] = False, agent_id: str | None = None, timeout: float | None = None
    ) -> str: ...
    @overload
    def consolidate(
        self, user_id: str, wait: Literal[True], agent_id: str | None = None, timeout: float | None = None
    ) -> JobRecord: ...
    @overload
    def consolidate(
        self, user_id: str, wait: bool, agent_id: str | None = None, timeout: float | None = None
    ) -> str | JobRecord: ...
    def consolidate(
        self, user_id: str, wait: bool = False, agent_id: str | None = None, timeout: float | None = None
    ) -> JobRecord | str:
        """Queue consolidation of the user's pending messages; `wait` blocks, returns the record, raises JobError
        if it failed."""
        return self._queue(CONSOLIDATE, user_id, agent_id, wait, timeout)

    @overload
    def reflect(
        self, user_id: str, wait: Literal[False] = False, agent_id: str | None = None, timeout: float | None = None
    ) -> str: ...
    @overload
    def reflect(
        self, user_id: str, wait: Literal[True], agent_id: str | None = None, timeout: float | None = None
    ) -> JobRecord: ...
    @overload
    def reflect(
        self, user_id: str, wait: bool, agent_id: str | None = None, timeout: float | None = None
    ) -> str | JobRecord: ...
    def reflect(
        self, user_id: str, wait: bool = False, agent_id: str | None = None, timeout: float | None = None
    ) -> JobRecord | str:
        """Queue reflection (insights, long-range contradictions); with `wait`, block and return the record."""
        return self._queue(REFLECT, user_id, agent_id, wait, timeout)

    def _queue(self, op: str, user_id: str, agent_id: str | None, wait: bool, timeout: float | None) -> JobRecord | str:
        user_id = check_user_id(user_id)
        job_id = self.jobs.submit(op, user_id, agent_id)
        if not wait:
            return job_id
        record = self.jobs.wait(job_id, timeout=timeout)
        if record.state in ("queued", "running"):
            raise JobError(
                f"{op} for user {user_id!r} is still {record.state} after {timeout}s (job {job_id});"
                " it carries on in the background: wait again, or check jobs.status"
            )
        if record.state in ("failed", "lost"):
            raise JobError(f"{op} for user {user_id!r} failed: {record.error} (messages stay pending)")
        return record

    # -- memories --------------------------------------------------------------------------------
    def list_memories(
        self,
        user_id: str,
        memory_types: Sequence[str] | None = None,
        statuses: Sequence[str] = ("active",),
        limit: int = 100,
        offset: int = 0,
        agent_id: str | None = None,
    ) -> list[MemoryNode]:
        """The user's memories, newest first."""
        user_id = check_user_id(user_id)
        _count(limit, "limit")
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= 10**9:
            raise ValidationError(f"offset must be a whole number from 0, got {offset!r}")
        self._access_written()
        result = self.runtime.run(
            "list_memory",
            user_id=user_id,
            memory_types=list(memory_types) if memory_types else None,
            statuses=list(statuses),
            limit=limit,
            offset=offset,
            agent_id=agent_id,
        )
        return list(result["memories"])

    def get_memory(self, user_id: str, memory_id: str) -> MemoryNode | None:
        """One memory of the user, or None."""
        user_id = check_user_id(user_id)
        self._access_written()
        return self.runtime.store.get_memory(user_id, memory_id)

    def _access_written(self) -> None:
        """Read your writes: the access counts retrievals queued are written before memories are read back."""
        access = self.runtime.resources.access
        if access is not None:
            access.flush(timeout=ACCESS_FLUSH_S)

    def add_memory(
        self,
        user_id: str,
        content: str,
        memory_type: str = "customized",
        *,
        key: str | None = None,
        importance: float = 0.5,
        metadata: dict[str, Any] | None = None,
        time: str | None = None,
        agent_id: str | None = None,
        timezone: str | None = None,
    ) -> MemoryNode:
        """Add a memory directly (an app's own fact about the user)."""
        stored = self._edit(
            "add_memory",
            user_id,
            content,
            metadata,
            memory_type=memory_type,
            key=key,
            importance=importance,
            time=time,
            agent_id=agent_id,
            timezone=timezone,
        )
        return stored[0]

    def update_memory(
        self,
        user_id: str,
        memory_id: str,
        content: str | None = None,
        *,
        importance: float | None = None,
        metadata: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> MemoryNode:
        """Change a memory; the event log keeps what it was."""
        user_id = check_user_id(user_id)
        stored = self._edit(
            "update_memory", user_id, content, metadata, memory_id=memory_id, importance=importance, key=key
        )
        if not stored:
            found = self.get_memory(user_id, memory_id)
            if found is None or found.status is MemoryStatus.DELETED:  # a deleted memory is gone, not editable
                raise ValidationError(f"no memory {memory_id!r} for user {user_id!r}")
            return found
        return stored[0]

    def _edit(
        self, operation: str, user_id: str, content: str | None, metadata: dict[str, Any] | None, **inputs: Any
    ) -> list[MemoryNode]:
        """Check an edit's content and metadata, run its operation, and return the memories it stored."""
        user_id = check_user_id(user_id)
        if content is not None:
            check_text(content, "content")
        if metadata is not None:
            check_metadata(metadata)
        result = self.runtime.run(operation, user_id=user_id, content=content, metadata=metadata, **inputs)
        return list(result["stored_memories"])

    def delete_memory(
        self, user_id: str, memory_id: str | None = None, *, content_match: str | None = None
    ) -> list[str]:
        """Delete one memory by id, or those matching `content_match`; returns the deleted ids."""
        user_id = check_user_id(user_id)
        result = self.runtime.run("delete_memory", user_id=user_id, memory_id=memory_id, content_match=content_match)
        return [n.id for n in result["stored_memories"] if n.status is MemoryStatus.DELETED]

    def history(self, user_id: str, memory_id: str) -> list[MemoryEvent]:
        """Every change of one memory, oldest first."""
        user_id = check_user_id(user_id)
        return self.runtime.store.history(user_id, memory_id)

    # -- users -----------------------------------------------------------------------------------
    def delete_user(self, user_id: str) -> int:
        """Delete the user's messages, memories and events; returns how many records went."""
        user_id = check_user_id(user_id)
        return self.runtime.store.delete_user(user_id)

    def stats(self, user_id: str) -> dict[str, Any]:
        """Pending and total messages, memories by status and type, and the user's failed jobs."""
        user_id = check_user_id(user_id)
        s = self.runtime.store.stats(user_id)
        failed = [r.to_dict() for r in self.jobs.status(user_id) if r.state == "failed"]
        return {
            "pending_messages": s.pending_messages,
            "total_messages": s.total_messages,
            "memories": s.memories,
            "failed_jobs": failed,
        }

    def save_session(self, user_id: str, session: Session, agent_id: str | None = None) -> list[Message]:
        """Store a Session's turns with every field (model, tokens, latency, masks...); `session()` reads it back."""
        return self.add_messages(user_id, session.to_messages(), session_id=session.id, agent_id=agent_id)

    def session(self, user_id: str, session_id: str, agent_id: str | None = None) -> Session:
        """The conversation log of one session as a structured, renderable Session."""
        from memscope.sessions import Session

        return Session.from_messages(
            self.list_messages(user_id, session_id=session_id, agent_id=agent_id), session_id=session_id
        )

    # -- lifecycle -------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load the embedding model now rather than in the first `retrieve` (the local one: ~1 s, and
        ~5 s the first time on a machine, which builds its graphs), and what the store's first search
        needs (SQLite: the vector libraries); a remote embedder has nothing to load."""
        for part in (self.runtime.embedder, self.runtime.store):
            warm = getattr(part, "warm_up", None)
            if callable(warm):
                warm()

    def close(self) -> None:
        """Finish running jobs (queued work stays pending in the store) and close the store."""
        if self._closed:
            return
        self._closed = True
        self.jobs.close(wait=True)
        self.runtime.close()

    def __enter__(self) -> MemoryScope:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncMemoryScope:
    """The same API for asyncio code: each method runs its MemoryScope twin in a worker thread.

    Written out method by method (as httpx's AsyncClient is), so each is typed and documented.
    """

    def __init__(self, config: ConfigSource = None, *, runtime: Runtime | None = None, background: bool = True) -> None:
        self.sync = MemoryScope(config, runtime=runtime, background=background)
        self.runtime = self.sync.runtime
        self.settings = self.sync.settings
        self.jobs = self.sync.jobs

    async def add_messages(
        self,
        user_id: str,
        messages: str | Mapping[str, Any] | Message | Iterable[str | Mapping[str, Any] | Message],
        session_id: str | None = None,
        agent_id: str | None = None,
    ) -> list[Message]:
        """See MemoryScope.add_messages."""
        return await asyncio.to_thread(self.sync.add_messages, user_id, messages, session_id, agent_id)

    async def list_messages(
        self,
        user_id: str,
        pending: bool | None = None,
        session_id: str | None = None,
        agent_id: str | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        """See MemoryScope.list_messages."""
        return await asyncio.to_thread(self.sync.list_messages, user_id, pending, session_id, agent_id, limit)

    async def retrieve(
        self,
        user_id: str,
        query: str | None = None,
        top_k: int | None = None,
        *,
        agent_id: str | None = None,
        memory_types: Sequence[str] | None = None,
        timezone: str | None = None,
        now: datetime | None = None,
        max_tokens: int | None = None,
    ) -> RetrievalResult:
        """See MemoryScope.retrieve."""
        call = functools.partial(
            self.sync.retrieve,
            agent_id=agent_id,
            memory_types=memory_types,
            timezone=timezone,
            now=now,
            max_tokens=max_tokens,
        )
        return await asyncio.to_thread(call, user_id, query, top_k)

    async def context(self, user_id: str, query: str | None = None, **kwargs: Any) -> str:
        """See MemoryScope.context."""
        return await asyncio.to_thread(functools.partial(self.sync.context, **kwargs), user_id, query)

    async def profile(self, user_id: str, agent_id: str | None = None) -> Profile:
        """See MemoryScope.profile."""
        return await asyncio.to_thread(self.sync.profile, user_id, agent_id)

    async def beliefs(self, user_id: str, agent_id: str | None = None) -> list[MemoryNode]:
        """See MemoryScope.beliefs."""
        return await asyncio.to_thread(self.sync.beliefs, user_id, agent_id)

    async def chat(
        self, user_id: str, message: str, session_id: str | None = None, agent_id: str | None = None
    ) -> str:
        """See MemoryScope.chat."""
        return await asyncio.to_thread(self.sync.chat, user_id, message, session_id, agent_id)

    @overload
    async def consolidate(
        self, user_id: str, wait: Literal[False] = False, agent_id: str | None = None, timeout: float | None = None
    ) -> str: ...
    @overload
    async def consolidate(
        self, user_id: str, wait: Literal[True], agent_id: str | None = None, timeout: float | None = None
    ) -> JobRecord: ...
    @overload
    async def consolidate(
        self, user_id: str, wait: bool, agent_id: str | None = None, timeout: float | None = None
    ) -> str | JobRecord: ...
    async def consolidate(
        self, user_id: str, wait: bool = False, agent_id: str | None = None, timeout: float | None = None
    ) -> JobRecord | str:
        """See MemoryScope.consolidate."""
        return await asyncio.to_thread(self.sync._queue, CONSOLIDATE, user_id, agent_id, wait, timeout)

    @overload
    async def reflect(
        self, user_id: str, wait: Literal[False] = False, agent_id: str | None = None, timeout: float | None = None
    ) -> str: ...
    @overload
    async def reflect(
        self, user_id: str, wait: Literal[True], agent_id: str | None = None, timeout: float | None = None
    ) -> JobRecord: ...
    @overload
    async def reflect(
        self, user_id: str, wait: bool, agent_id: str | None = None, timeout: float | None = None
    ) -> str | JobRecord: ...
    async def reflect(
        self, user_id: str, wait: bool = False, agent_id: str | None = None, timeout: float | None = None
    ) -> JobRecord | str:
        """See MemoryScope.reflect."""
        return await asyncio.to_thread(self.sync._queue, REFLECT, user_id, agent_id, wait, timeout)

    async def list_memories(
        self,
        user_id: str,
        memory_types: Sequence[str] | None = None,
        statuses: Sequence[str] = ("active",),
        limit: int = 100,
        offset: int = 0,
        agent_id: str | None = None,
    ) -> list[MemoryNode]:
        """See MemoryScope.list_memories."""
        return await asyncio.to_thread(
            self.sync.list_memories, user_id, memory_types, statuses, limit, offset, agent_id
        )

    async def get_memory(self, user_id: str, memory_id: str) -> MemoryNode | None:
        """See MemoryScope.get_memory."""
        return await asyncio.to_thread(self.sync.get_memory, user_id, memory_id)

    async def add_memory(
        self,
        user_id: str,
        content: str,
        memory_type: str = "customized",
        *,
        key: str | None = None,
        importance: float = 0.5,
        metadata: dict[str, Any] | None = None,
        time: str | None = None,
        agent_id: str | None = None,
        timezone: str | None = None,
    ) -> MemoryNode:
        """See MemoryScope.add_memory."""
        call = functools.partial(
            self.sync.add_memory,
            key=key,
            importance=importance,
            metadata=metadata,
            time=time,
            agent_id=agent_id,
            timezone=timezone,
        )
        return await asyncio.to_thread(call, user_id, content, memory_type)

    async def update_memory(
        self,
        user_id: str,
        memory_id: str,
        content: str | None = None,
        *,
        importance: float | None = None,
        metadata: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> MemoryNode:
        """See MemoryScope.update_memory."""
        call = functools.partial(self.sync.update_memory, importance=importance, metadata=metadata, key=key)
        return await asyncio.to_thread(call, user_id, memory_id, content)

    async def delete_memory(
        self, user_id: str, memory_id: str | None = None, *, content_match: str | None = None
    ) -> list[str]:
        """See MemoryScope.delete_memory."""
        call = functools.partial(self.sync.delete_memory, content_match=content_match)
        return await asyncio.to_thread(call, user_id, memory_id)

    async def history(self, user_id: str, memory_id: str) -> list[MemoryEvent]:
        """See MemoryScope.history."""
        return await asyncio.to_thread(self.sync.history, user_id, memory_id)

    async def delete_user(self, user_id: str) -> int:
        """See MemoryScope.delete_user."""
        return await asyncio.to_thread(self.sync.delete_user, user_id)

    async def stats(self, user_id: str) -> dict[str, Any]:
        """See MemoryScope.stats."""
        return await asyncio.to_thread(self.sync.stats, user_id)

    async def save_session(self, user_id: str, session: Session, agent_id: str | None = None) -> list[Message]:
        """See MemoryScope.save_session."""
        return await asyncio.to_thread(self.sync.save_session, user_id, session, agent_id)

    async def session(self, user_id: str, session_id: str, agent_id: str | None = None) -> Session:
        """See MemoryScope.session."""
        return await asyncio.to_thread(self.sync.session, user_id, session_id, agent_id)

    async def warm_up(self) -> None:
        """See MemoryScope.warm_up."""
        await asyncio.to_thread(self.sync.warm_up)

    async def close(self) -> None:
        """See MemoryScope.close."""
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncMemoryScope:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
