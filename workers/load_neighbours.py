"""load_neighbours: the turns just before and after the best raw-turn hits, in their conversation.

An answer often follows the question that matches ("What do you enjoy outside work?" -> "I go rock
climbing"), and a matching turn's neighbours carry its context; fuse_scores lets a hit lend part of its
relevance to them (see its `neighbour_weights`). One store call (`Store.message_neighbours`).
"""

from __future__ import annotations

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import scope


@worker("load_neighbours")
class LoadNeighbours(Worker):
    """Fetch the conversation neighbours of the `top` best message hits (0 turns it off)."""

    reads = ("user_id", "message_hits")
    optional_reads = ("agent_id",)
    writes = ("message_neighbours",)
    store_bound = True

    class Params(WorkerParams):
        top: int = 10  # the best message hits whose neighbours are loaded
        before: int = 1
        after: int = 1

    params: Params

    def run(self, ctx: Context) -> None:
        user_id, _ = scope(ctx)
        hits = sorted(ctx["message_hits"], key=lambda h: h.score, reverse=True)[: max(self.params.top, 0)]
        if not hits or (self.params.before <= 0 and self.params.after <= 0):
            ctx["message_neighbours"] = {}
            return
        ids = [h.message.id for h in hits]
        store = self.resources.store
        ctx["message_neighbours"] = store.message_neighbours(
            user_id, ids, before=max(self.params.before, 0), after=max(self.params.after, 0)
        )
