"""attach_pending_messages: the user's latest messages not consolidated yet (read-your-writes)."""

from __future__ import annotations

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import scope
from memscope.stores.base import MessageFilter


@worker("attach_pending_messages")
class AttachPendingMessages(Worker):
    """Attach the user's most recent pending messages, oldest first, so what was just said is known."""

    reads = ("user_id",)
    optional_reads = ("agent_id", "pending_limit")
    writes = ("pending_messages",)
    store_bound = True

    class Params(WorkerParams):
        limit: int = 20  # the run's `pending_limit` input (retrieval.pending_limit) wins when given

    params: Params

    def run(self, ctx: Context) -> None:
        user_id, agent_id = scope(ctx)
        given = ctx.get("pending_limit")
        limit = self.params.limit if given is None else int(given)
        if limit <= 0:
            ctx["pending_messages"] = []
            return
        newest = self.resources.store.list_messages(
            user_id, MessageFilter(agent_id=agent_id, pending=True), limit=limit, newest_first=True
        )
        ctx["pending_messages"] = newest[::-1]
