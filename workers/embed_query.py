"""embed_query: the query's vector for the kNN channel; text-only search when there is no embedder."""

from __future__ import annotations

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.errors import ModelUnavailable
from memscope.workers._retrieval import clean_query


@worker("embed_query")
class EmbedQuery(Worker):
    """Embed the query (capped length); None when it is blank or no embedder is configured."""

    reads = ("query",)
    writes = ("query_vector",)

    class Params(WorkerParams):
        max_chars: int = 2000
        fail_on_unavailable: bool = False  # False: a transient embedder outage falls back to BM25 only

    params: Params

    def run(self, ctx: Context) -> None:
        text = clean_query(ctx["query"])[: self.params.max_chars]
        embedder = self.resources.embedder
        if not text or embedder is None:
            ctx["query_vector"] = None
            return
        try:
            vector = embedder.embed([text])[0]
        except ModelUnavailable as exc:
            if self.params.fail_on_unavailable:
                raise
            ctx.notice(f"embedder unavailable ({exc}); this retrieval used text search only")
            ctx["query_vector"] = None
            return
        ctx["query_vector"] = [float(x) for x in vector]
