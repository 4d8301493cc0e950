"""load_insights: the user's active insights (one per subject key)."""

from __future__ import annotations

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import scope
from memscope.models import MemoryType
from memscope.stores.base import MemoryFilter


@worker("load_insights")
class LoadInsights(Worker):
    """Load the user's active insights, so reflection updates them rather than writing duplicates."""

    reads = ("user_id",)
    writes = ("insights",)

    class Params(WorkerParams):
        pass

    def run(self, ctx: Context) -> None:
        user_id, agent_id = scope(ctx)
        wanted = MemoryFilter(agent_id=agent_id, memory_types=(MemoryType.INSIGHT,))
        ctx["insights"] = self.resources.store.list_memories(user_id, wanted)
