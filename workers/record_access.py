"""record_access: count that the returned memories were used (access_count, last_accessed_at)."""

from __future__ import annotations

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import scope


@worker("record_access")
class RecordAccess(Worker):
    """Bump access_count and last_accessed_at of the memories a retrieval returned (no event logged)."""

    reads = ("user_id", "results")
    writes = ()

    class Params(WorkerParams):
        pass

    def run(self, ctx: Context) -> None:
        user_id, _ = scope(ctx)
        ids = [item.id for item in ctx["results"] if item.kind == "memory"]
        if ids:
            # the real clock, not the query's `now`: this records when the memory was actually used
            self.resources.store.touch_memories(user_id, ids, self.resources.now())
