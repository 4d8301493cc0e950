"""update_memory_content: change a memory's content, importance, metadata or key (update_memory).

Metadata is merged into the memory's (a key given as None is removed). A content change clears the
embedding so store_memories embeds the new text. Unknown or deleted ids write [] (not found).
"""

from __future__ import annotations

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import scope
from memscope.errors import ValidationError
from memscope.models import MemoryStatus
from memscope.observations import validate_node

_FIELDS = ("content", "importance", "metadata", "key")


@worker("update_memory_content")
class UpdateMemoryContent(Worker):
    """Apply a user's edit (content, importance, metadata, key) to one memory, ready to store."""

    reads = ("user_id", "memory_id")
    optional_reads = _FIELDS
    writes = ("memory_updates",)

    class Params(WorkerParams):
        pass

    def run(self, ctx: Context) -> None:
        user_id, _ = scope(ctx)
        changes = {name: ctx.get(name) for name in _FIELDS if ctx.get(name) is not None}
        if not changes:
            raise ValidationError("nothing to update: pass content, importance, metadata or key")
        node = self.resources.store.get_memory(user_id, str(ctx["memory_id"]))
        if node is None or node.status is MemoryStatus.DELETED:
            ctx["memory_updates"] = []
            return
        data = node.model_dump()
        if "content" in changes:
            content = changes["content"]
            if not isinstance(content, str) or not content.strip():
                raise ValidationError("content must be non-empty text")
            changes["content"] = content.strip()
            if changes["content"] != node.content:
                data["embedding"] = None
        if "metadata" in changes:
            if not isinstance(changes["metadata"], dict):
                raise ValidationError(f"metadata must be a mapping, got {type(changes['metadata']).__name__}")
            merged = {**node.metadata, **changes["metadata"]}
            changes["metadata"] = {k: v for k, v in merged.items() if v is not None}
        data.update(changes, updated_at=self.resources.now())
        ctx["memory_updates"] = [validate_node(**data)]
