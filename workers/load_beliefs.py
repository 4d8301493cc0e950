"""load_beliefs: the user's active beliefs, when the run asks for them (`include_beliefs`)."""

from __future__ import annotations

from memscope.beliefs import load_beliefs
from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import scope


@worker("load_beliefs")
class LoadBeliefs(Worker):
    """Load the active beliefs of the user and agent; [] unless the `include_beliefs` input is true."""

    reads = ("user_id",)
    optional_reads = ("agent_id", "include_beliefs")
    writes = ("beliefs",)

    class Params(WorkerParams):
        pass

    def run(self, ctx: Context) -> None:
        if not ctx.get("include_beliefs"):
            ctx["beliefs"] = []
            return
        user_id, agent_id = scope(ctx)
        ctx["beliefs"] = load_beliefs(self.resources.store, user_id, agent_id)
