"""load_hot_segments: the user's hottest mid-term segments now (heat from tiers.heat, see memscope.heat)."""

from __future__ import annotations

from memscope.config import HeatSettings
from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import scope
from memscope.heat import segment_heat
from memscope.models import MemoryType
from memscope.stores.base import MemoryFilter


@worker("load_hot_segments")
class LoadHotSegments(Worker):
    """Load the user's active segments and keep the `hot_segments` hottest (ties: the newest)."""

    reads = ("user_id",)
    optional_reads = ("agent_id", "hot_segments")
    writes = ("segments",)

    class Params(WorkerParams):
        limit: int = 3  # the run's `hot_segments` input (retrieval.hot_segments) wins when given
        scan: int = 500  # the most recently updated segments considered

    params: Params

    def run(self, ctx: Context) -> None:
        given = ctx.get("hot_segments")
        limit = self.params.limit if given is None else int(given)
        if limit <= 0:
            ctx["segments"] = []
            return
        user_id, agent_id = scope(ctx)
        settings = self.resources.settings
        weights = settings.tiers.heat if settings is not None else HeatSettings()
        now = self.resources.now()
        found = self.resources.store.list_memories(
            user_id, MemoryFilter(agent_id=agent_id, memory_types=(MemoryType.SEGMENT,)), limit=self.params.scan
        )
        ranked = sorted(found, key=lambda n: (-segment_heat(n, now, weights), -n.updated_at.timestamp(), n.id))
        ctx["segments"] = ranked[:limit]
