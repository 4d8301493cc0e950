"""Approximate kNN on Elasticsearch against exact search: recall and latency per `num_candidates`.

    python -m benchmarks.knn_recall --memories 100000 --queries 200

Fills fresh indices (deleted afterwards) with one user's synthetic memories (the retrieval bench's
corpus, plus a second user's as noise), then runs the store's own kNN clause (tenant, agent and
status filters inside `knn`) for each `num_candidates`, and compares the ids with the exact
top-k computed in numpy from the same vectors. The exact search cannot run on the server: its
`script_score` needs painless, which the minimal distribution lacks.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from typing import Any

import numpy as np

from benchmarks._common import summarize
from benchmarks.retrieval import SyntheticCorpus, _nodes

__all__ = ["run_knn_recall"]


def run_knn_recall(memories: int, queries: int, k: int, candidates: list[int], url: str) -> list[dict[str, Any]]:
    """One row per num_candidates: recall@k against exact cosine top-k, and kNN latency percentiles."""
    from memscope.stores import es_queries as q
    from memscope.stores.base import MemoryFilter
    from memscope.stores.elasticsearch import ElasticsearchStore

    corpus = SyntheticCorpus()
    store = ElasticsearchStore(url, index_prefix=f"memscope-knn-{uuid.uuid4().hex[:10]}", request_timeout_s=300.0)
    try:
        vectors: list[np.ndarray] = []
        ids: list[str] = []
        started = time.perf_counter()
        for user, count in (("user0000", memories), ("noise", memories // 10)):
            for start in range(0, count, 2000):
                nodes = _nodes(user, corpus, min(2000, count - start), start)
                store.write_memories(nodes, operation="bench")
                if user == "user0000":
                    ids += [n.id for n in nodes]
                    vectors += [np.asarray(n.embedding, dtype=np.float32) for n in nodes]
        es = store._es()
        es.indices.refresh(index=store.alias("memories"))
        fill_s = time.perf_counter() - started
        matrix = np.stack(vectors)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        probes = corpus.vectors(queries, spread=0.8)
        exact = [set(np.asarray(ids)[np.argsort(-(matrix @ p))[:k]]) for p in probes]
        where = q.memory_filter("user0000", MemoryFilter())
        rows = []
        for nc in candidates:
            recalls, samples = [], []
            for probe, truth in zip(probes, exact, strict=True):
                body = q.knn_body(where, probe.tolist(), k, messages=False)
                body["knn"]["num_candidates"] = max(nc, k)
                body["_source"] = False
                t0 = time.perf_counter()
                hits = es.search(index=store.alias("memories"), **q.search_kwargs(body))["hits"]["hits"]
                samples.append((time.perf_counter() - t0) * 1000)
                recalls.append(len({h["_id"] for h in hits} & truth) / k)
            lat = summarize(samples).to_dict()
            rows.append({"memories": memories, "k": k, "num_candidates": max(nc, k),
                         "recall": round(float(np.mean(recalls)), 4), "min_recall": round(float(np.min(recalls)), 3),
                         "p50_ms": lat["p50"], "p95_ms": lat["p95"], "fill_s": round(fill_s, 1)})  # fmt: skip
        return rows
    finally:
        store.delete_indices()
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=50, help="the hybrid search's per-channel window (candidates)")
    parser.add_argument("--num-candidates", default="50,100,200,400,1000")
    parser.add_argument("--es-url", default=os.environ.get("MEMSCOPE_ES_URL", "http://127.0.0.1:9200"))
    args = parser.parse_args()
    candidates = [int(x) for x in args.num_candidates.split(",")]
    for row in run_knn_recall(args.memories, args.queries, args.k, candidates, args.es_url):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
