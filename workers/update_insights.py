"""update_insights: write or update one insight per chosen subject from the observations about it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from memscope.engine import Context, WorkerParams, worker
from memscope.engine.llm_worker import LLMWorker
from memscope.engine.worker import scope, user_zone
from memscope.models import DEFAULT_AGENT, MemoryNode, MemoryStatus, MemoryType
from memscope.observations import format_date, stable_id
from memscope.reflection import memory_line, normalise_key
from memscope.stores.base import MemoryFilter, SearchQuery


class InsightAnswer(BaseModel):
    """The insight text for one subject and the numbers of the observations it rests on."""

    insight: str = ""  # empty: the observations say nothing about the subject
    evidence: list[int] = Field(default_factory=list)


@worker("update_insights")
class UpdateInsights(LLMWorker):
    """Per subject, gather its observations (hybrid search plus the new ones) and write its insight.

    An existing insight with the subject's key keeps its id and gains the new text and sources
    (history shows an update); otherwise a new insight gets a stable id from user, agent and key.
    Cited observation numbers become `source_memory_ids`; numbers that were not shown are ignored.
    """

    reads = ("user_id", "subjects", "insights", "unreflected")
    writes = ("insight_updates",)

    class Params(WorkerParams):
        observations_per_subject: int = Field(20, ge=1)

    def run(self, ctx: Context) -> None:
        subjects: list[str] = ctx["subjects"]
        if not subjects:
            ctx["insight_updates"] = []
            return
        zone = user_zone(self, ctx)
        now = self.resources.now()
        existing = {normalise_key(i.key): i for i in ctx["insights"] if i.key}
        vectors = self.resources.embedder.embed(subjects) if self.resources.embedder is not None else None
        updates: list[MemoryNode] = []
        for n, subject in enumerate(subjects):
            vector = None if vectors is None else [float(x) for x in vectors[n]]
            observations = self._observations(ctx, subject, vector)
            current = existing.get(normalise_key(subject))
            answer = self.ask(
                InsightAnswer,
                subject=subject,
                today=format_date(now, zone),
                current=current.content if current is not None else self.prompt("none"),
                observations="\n".join(memory_line(str(i), o, zone) for i, o in enumerate(observations, 1))
                or self.prompt("none"),
            )
            node = self._insight(ctx, subject, current, observations, answer, now)
            if node is not None:
                updates.append(node)
        ctx["insight_updates"] = updates

    def _observations(self, ctx: Context, subject: str, vector: list[float] | None) -> list[MemoryNode]:
        """Active observations about `subject`, plus the most relevant new ones, oldest first."""
        user_id, agent_id = scope(ctx)
        top = self.params.observations_per_subject
        query = SearchQuery(text=subject, embedding=vector, top_k=top, candidates=max(50, top))
        kinds = (MemoryType.OBSERVATION,)
        everywhere = MemoryFilter(agent_id=agent_id, memory_types=kinds)
        store = self.resources.store
        found = {h.memory.id: h.memory for h in store.search_memories(user_id, query, everywhere)}
        unreflected: list[MemoryNode] = ctx["unreflected"]
        if vector is None:  # text-only search may miss new observations: show the newest ones
            fresh = unreflected[-top:]
        else:
            ids = [o.id for o in unreflected]
            wanted = MemoryFilter(agent_id=agent_id, memory_types=kinds, ids=ids)
            fresh = [h.memory for h in store.search_memories(user_id, query, wanted)]
        for node in fresh:
            found.setdefault(node.id, node)
        return sorted(found.values(), key=lambda o: (o.created_at, o.id))

    def _insight(
        self,
        ctx: Context,
        subject: str,
        current: MemoryNode | None,
        observations: list[MemoryNode],
        answer: InsightAnswer,
        now: datetime,
    ) -> MemoryNode | None:
        """The new or changed insight node, or None when nothing changes."""
        text = answer.insight.strip()
        shown = range(1, len(observations) + 1)
        cited = [observations[i - 1].id for i in dict.fromkeys(answer.evidence) if i in shown]
        if not text:
            return None
        user_id = ctx["user_id"]
        agent = ctx.get("agent_id") or (observations[0].agent_id if observations else DEFAULT_AGENT)
        node_id = stable_id(user_id, agent, "insight", subject)
        if current is None:
            stored = self.resources.store.get_memory(user_id, node_id)
            if stored is not None and stored.status is MemoryStatus.ACTIVE:
                current = stored  # the same insight, loaded under another spelling or agent scope
            elif stored is not None:  # never revive an insight that was expired or deleted
                node_id = stable_id(user_id, agent, "insight", subject, *sorted(cited))
        if current is not None:
            sources = list(dict.fromkeys([*current.source_memory_ids, *cited]))
            if text == current.content and sources == current.source_memory_ids:
                return None
            changed = text != current.content
            return current.model_copy(
                update={
                    "content": text,
                    "embedding": None if changed else current.embedding,
                    "source_memory_ids": sources,
                    "updated_at": now,
                }
            )
        return MemoryNode(
            id=node_id,
            user_id=user_id,
            agent_id=agent,
            memory_type=MemoryType.INSIGHT,
            content=text,
            key=subject,
            source_memory_ids=cited,
            created_at=now,
            updated_at=now,
        )
