"""mark_observations_reflected: stamp `reflected_at` on the observations this reflection processed."""

from __future__ import annotations

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.models import MemoryNode


@worker("mark_observations_reflected")
class MarkObservationsReflected(Worker):
    """Set `reflected_at` on every processed observation, on top of its reconsolidated version.

    A node that `long_range_contradictions` changed (e.g. expired as a repeat) is marked in that
    changed version, so one write carries both. A degraded run (an LLM step was skipped) marks
    nothing: the observations stay unreflected until a model is configured. `updated_at` is left
    alone: the mark is bookkeeping, not a change of what the memory says.
    """

    reads = ("unreflected", "reconsolidation_updates")
    writes = ("reflected_updates",)

    class Params(WorkerParams):
        pass

    def run(self, ctx: Context) -> None:
        if ctx.report.degraded:
            ctx["reflected_updates"] = []
            return
        changed: dict[str, MemoryNode] = {n.id: n for n in ctx["reconsolidation_updates"]}
        stamp = self.resources.now()
        marked = []
        for node in ctx["unreflected"]:
            latest = changed.get(node.id, node)
            marked.append(latest.model_copy(update={"reflected_at": stamp}))
        ctx["reflected_updates"] = marked
