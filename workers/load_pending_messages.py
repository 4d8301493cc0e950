"""load_pending_messages: the user's messages not consolidated yet, oldest first."""

from __future__ import annotations

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.stores.base import MessageFilter
from memscope.workers._base import scope


@worker("load_pending_messages")
class LoadPendingMessages(Worker):
    """Load up to `limit` of the user's pending messages, oldest first: one consolidation batch."""

    reads = ("user_id",)
    writes = ("messages",)

    class Params(WorkerParams):
        limit: int = 50

    def run(self, ctx: Context) -> None:
        user_id, agent_id = scope(ctx)
        ctx["messages"] = self.resources.store.list_messages(
            user_id, MessageFilter(agent_id=agent_id, pending=True), limit=self.params.limit
        )
