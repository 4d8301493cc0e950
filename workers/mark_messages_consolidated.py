"""mark_messages_consolidated: the last consolidation step; marks the batch done once its memories are written."""

from __future__ import annotations

from memscope.engine import Context, Worker, WorkerParams, worker

DEGRADED_NOTICE = (
    "consolidation skipped an LLM step, so no message was marked consolidated: "
    "the batch stays pending and is consolidated once an LLM is configured"
)


@worker("mark_messages_consolidated")
class MarkMessagesConsolidated(Worker):
    """Mark every message of the batch consolidated, after store_memories; nothing if an LLM step was skipped."""

    reads = ("user_id", "messages", "stored_memories")  # stored_memories: runs only after the write
    writes = ("consolidated_ids",)

    class Params(WorkerParams):
        pass

    def run(self, ctx: Context) -> None:
        if ctx.report.degraded:
            ctx.notice(DEGRADED_NOTICE)
            ctx["consolidated_ids"] = []
            return
        ids = [m.id for m in ctx["messages"]]
        if ids:
            self.resources.store.mark_consolidated(ctx["user_id"], ids, self.resources.now(), fence=ctx.fence)
        ctx["consolidated_ids"] = ids
