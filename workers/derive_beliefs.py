"""derive_beliefs: turn the user's profile and insights into short, actionable beliefs for the business.

Needs `business_description` in the config (without it the step writes nothing). The model sees the
business, the memories (numbered) and the current beliefs, and answers the full list of beliefs,
each citing memory numbers; a belief citing none is dropped. Beliefs not in the answer expire. When
the memories have not changed since the beliefs were derived (same digest), no model call is made.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from memscope.beliefs import SOURCES_DIGEST, load_beliefs, sources_digest
from memscope.engine import Context, WorkerParams, worker
from memscope.engine.llm_worker import LLMWorker
from memscope.engine.worker import scope
from memscope.models import DEFAULT_AGENT, MemoryNode, MemoryStatus, MemoryType
from memscope.observations import stable_id
from memscope.reflection import normalise_key
from memscope.stores.base import MemoryFilter


class BeliefItem(BaseModel):
    """One belief and the numbers of the memories it rests on."""

    belief: str
    evidence: list[int] = Field(default_factory=list)


class BeliefAnswer(BaseModel):
    """Every belief that holds now."""

    beliefs: list[BeliefItem] = Field(default_factory=list)


@worker("derive_beliefs")
class DeriveBeliefs(LLMWorker):
    """Derive actionable beliefs for the business from profile entries and insights, each citing them."""

    reads = ("user_id",)
    optional_reads = ("agent_id", "profile_updates", "insight_updates")
    writes = ("belief_updates",)

    class Params(WorkerParams):
        max_memories: int = Field(60, ge=1)
        max_beliefs: int = Field(10, ge=1)
        notice_when_unset: bool = False  # say so when business_description is not configured

    params: Params

    def run(self, ctx: Context) -> None:
        settings = self.resources.settings
        business = (settings.business_description if settings is not None else None) or ""
        if not business.strip():
            if self.params.notice_when_unset:
                ctx.notice("derive_beliefs: set business_description in the config to derive beliefs")
            ctx["belief_updates"] = []
            return
        user_id, agent_id = scope(ctx)
        memories = self._memories(ctx, user_id, agent_id)
        current = load_beliefs(self.resources.store, user_id, agent_id)
        digest = sources_digest(business, memories)
        if not memories or (current and all(b.metadata.get(SOURCES_DIGEST) == digest for b in current)):
            ctx["belief_updates"] = []  # nothing to derive from, or nothing changed since
            return
        answer = self.ask(
            BeliefAnswer,
            business=business.strip(),
            memories="\n".join(f"[{i}] {m.content}" for i, m in enumerate(memories, 1)),
            beliefs="\n".join(f"- {b.content}" for b in current) or self.prompt("none"),
        )
        ctx["belief_updates"] = self._updates(ctx, answer, memories, current, digest)

    def _memories(self, ctx: Context, user_id: str, agent_id: str | None) -> list[MemoryNode]:
        """Active profile entries and insights, with this run's updates applied, newest last."""
        kinds = (MemoryType.PROFILE, MemoryType.INSIGHT)
        found = {n.id: n for n in self.resources.store.list_memories(
            user_id, MemoryFilter(agent_id=agent_id, memory_types=kinds), limit=500)}
        for node in [*(ctx.get("profile_updates") or []), *(ctx.get("insight_updates") or [])]:
            if node.status is MemoryStatus.ACTIVE:
                found[node.id] = node
            else:
                found.pop(node.id, None)
        ordered = sorted(found.values(), key=lambda n: (n.updated_at, n.id))
        return ordered[-self.params.max_memories :]

    def _updates(
        self, ctx: Context, answer: BeliefAnswer, memories: list[MemoryNode], current: list[MemoryNode], digest: str
    ) -> list[MemoryNode]:
        user_id, agent_id = scope(ctx)
        agent = agent_id or DEFAULT_AGENT
        now: datetime = self.resources.now()
        by_id = {b.id: b for b in current}
        kept: dict[str, MemoryNode] = {}
        for item in answer.beliefs[: self.params.max_beliefs]:
            text = item.belief.strip()
            cited = [memories[i - 1].id for i in dict.fromkeys(item.evidence) if 1 <= i <= len(memories)]
            if not text or not cited:
                continue
            node_id = stable_id(user_id, agent, "belief", normalise_key(text))
            old = by_id.get(node_id)
            meta = {SOURCES_DIGEST: digest}
            if old is not None:
                kept[node_id] = old.model_copy(
                    update={"content": text, "source_memory_ids": cited, "metadata": {**old.metadata, **meta},
                            "updated_at": now, "embedding": old.embedding if text == old.content else None})
                continue
            stored = self.resources.store.get_memory(user_id, node_id)
            if stored is not None and stored.status is not MemoryStatus.ACTIVE:
                node_id = stable_id(user_id, agent, "belief", normalise_key(text), now.isoformat())
            kept[node_id] = MemoryNode(
                id=node_id, user_id=user_id, agent_id=agent, memory_type=MemoryType.BELIEF, content=text,
                source_memory_ids=cited, metadata=meta, importance=0.6, created_at=now, updated_at=now,
            )
        gone = [b.model_copy(update={"status": MemoryStatus.EXPIRED, "updated_at": now})
                for b in current if b.id not in kept]
        return [*gone, *kept.values()]
