"""embed_query: the query's vector for the kNN channel; text-only search when there is no embedder."""

from __future__ import annotations

import numpy as np

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.errors import ModelUnavailable
from memscope.llm.base import embed_query, embed_query_focused, focus_words
from memscope.retrieval import clean_query, content_spans


@worker("embed_query")
class EmbedQuery(Worker):
    """Embed the query (capped length); None when it is blank or no embedder is configured."""

    reads = ("query",)
    writes = ("query_vector",)

    class Params(WorkerParams):
        max_chars: int = 2000
        fail_on_unavailable: bool = False  # False: a transient embedder outage falls back to BM25 only
        # Also embed the query's content words (question scaffolding dropped) and average the two vectors:
        # "When did Caroline go to the support group?" then sits nearer statements like "Caroline: I went
        # to a support group" (LoCoMo recall@10 of the vector channel 0.571 -> 0.590).
        blend_keywords: bool = False

    params: Params

    def run(self, ctx: Context) -> None:
        text = clean_query(ctx["query"])[: self.params.max_chars]
        embedder = self.resources.embedder
        if not text or embedder is None:
            ctx["query_vector"] = None
            return
        focus = content_spans(text) if self.params.blend_keywords else []
        try:
            # Locally the content words are pooled from the question's own forward pass (LoCoMo recall@10
            # with fp32 queries 0.789 with a second pass, 0.788 pooled; a second pass doubles the model's
            # time); a remote embedder gets one batch of two, one round trip.
            if not focus or focus_words(text, focus) == text:
                vectors = embed_query(embedder, [text])
            else:
                vectors = embed_query_focused(embedder, text, focus)
            vector = np.mean(vectors, axis=0)
            norm = float(np.linalg.norm(vector))
            vector = vector / norm if norm > 0 else vector
        except ModelUnavailable as exc:
            if self.params.fail_on_unavailable:
                raise
            ctx.notice(f"embedder unavailable ({exc}); this retrieval used text search only")
            ctx["query_vector"] = None
            return
        ctx["query_vector"] = [float(x) for x in vector]
