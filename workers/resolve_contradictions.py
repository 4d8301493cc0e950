"""resolve_contradictions: label each new observation new, a repeat, or a contradiction; the newer fact wins.

A repeat is dropped and its sources are merged into the memory it repeats. A contradicted stored
memory is expired (`superseded_by` = the new one), never deleted; between two new observations the
one from the later message wins and the other is stored expired, so the history keeps both.
A new observation whose stable id is already stored was written by an interrupted run of this
same batch (memories are written before messages are marked): it is left as it is.
"""

from __future__ import annotations

import re
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_validator

from memscope.engine import Context, WorkerParams, worker
from memscope.engine.llm_worker import LLMWorker
from memscope.engine.worker import user_zone
from memscope.models import MemoryNode, MemoryStatus
from memscope.observations import format_date
from memscope.stores.base import MemoryFilter

_REF = re.compile(r"^\[?\s*([EN])\s*(\d+)\s*\]?$", re.IGNORECASE)


class Decision(BaseModel):
    """The label of one new observation; targets name memories as "E3" (existing) or "N1" (new)."""

    new: int
    action: Literal["new", "repeat", "contradicts"] = "new"
    targets: list[str] = Field(default_factory=list)
    reason: str = ""

    @field_validator("action", mode="before")
    @classmethod
    def _action(cls, value: object) -> object:
        text = str(value).strip().lower()
        if text.startswith(("repeat", "duplicate", "same")):
            return "repeat"
        if text.startswith(("contradict", "conflict", "update", "supersede")):
            return "contradicts"
        return text

    @field_validator("targets", mode="before")
    @classmethod
    def _targets(cls, value: object) -> object:
        items = value if isinstance(value, list) else [value] if value not in (None, "") else []
        return [f"E{v}" if isinstance(v, int) else str(v) for v in items]


class ResolveAnswer(BaseModel):
    """One decision per new observation (omitted ones count as new)."""

    decisions: list[Decision] = Field(default_factory=list)


def _lines(prefix: str, nodes: list[MemoryNode], zone: ZoneInfo) -> str:
    """One line per memory: `[E1] 2023-01-10 (Tuesday) | Tom works at Meta`."""
    return (
        "\n".join(
            f"[{prefix}{n}] {format_date(node.created_at, zone)} | {node.content}"
            for n, node in enumerate(nodes, start=1)
        )
        or "(none)"
    )


@worker("resolve_contradictions")
class ResolveContradictions(LLMWorker):
    """Label each new observation new, a repeat of a memory, or contradicting some; expire what it replaces."""

    writes = ("memory_updates",)

    class Params(WorkerParams):
        max_candidates: int = 50  # existing memories shown to the model
        new_fields: list[str] = ["new_observations", "timed_observations"]
        existing_fields: list[str] = ["similar_observations", "recent_observations"]

    params: Params

    @classmethod
    def declared_reads(cls, params: WorkerParams) -> tuple[str, ...]:
        """user_id plus the fields named by `new_fields` and `existing_fields`."""
        assert isinstance(params, ResolveContradictions.Params)
        return ("user_id", *params.new_fields, *params.existing_fields)

    def run(self, ctx: Context) -> None:
        new = list({n.id: n for f in self.params.new_fields for n in ctx[f]}.values())
        if new:
            ids = [n.id for n in new]
            statuses = tuple(MemoryStatus)
            stored = self.resources.store.list_memories(ctx["user_id"], MemoryFilter(ids=ids, statuses=statuses))
            done = {m.id for m in stored}
            new = sorted((n for n in new if n.id not in done), key=lambda n: n.created_at)  # stable: ties keep order
        if not new:
            ctx["memory_updates"] = []
            return
        existing = list({m.id: m for f in self.params.existing_fields for m in ctx[f]}.values())
        existing = [m for m in existing if m.status is MemoryStatus.ACTIVE][: self.params.max_candidates]
        if len(new) == 1 and not existing:
            ctx["memory_updates"] = new
            return
        zone = user_zone(self, ctx)
        answer = self.ask(ResolveAnswer, existing=_lines("E", existing, zone), new=_lines("N", new, zone))
        ctx["memory_updates"] = self.apply(answer, new, existing)

    def apply(self, answer: ResolveAnswer, new: list[MemoryNode], existing: list[MemoryNode]) -> list[MemoryNode]:
        """The nodes to write: kept and expired new ones, plus the existing ones that changed."""
        now = self.resources.now()
        pool = {("N", i): n.model_copy(deep=True) for i, n in enumerate(new, start=1)}
        pool.update({("E", i): m.model_copy(deep=True) for i, m in enumerate(existing, start=1)})
        repeat_of: dict[int, tuple[str, int]] = {}
        contradicts: dict[int, list[tuple[str, int]]] = {}
        for d in answer.decisions:
            refs = [r for r in map(_ref, d.targets) if r in pool and r != ("N", d.new)]
            if ("N", d.new) in pool and refs and d.action == "repeat":
                repeat_of[d.new] = refs[0]
            elif ("N", d.new) in pool and refs and d.action == "contradicts":
                contradicts[d.new] = refs

        def expire(key: tuple[str, int], winner: MemoryNode) -> None:
            node = pool[key]
            node.status, node.superseded_by, node.updated_at = MemoryStatus.EXPIRED, winner.id, now

        for i, refs in sorted(contradicts.items()):  # new against new: the later message wins
            for ref in (r for r in refs if r[0] == "N"):
                later = new[ref[1] - 1].created_at > new[i - 1].created_at
                expire(("N", i) if later else ref, pool[ref] if later else pool[("N", i)])
        changed: set[tuple[str, int]] = set(pool) - {("E", i) for i in range(1, len(existing) + 1)}
        for i, refs in sorted(contradicts.items()):  # a later contradiction of the same memory wins
            for ref in (r for r in refs if r[0] == "E"):
                expire(ref, _final(pool, ("N", i)))
                changed.add(ref)
        for i in repeat_of:
            target, seen = repeat_of[i], {i}
            while target[0] == "N" and target[1] in repeat_of and target[1] not in seen:
                seen.add(target[1])
                target = repeat_of[target[1]]
            if target[0] == "N" and target[1] in seen:
                continue  # a cycle of repeats: keep this one as new
            kept, dropped = pool[target], pool[("N", i)]
            extra = [s for s in dropped.source_message_ids if s not in kept.source_message_ids]
            if extra or dropped.importance > kept.importance:
                kept.source_message_ids = sorted([*kept.source_message_ids, *extra])
                kept.importance = max(kept.importance, dropped.importance)
                kept.updated_at = now
                changed.add(target)
            changed.discard(("N", i))
        return [node for key, node in pool.items() if key in changed]


def _final(pool: dict[tuple[str, int], MemoryNode], key: tuple[str, int]) -> MemoryNode:
    """The node that finally replaces `key` among the new ones (following superseded_by)."""
    by_id = {n.id: n for k, n in pool.items() if k[0] == "N"}
    node, seen = pool[key], {pool[key].id}
    while node.superseded_by in by_id and node.superseded_by not in seen:
        node = by_id[node.superseded_by]
        seen.add(node.id)
    return node


def _ref(text: str) -> tuple[str, int] | None:
    match = _REF.match(text.strip())
    return (match.group(1).upper(), int(match.group(2))) if match else None
