"""list_memories: one page of the user's memories, newest first, filtered by type, status and agent."""

from __future__ import annotations

from collections.abc import Sequence

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import scope
from memscope.errors import ValidationError
from memscope.models import MemoryStatus
from memscope.retrieval import memory_types_of
from memscope.stores.base import MemoryFilter

MAX_LIMIT = 10_000


@worker("list_memories")
class ListMemories(Worker):
    """List the user's memories (newest first) by type and status, a page at a time."""

    reads = ("user_id",)
    optional_reads = ("memory_types", "statuses", "limit", "offset", "agent_id")
    writes = ("memories",)

    class Params(WorkerParams):
        pass

    def run(self, ctx: Context) -> None:
        user_id, agent_id = scope(ctx)
        limit, offset = ctx.get("limit", 100), ctx.get("offset", 0)
        limit = 100 if limit is None else limit
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise ValidationError(f"limit must be a whole number from 1 to {MAX_LIMIT}, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValidationError(f"offset must be a whole number of at least 0, got {offset!r}")
        where = MemoryFilter(
            agent_id=agent_id,
            memory_types=memory_types_of(ctx.get("memory_types")),
            statuses=statuses_of(ctx.get("statuses")),
        )
        ctx["memories"] = self.resources.store.list_memories(user_id, where, limit=limit, offset=offset or 0)


def statuses_of(value: object) -> tuple[MemoryStatus, ...]:
    """Parse the `statuses` input (None means active only; a name or a list of names)."""
    if value is None:
        return (MemoryStatus.ACTIVE,)
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, Sequence) or not names:
        raise ValidationError(f"statuses must be a non-empty list of status names, got {value!r}")
    try:
        return tuple(MemoryStatus(str(n)) for n in names)
    except ValueError:
        allowed = ", ".join(s.value for s in MemoryStatus)
        raise ValidationError(f"statuses {list(names)!r} has an unknown status; allowed: {allowed}") from None
