"""attach_pending_messages: the user's latest messages not consolidated yet (read-your-writes).

The Store lists messages oldest first with no offset. One query for `limit + 1` pending messages
settles the usual case (few pending: they are all of them); otherwise the newest `limit` are found
by looking back through widening windows (an hour, a day, a week, a month, a year, everything) and keeping
the tail of the first window that holds `limit` of them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.models import TimeRange
from memscope.stores.base import MessageFilter
from memscope.workers._base import scope
from memscope.workers._retrieval import query_now

_FAR_FUTURE = datetime(9000, 1, 1, tzinfo=UTC)
_WINDOWS_DAYS = (1 / 24, 1, 7, 30, 365, None)


@worker("attach_pending_messages")
class AttachPendingMessages(Worker):
    """Attach the user's most recent pending messages, oldest first, so what was just said is known."""

    reads = ("user_id",)
    optional_reads = ("agent_id", "now")
    writes = ("pending_messages",)

    class Params(WorkerParams):
        limit: int = 20

    params: Params

    def run(self, ctx: Context) -> None:
        user_id, agent_id = scope(ctx)
        limit = self.params.limit
        if limit <= 0:
            ctx["pending_messages"] = []
            return
        store = self.resources.store
        found = store.list_messages(user_id, MessageFilter(agent_id=agent_id, pending=True), limit=limit + 1)
        latest = max(query_now(self, ctx), self.resources.now())
        for days in _WINDOWS_DAYS if len(found) > limit else ():
            window = None if days is None else TimeRange(start=latest - timedelta(days=days), end=_FAR_FUTURE)
            where = MessageFilter(agent_id=agent_id, pending=True, time_range=window)
            found = store.list_messages(user_id, where)
            if len(found) >= limit:
                break
        ctx["pending_messages"] = found[-limit:]
