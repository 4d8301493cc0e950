"""embed_messages: vectors for the user's messages that have none, so raw turns are vector-searchable."""

from __future__ import annotations

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import user_zone
from memscope.retrieval import message_embedding_texts


@worker("embed_messages")
class EmbedMessages(Worker):
    """Embed the user's messages that have no vector yet, in batches (no LLM; skipped without an embedder).

    The text embedded is the speaker, the day, the content and the turn it replies to (see
    `message_embedding_text`).
    """

    reads = ("user_id",)
    optional_reads = ("timezone",)
    writes = ("embedded_messages",)

    class Params(WorkerParams):
        batch_size: int = 256  # messages per embedder call
        max_batches: int = 8  # bound one run's work; the next run continues

    params: Params

    def run(self, ctx: Context) -> None:
        embedder, store = self.resources.embedder, self.resources.store
        done: list[str] = []
        seen: set[str] = set()
        if embedder is None:
            ctx["embedded_messages"] = done
            return
        user_id = ctx["user_id"]
        zone = user_zone(self, ctx)
        store.check_embedding_model(embedder.name, embedder.dim)
        for _ in range(self.params.max_batches):
            found = store.messages_without_embedding(user_id, limit=self.params.batch_size)
            batch = [m for m in found if m.id not in seen]  # a vector the store refused: do not loop on it
            if not batch:
                break
            vectors = embedder.embed(message_embedding_texts(store, user_id, batch, zone))
            store.set_message_embeddings(
                user_id, {m.id: [float(x) for x in v] for m, v in zip(batch, vectors, strict=True)}
            )
            done.extend(m.id for m in batch)
            seen.update(m.id for m in batch)
            if len(batch) < self.params.batch_size:
                break
        ctx["embedded_messages"] = done
