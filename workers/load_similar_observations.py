"""load_similar_observations: the stored observations nearest to each new one, however old they are."""

from __future__ import annotations

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import scope
from memscope.models import MemoryNode, MemoryType
from memscope.stores.base import MemoryFilter, SearchQuery


@worker("load_similar_observations")
class LoadSimilarObservations(Worker):
    """Find the user's active observations closest to each new observation (vector + BM25), any age.

    So a repeat of something said months ago is seen by `resolve_contradictions`, which the
    recent window alone would miss. Without an embedder the text channel alone runs.
    """

    reads = ("user_id", "new_observations", "timed_observations")
    writes = ("similar_observations",)

    class Params(WorkerParams):
        per_observation: int = 3  # neighbours kept per new observation
        limit: int = 30  # neighbours in all
        memory_types: list[MemoryType] = [MemoryType.OBSERVATION]

    params: Params

    def run(self, ctx: Context) -> None:
        new: list[MemoryNode] = [*ctx["new_observations"], *ctx["timed_observations"]]
        found: dict[str, MemoryNode] = {}
        if not new or self.params.per_observation <= 0:
            ctx["similar_observations"] = []
            return
        user_id, agent_id = scope(ctx)
        embedder = self.resources.embedder
        vectors = embedder.embed([n.content for n in new]) if embedder is not None else [None] * len(new)
        new_ids = {n.id for n in new}
        filter = MemoryFilter(agent_id=agent_id, memory_types=self.params.memory_types)
        for node, vector in zip(new, vectors, strict=True):
            query = SearchQuery(
                text=node.content,
                embedding=None if vector is None else [float(x) for x in vector],
                top_k=self.params.per_observation + 1,  # one more: the node itself may be stored already
            )
            hits = [h.memory for h in self.resources.store.search_memories(user_id, query, filter)]
            for memory in [m for m in hits if m.id not in new_ids][: self.params.per_observation]:
                found.setdefault(memory.id, memory)
        ctx["similar_observations"] = list(found.values())[: self.params.limit]
