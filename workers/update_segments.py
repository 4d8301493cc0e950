"""update_segments: the mid-term tier. Each conversation session is one `segment` memory: a summary of
what was learnt in it, and its heat. Turns with no session_id belong to the short-term tier only.

The summary is extractive, no model call: the observations this batch drew from the segment's turns
(or, when none, its user turns, clipped), newest kept. The turn count is read from the message log,
so re-running a batch never counts twice; with no model configured (a degraded run) it writes
nothing. A segment whose heat reaches `tiers.heat.threshold` (and was not promoted since its last
turn) is written to `hot_segments`: the job then updates the profile and beliefs, and the
consolidation's RunReport counts it.
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
from memscope.stores.base import MessageFilter

POINTS = "points"  # metadata: the summary's lines


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

    params: Params

    def run(self, ctx: Context) -> None:
        if ctx.degraded:  # no model: nothing was learnt, the turns stay pending (and searchable as messages)
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
        ctx["segment_updates"] = updates
        ctx["hot_segments"] = hot

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
        learnt = [n.content for n in changes if n.status is MemoryStatus.ACTIVE
                  and n.memory_type is MemoryType.OBSERVATION and ids.intersection(n.source_message_ids)]
        if not learnt:
            learnt = [f"{m.role.value}: {m.content}" for m in turns if m.role is Role.USER]
        node_id = stable_id(user_id, agent or DEFAULT_AGENT, "segment", label)
        old = self.resources.store.get_memory(user_id, node_id)
        if old is not None and old.status is not MemoryStatus.ACTIVE:
            return None  # deleted by request: never revived
        points = list(old.metadata.get(POINTS, [])) if old is not None else []
        points += [_clip(" ".join(text.split()), self.params.max_point_chars) for text in learnt]
        points = list(dict.fromkeys(p for p in points if p))[-self.params.max_points :]
        if not points:
            return None
        count, last = self._turns(user_id, agent, label)
        meta = {**(old.metadata if old is not None else {}), POINTS: points, TURNS: count,
                LAST_ACTIVE: last.isoformat(), "session_id": turns[0].session_id}
        content = "; ".join(points)
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
