"""store_memories: embed and write memory nodes, recording one event per real change (and, in
consolidation, mark the batch's messages consolidated in the same commit)."""

from __future__ import annotations

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.models import MemoryNode, MemoryStatus
from memscope.stores.base import ConsolidationMark


@worker("store_memories")
class StoreMemories(Worker):
    """Embed new or changed memory nodes and write them; each change lands in the event log."""

    writes = ("stored_memories",)

    class Params(WorkerParams):
        fields: list[str] = ["memory_updates"]  # context fields holding MemoryNode lists to write
        consolidates: str | None = None  # a field of messages marked consolidated in the same commit

    @classmethod
    def declared_reads(cls, params: WorkerParams) -> tuple[str, ...]:
        """The fields named by the `fields` and `consolidates` params."""
        assert isinstance(params, StoreMemories.Params)
        return (*params.fields, *(["user_id", params.consolidates] if params.consolidates else []))

    def run(self, ctx: Context) -> None:
        nodes: dict[str, MemoryNode] = {}
        for field in self.params.fields:
            for node in ctx[field] or []:
                nodes[node.id] = node  # a later field's version of a node wins
        store = self.resources.store
        to_embed = []
        for node in nodes.values():
            if node.status is not MemoryStatus.ACTIVE or node.embedding is not None:
                continue
            to_embed.append(node)
        if to_embed and self.resources.embedder is not None:
            vectors = self.resources.embedder.embed([n.content for n in to_embed])
            for node, vector in zip(to_embed, vectors, strict=True):
                node.embedding = [float(x) for x in vector]
        written = list(nodes.values())
        mark = None
        if self.params.consolidates and not ctx.report.degraded:  # degraded: an LLM step was skipped, keep them pending
            ids = [m.id for m in ctx[self.params.consolidates] or []]
            mark = ConsolidationMark(ctx["user_id"], ids, self.resources.now()) if ids and written else None
        if written:
            store.write_memories(written, operation=ctx.operation, run_id=ctx.run_id, fence=ctx.fence,
                                 consolidates=mark)
        ctx["stored_memories"] = written
