"""long_range_contradictions: settle repeats and contradictions between new observations and older ones."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from memscope.engine import Context, WorkerParams, worker
from memscope.engine.llm_worker import LLMWorker
from memscope.engine.worker import scope, user_zone
from memscope.models import MemoryNode, MemoryStatus, MemoryType
from memscope.reflection import memory_line
from memscope.stores.base import MemoryFilter, SearchQuery

Judged = tuple[str, str, str]  # (new observation id, older observation id, "repeat" | "contradiction")


class Finding(BaseModel):
    """One pair the model judged: new memory N<new> against older memory O<older>."""

    new: int
    older: int
    relation: Literal["repeat", "contradiction", "unrelated"]
    reason: str = ""

    @field_validator("new", "older", mode="before")
    @classmethod
    def _label(cls, value: Any) -> Any:
        """Accept the labels as shown ("N1", "O2") as well as plain numbers."""
        if isinstance(value, str):
            match = re.fullmatch(r"\s*\[?[NnOo]?\s*(\d+)\]?\s*", value)
            return int(match.group(1)) if match else value
        return value


class FindingsAnswer(BaseModel):
    """The repeats and contradictions found; compatible pairs are left out."""

    findings: list[Finding] = Field(default_factory=list)


@worker("long_range_contradictions")
class LongRangeContradictions(LLMWorker):
    """Compare each new observation with its nearest older ones; merge repeats, expire contradicted facts.

    Candidates are the `neighbours` nearest active observations by vector that are strictly older
    (created earlier) and share no source message (those came from the same consolidation batch,
    which already reconciled them); older unreflected ones count, so the first reflection also
    checks history. Contradiction: the newer fact wins, the older is expired with `superseded_by`.
    Repeat: the older is kept (insights may cite it) and gains the newer one's sources, event
    time and importance; the newer is expired with `superseded_by` the older. Nothing is deleted.
    """

    reads = ("user_id", "unreflected")
    writes = ("reconsolidation_updates",)

    class Params(WorkerParams):
        neighbours: int = Field(5, ge=1)
        min_similarity: float = Field(0.0, ge=-1.0, le=1.0)  # skip candidates less similar than this
        batch_size: int = Field(10, ge=1)  # new observations judged per model call

    def run(self, ctx: Context) -> None:
        new = [o for o in ctx["unreflected"] if o.status is MemoryStatus.ACTIVE]
        vectors = self._vectors(new)
        pairs = [(o, older) for o in new if (older := self._older_neighbours(ctx, o, vectors.get(o.id)))]
        state: dict[str, MemoryNode] = {}
        for node, older in pairs:
            state[node.id] = node
            state.update((c.id, c) for c in older if c.id not in state)
        findings: list[Judged] = []
        for start in range(0, len(pairs), self.params.batch_size):
            findings.extend(self._judge(ctx, pairs[start : start + self.params.batch_size]))
        ctx["reconsolidation_updates"] = apply_findings(state, findings, self.resources.now())

    def _vectors(self, nodes: list[MemoryNode]) -> dict[str, list[float]]:
        """Each node's vector: its stored embedding, else one embedded now (none without an embedder)."""
        out = {n.id: n.embedding for n in nodes if n.embedding is not None}
        missing = [n for n in nodes if n.embedding is None]
        if missing and self.resources.embedder is not None:
            vectors = self.resources.embedder.embed([n.content for n in missing])
            out.update((n.id, [float(x) for x in v]) for n, v in zip(missing, vectors, strict=True))
        return out

    def _older_neighbours(self, ctx: Context, node: MemoryNode, vector: list[float] | None) -> list[MemoryNode]:
        """The nearest active observations created before `node`, from other consolidation batches."""
        user_id, agent_id = scope(ctx)
        wanted = self.params.neighbours + 10  # room for same-batch ones filtered out below
        text = None if vector is not None else node.content  # no vector at all: fall back to BM25
        query = SearchQuery(text=text, embedding=vector, top_k=wanted, candidates=wanted)
        where = MemoryFilter(agent_id=agent_id, memory_types=(MemoryType.OBSERVATION,), created_before=node.created_at)
        sources = set(node.source_message_ids)
        out = []
        for hit in self.resources.store.search_memories(user_id, query, where):
            other = hit.memory
            if sources & set(other.source_message_ids):
                continue
            if hit.vector_similarity is not None and hit.vector_similarity < self.params.min_similarity:
                continue
            out.append(other)
        return out[: self.params.neighbours]

    def _judge(self, ctx: Context, pairs: list[tuple[MemoryNode, list[MemoryNode]]]) -> list[Judged]:
        """Ask about one batch; returns (new id, older id, relation) for the pairs that were offered."""
        zone = user_zone(self, ctx)
        olders = list({c.id: c for _, older in pairs for c in older}.values())
        label = {c.id: n for n, c in enumerate(olders, 1)}
        new_lines = [
            memory_line(f"N{n}", node, zone) + "\n    compare with: " + ", ".join(f"O{label[c.id]}" for c in cs)
            for n, (node, cs) in enumerate(pairs, 1)
        ]
        answer = self.ask(
            FindingsAnswer,
            older="\n".join(memory_line(f"O{n}", c, zone) for n, c in enumerate(olders, 1)),
            new="\n".join(new_lines),
        )
        out = []
        for f in answer.findings:
            if f.relation == "unrelated" or not (0 < f.new <= len(pairs) and 0 < f.older <= len(olders)):
                continue
            node, offered = pairs[f.new - 1]
            older = olders[f.older - 1]
            if any(c.id == older.id for c in offered):  # a pair the model was not asked about is ignored
                out.append((node.id, older.id, f.relation))
        return out


def apply_findings(state: dict[str, MemoryNode], findings: list[Judged], now: datetime) -> list[MemoryNode]:
    """Apply (new id, older id, relation) findings in order; returns the changed nodes.

    A node is expired at most once (the first finding wins). A winner already expired in this
    run is replaced by the node that superseded it, so chains end at an active node, never a cycle.
    """
    changed: dict[str, None] = {}
    for new_id, older_id, relation in findings:
        loser, winner = (older_id, new_id) if relation == "contradiction" else (new_id, older_id)
        if state[loser].status is not MemoryStatus.ACTIVE:
            continue
        while state[winner].status is not MemoryStatus.ACTIVE and state[winner].superseded_by in state:
            winner = str(state[winner].superseded_by)  # expiries only ever point at active nodes: no cycle
        if winner == loser or state[winner].status is not MemoryStatus.ACTIVE:
            continue
        lost = state[loser]
        state[loser] = lost.model_copy(
            update={"status": MemoryStatus.EXPIRED, "superseded_by": winner, "updated_at": now}
        )
        changed[loser] = None
        if relation == "repeat":
            state[winner] = merge_repeat(state[winner], lost, now)
            changed[winner] = None
    return [state[i] for i in changed]


def merge_repeat(kept: MemoryNode, repeat: MemoryNode, now: datetime) -> MemoryNode:
    """`kept` plus what `repeat` adds: its sources, its event time if `kept` has none, the higher importance."""
    return kept.model_copy(
        update={
            "source_message_ids": list(dict.fromkeys([*kept.source_message_ids, *repeat.source_message_ids])),
            "source_memory_ids": list(dict.fromkeys([*kept.source_memory_ids, *repeat.source_memory_ids])),
            "event_time": kept.event_time or repeat.event_time,
            "importance": max(kept.importance, repeat.importance),
            "updated_at": now,
        }
    )
