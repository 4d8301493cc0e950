"""update_segments: the mid-term tier. Each conversation session is one `segment` memory: a summary of
what was learnt in it, and its heat. Turns with no session_id belong to the short-term tier only.

The summary is extractive, no model call: the observations this batch drew from the segment's turns
(or, when none, its user turns, clipped), newest kept. A line whose observation a later batch expires
(a superseded fact) leaves every segment that carries it, so a segment never restates an old fact.
The turn count is read from the message log, so re-running a batch never counts twice; with no model
configured (a degraded run) it writes nothing. A segment whose heat reaches `tiers.heat.threshold`
(and was not promoted since its last turn) is written to `hot_segments`: the job then updates the
profile and beliefs, and the consolidation's RunReport counts it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from memscope.config import HeatSettings
from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import scope
from memscope.heat import LAST_ACTIVE, PROMOTED_AT, SEGMENT_KEY, TURNS, segment_heat
from memscope.models import DEFAULT_AGENT, MemoryNode, MemoryStatus, MemoryType, Message, Role
from memscope.observations import stable_id
from memscope.stores.base import MemoryFilter, MessageFilter

POINTS = "points"  # metadata: the summary's lines
POINT_IDS = "point_ids"  # metadata: the observation each line came from (None for a quoted turn)


@worker("update_segments")
class UpdateSegments(Worker):
    """Summarise each session of the batch into its segment memory, count its turns, flag hot ones."""

    reads = ("user_id", "messages", "memory_updates")
    optional_reads = ("agent_id",)
    writes = ("segment_updates", "hot_segments")

    class Params(WorkerParams):
        max_points: int = 8  # summary lines kept per segment, newest
        max_point_chars: int = 200
        max_turns_counted: int = 10_000
        max_segments_checked: int = 1_000  # when an observation expires, the segments whose lines may cite it

    params: Params

    def run(self, ctx: Context) -> None:
        if ctx.report.degraded:  # no model: nothing was learnt, the turns stay pending (and searchable as messages)
            ctx["segment_updates"], ctx["hot_segments"] = [], []
            return
        batch: list[Message] = ctx["messages"]
        groups: dict[tuple[str, str], list[Message]] = defaultdict(list)
        for m in batch:
            if m.session_id is not None:
                groups[(m.agent_id, m.session_id)].append(m)
        settings = self.resources.settings
        weights = settings.tiers.heat if settings is not None else HeatSettings()
        now = self.resources.now()
        updates: list[MemoryNode] = []
        hot: list[MemoryNode] = []
        for (agent, label), turns in groups.items():
            node = self._segment(ctx, agent, label, turns, ctx["memory_updates"] or [], now)
            if node is None:
                continue
            h = segment_heat(node, now, weights)
            promoted = node.metadata.get(PROMOTED_AT)
            last = datetime.fromisoformat(node.metadata[LAST_ACTIVE])
            if h >= weights.threshold and (not promoted or datetime.fromisoformat(promoted) < last):
                node.metadata[PROMOTED_AT] = now.isoformat()
                hot.append(node)
                ctx.notice(f"segment {label!r} is hot (heat {h:.1f} >= {weights.threshold:g}): "
                           "the profile and beliefs are updated next")
            updates.append(node)
        ctx["segment_updates"] = updates + self._without_superseded(ctx, ctx["memory_updates"] or [], updates)
        ctx["hot_segments"] = hot

    def _without_superseded(
        self, ctx: Context, changes: list[MemoryNode], updated: list[MemoryNode]
    ) -> list[MemoryNode]:
        """Other segments of the user, rewritten without the lines of observations this batch expired
        (a segment left with no line keeps its old summary until its session speaks again)."""
        gone = {n.id for n in changes if n.status is not MemoryStatus.ACTIVE}
        if not gone:
            return []
        user_id, agent_id = scope(ctx)
        done = {n.id for n in updated}
        kinds = MemoryFilter(agent_id=agent_id, memory_types=(MemoryType.SEGMENT,))
        rewritten = []
        for node in self.resources.store.list_memories(user_id, kinds, limit=self.params.max_segments_checked):
            if node.id in done:
                continue
            kept = [(i, p) for i, p in _points(node) if i not in gone]
            if kept and len(kept) < len(_points(node)):
                rewritten.append(_with_points(node, kept, self.resources.now()))
        return rewritten

    def _segment(
        self,
        ctx: Context,
        agent: str,
        label: str,
        turns: list[Message],
        changes: list[MemoryNode],
        now: datetime,
    ) -> MemoryNode | None:
        user_id, _ = scope(ctx)
        ids = {m.id for m in turns}
        learnt: list[tuple[str | None, str]] = [
            (n.id, n.content) for n in changes if n.status is MemoryStatus.ACTIVE
            and n.memory_type is MemoryType.OBSERVATION and ids.intersection(n.source_message_ids)
        ]  # fmt: skip
        if not learnt:
            learnt = [(None, f"{m.role.value}: {m.content}") for m in turns if m.role is Role.USER]
        gone = {n.id for n in changes if n.status is not MemoryStatus.ACTIVE}
        node_id = stable_id(user_id, agent or DEFAULT_AGENT, "segment", label)
        old = self.resources.store.get_memory(user_id, node_id)
        if old is not None and old.status is not MemoryStatus.ACTIVE:
            return None  # deleted by request: never revived
        points = [(i, p) for i, p in (_points(old) if old is not None else []) if i not in gone]
        points += [(i, _clip(" ".join(text.split()), self.params.max_point_chars)) for i, text in learnt]
        unique = {p: i for i, p in points if p}  # one line per text, the latest source wins
        points = [(i, p) for p, i in unique.items()][-self.params.max_points :]
        if not points:
            return None
        count, last = self._turns(user_id, agent, label)
        meta = {**(old.metadata if old is not None else {}), POINTS: [p for _, p in points],
                POINT_IDS: [i for i, _ in points], TURNS: count, LAST_ACTIVE: last.isoformat(),
                "session_id": turns[0].session_id}
        content = "; ".join(p for _, p in points)
        if old is not None:
            return old.model_copy(update={"content": content, "metadata": meta, "updated_at": now,
                                          "embedding": old.embedding if content == old.content else None})
        return MemoryNode(id=node_id, user_id=user_id, agent_id=agent or DEFAULT_AGENT, memory_type=MemoryType.SEGMENT,
                          content=content, key=SEGMENT_KEY + label, metadata=meta, created_at=now, updated_at=now)

    def _turns(self, user_id: str, agent: str, session: str) -> tuple[int, datetime]:
        """How many turns the session has in the log (the batch's included), and when the newest was said."""
        where = MessageFilter(agent_id=agent, session_id=session)
        logged = self.resources.store.list_messages(user_id, where, limit=self.params.max_turns_counted)
        return len(logged), max(m.created_at for m in logged)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _points(node: MemoryNode) -> list[tuple[str | None, str]]:
    """A segment's summary lines with the observation each came from (None: unknown or a quoted turn)."""
    lines = list(node.metadata.get(POINTS, []))
    ids = list(node.metadata.get(POINT_IDS, []))
    ids = ids if len(ids) == len(lines) else [None] * len(lines)
    return list(zip(ids, lines, strict=True))


def _with_points(node: MemoryNode, points: list[tuple[str | None, str]], now: datetime) -> MemoryNode:
    """The segment with these summary lines (and so a new embedding)."""
    meta = {**node.metadata, POINTS: [p for _, p in points], POINT_IDS: [i for i, _ in points]}
    return node.model_copy(update={"content": "; ".join(p for _, p in points), "metadata": meta,
                                   "updated_at": now, "embedding": None})
