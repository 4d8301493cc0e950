"""load_recent_observations: the user's active observations of the last days, for repeat/contradiction checks."""

from __future__ import annotations

from datetime import timedelta

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import scope
from memscope.models import MemoryType
from memscope.stores.base import MemoryFilter


@worker("load_recent_observations")
class LoadRecentObservations(Worker):
    """Load the user's active observations created in the last `days` (before the batch's newest message)."""

    reads = ("user_id", "messages")
    writes = ("recent_observations",)

    class Params(WorkerParams):
        days: float = 7.0  # counted back from the newest message of the batch (else now)
        limit: int = 50
        memory_types: list[MemoryType] = [MemoryType.OBSERVATION]

    params: Params

    def run(self, ctx: Context) -> None:
        user_id, agent_id = scope(ctx)
        messages = ctx["messages"]
        newest = max((m.created_at for m in messages), default=None) or self.resources.now()
        since = newest - timedelta(days=self.params.days)
        ctx["recent_observations"] = self.resources.store.list_memories(
            user_id,
            MemoryFilter(agent_id=agent_id, memory_types=self.params.memory_types, created_after=since),
            limit=self.params.limit,
        )
