"""load_pending_messages: the user's messages not consolidated yet, oldest first."""

from __future__ import annotations

from pydantic import Field

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import scope
from memscope.stores.base import MessageFilter

DEFAULT_BATCH = 50


@worker("load_pending_messages")
class LoadPendingMessages(Worker):
    """Load up to `limit` of the user's pending messages, oldest first: one consolidation batch.

    With no `limit`, the batch is the config's `jobs.consolidate_batch` (50 by default).
    `more_pending` says whether more pending messages wait past the batch (one extra row is read).
    """

    reads = ("user_id",)
    writes = ("messages", "more_pending")  # more_pending: messages past this batch are waiting

    class Params(WorkerParams):
        limit: int | None = Field(default=None, ge=1)

    def run(self, ctx: Context) -> None:
        user_id, agent_id = scope(ctx)
        settings = self.resources.settings
        limit = self.params.limit or (settings.jobs.consolidate_batch if settings else DEFAULT_BATCH)
        batch = self.resources.store.list_messages(
            user_id, MessageFilter(agent_id=agent_id, pending=True), limit=limit + 1
        )
        ctx["messages"], ctx["more_pending"] = batch[:limit], len(batch) > limit
