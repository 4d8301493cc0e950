"""`memscope reembed`: fill a store with vectors of the configured embedding model after a model change."""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

from memscope.config import Settings
from memscope.errors import StoreError
from memscope.llm.base import Embedder
from memscope.llm.factory import make_embedder
from memscope.runtime import open_store
from memscope.stores.base import Store

__all__ = ["reembed"]

BATCH = 256


def reembed(
    settings: Settings, *, embedder: Embedder | None = None, progress: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    """Drop the store's vectors, record the configured model, and embed every message and active memory
    again. Safe to interrupt and run again: it carries on with the rows still missing a vector."""
    from memscope.retrieval import message_embedding_texts

    store: Store = open_store(settings)
    embedder = embedder or make_embedder(settings.embedding)
    if not hasattr(store, "clear_embeddings"):
        raise StoreError(
            "re-embedding works on the SQLite store; for Elasticsearch, whose mapping fixes the vector "
            "dimension, set store.elasticsearch.index_prefix to a new prefix and add the history again"
        )
    zone = ZoneInfo(settings.timezone)
    counts = {"users": 0, "messages": 0, "memories": 0}
    try:
        for user in store.clear_embeddings(embedder.name, embedder.dim):  # type: ignore[attr-defined]
            counts["users"] += 1
            while messages := store.messages_without_embedding(user, BATCH):
                vectors = embedder.embed(message_embedding_texts(store, user, messages, zone))
                store.set_message_embeddings(user, {m.id: v.tolist() for m, v in zip(messages, vectors, strict=True)})
                counts["messages"] += len(messages)
            while memories := store.memories_without_embedding(user, BATCH):  # type: ignore[attr-defined]
                vectors = embedder.embed([n.content for n in memories])
                store.set_memory_embeddings(  # type: ignore[attr-defined]
                    user, {n.id: v.tolist() for n, v in zip(memories, vectors, strict=True)}
                )
                counts["memories"] += len(memories)
            if progress is not None:
                progress(user, counts["users"])
    finally:
        store.close()
    return counts
