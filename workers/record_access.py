"""record_access: count that the returned memories were used (access_count, last_accessed_at)."""

from __future__ import annotations

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import scope


@worker("record_access")
class RecordAccess(Worker):
    """Bump access_count and last_accessed_at of the memories a retrieval returned (no event logged).

    With the runtime's AccessRecorder (`resources.access`) the write is queued for its background thread,
    so a retrieval never waits for the store's write lock; without one it is written here."""

    reads = ("user_id", "results")
    writes = ()

    class Params(WorkerParams):
        pass

    def run(self, ctx: Context) -> None:
        user_id, _ = scope(ctx)
        ids = [item.id for item in ctx["results"] if item.kind == "memory"]
        if ids:
            # the real clock, not the query's `now`: this records when the memory was actually used
            at = self.resources.now()
            if self.resources.access is not None:
                self.resources.access.record(user_id, ids, at)
            else:
                self.resources.store.touch_memories(user_id, ids, at)
