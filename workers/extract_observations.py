"""extract_observations: atomic, third-person observations about the user from the informative messages.

The split with `extract_timed_observations`: this worker records lasting facts (who the user is,
what they do, like, own, believe, plan in general); an event or plan tied to a time ("flying to
Paris next Friday", "joined Apple last month") goes to the timed worker, and this one states only
the lasting fact such an event implies ("Tom works at Apple").
"""

from __future__ import annotations

from memscope.engine import Context, WorkerParams, worker
from memscope.engine.llm_worker import LLMWorker
from memscope.models import MemoryNode
from memscope.observations import ObservationAnswer, conversation_values, observation_node, pick_sources

__all__ = ["ExtractObservations"]


@worker("extract_observations")
class ExtractObservations(LLMWorker):
    """Extract atomic third-person observations (lasting facts) about the user from the informative messages."""

    reads = ("user_id", "messages", "informative_messages")
    writes = ("new_observations",)

    class Params(WorkerParams):
        max_observations: int = 100  # per batch (of up to 50 messages): a bound on a runaway answer

    params: Params

    def run(self, ctx: Context) -> None:
        if not ctx["informative_messages"]:
            ctx["new_observations"] = []
            return
        shown, values = conversation_values(self, ctx)
        answer = self.ask(ObservationAnswer, max_observations=self.params.max_observations, **values)
        informative = {m.id for m in ctx["informative_messages"]}
        nodes: dict[str, MemoryNode] = {}
        for item in answer.observations[: self.params.max_observations]:
            if not item.content.strip():
                continue
            sources = pick_sources(shown, item.sources, informative)
            keywords = [k.strip() for k in item.keywords if k.strip()]
            node = observation_node(ctx, sources, item.content, item.importance, {"keywords": keywords})
            nodes.setdefault(node.id, node)
        ctx["new_observations"] = list(nodes.values())
