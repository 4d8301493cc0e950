"""load_unreflected_observations: active observations no reflection has processed yet, oldest first."""

from __future__ import annotations

from pydantic import Field

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import scope
from memscope.models import MemoryType
from memscope.stores.base import MemoryFilter


@worker("load_unreflected_observations")
class LoadUnreflectedObservations(Worker):
    """Load up to `limit` active observations with no `reflected_at`, oldest first.

    When fewer than `min_observations` are waiting it writes [] so the whole reflection is a
    no-op (no model calls, nothing marked): the batch is not worth reflecting on yet.
    """

    reads = ("user_id",)
    writes = ("unreflected",)

    class Params(WorkerParams):
        limit: int = Field(100, ge=1)
        min_observations: int = Field(1, ge=1)

    def run(self, ctx: Context) -> None:
        params = self.params
        assert isinstance(params, LoadUnreflectedObservations.Params)
        user_id, agent_id = scope(ctx)
        wanted = MemoryFilter(agent_id=agent_id, memory_types=(MemoryType.OBSERVATION,), reflected=False)
        found = self.resources.store.list_memories(user_id, wanted)  # the store lists newest first
        found.sort(key=lambda node: (node.created_at, node.id))
        batch = found[: params.limit]
        ctx["unreflected"] = batch if len(batch) >= params.min_observations else []
