"""find_memories_to_delete: the memories a delete request means, marked DELETED (a soft delete).

By id, or by `content_match`: every ACTIVE memory whose content contains the text, compared
case-insensitively after Unicode NFKC normalisation. Matching is literal on purpose: a delete must
do exactly what was asked, and a similarity threshold could remove a memory the user never meant.
The event log keeps each memory's content from before the delete.
"""

from __future__ import annotations

import unicodedata

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import scope
from memscope.errors import ValidationError
from memscope.models import MemoryNode, MemoryStatus
from memscope.stores.base import MemoryFilter


@worker("find_memories_to_delete")
class FindMemoriesToDelete(Worker):
    """Find memories by id or by contained text and mark them deleted (soft: history keeps them)."""

    reads = ("user_id",)
    optional_reads = ("memory_id", "content_match", "agent_id")
    writes = ("memory_updates",)

    class Params(WorkerParams):
        max_matches: int = 1000  # a content match hitting more than this is refused as too broad

    params: Params

    def run(self, ctx: Context) -> None:
        user_id, agent_id = scope(ctx)
        memory_id, match = ctx.get("memory_id"), ctx.get("content_match")
        if isinstance(match, str) and not match.strip():
            raise ValidationError("content_match must not be blank: it would match every memory")
        if memory_id is None and match is None:
            raise ValidationError(
                "pass memory_id (the memory to delete) or content_match (text its content contains)"
            )
        if memory_id is not None and match is not None:
            raise ValidationError("pass memory_id or content_match, not both")
        store = self.resources.store
        if memory_id is not None:
            node = store.get_memory(user_id, str(memory_id))
            found = [node] if node is not None and (agent_id is None or node.agent_id == agent_id) else []
        else:
            active = store.list_memories(user_id, MemoryFilter(agent_id=agent_id))
            needle = _norm(str(match))
            found = [n for n in active if needle in _norm(n.content)]
            if len(found) > self.params.max_matches:
                raise ValidationError(
                    f"content_match {match!r} matches {len(found)} memories (over {self.params.max_matches});"
                    " give a more specific text or delete by memory_id"
                )
        now = self.resources.now()
        ctx["memory_updates"] = [_deleted(n, now) for n in found if n.status is not MemoryStatus.DELETED]


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _deleted(node: MemoryNode, now: object) -> MemoryNode:
    return node.model_copy(update={"status": MemoryStatus.DELETED, "updated_at": now})
