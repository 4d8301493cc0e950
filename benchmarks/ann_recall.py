"""The SQLite store's HNSW first pass against exact search, on real MiniLM embeddings of real text.

    python -m benchmarks.ann_recall --data ../shared/data/locomo --queries 300

Every LoCoMo turn of the data folder (speaker and text) is embedded with the packaged local
all-MiniLM-L6-v2 and stored as one user's memories (a quarter of them under a second agent, for a
filtered row); the graph is built with the store's own settings (`build_vector_index`, the graph
threshold lowered to the corpus size) and queries are the LoCoMo questions, embedded alike. Each
row compares the ids `search_memories` returns (vector channel only, k = 50, the retrieval's
per-channel window) with the exact cosine top-k computed in numpy from the same vectors.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import emit, summarize

__all__ = ["run_ann_recall"]


def run_ann_recall(data: Path, queries: int, k: int = 50) -> list[dict[str, Any]]:
    """Rows (no filter, agent filter): mean and worst recall@k of the store against exact, and latency."""
    from benchmarks.locomo import load_conversations
    from memscope.llm.local_embedding import LocalEmbedder
    from memscope.models import MemoryNode, MemoryStatus
    from memscope.stores.base import MemoryFilter, SearchQuery
    from memscope.stores.sqlite import SqliteStore

    conversations = load_conversations(data)
    texts = [f"{t.speaker}: {t.content}" for c in conversations for t in c.turns]
    questions = [q.question for c in conversations for q in c.scored_questions()][:queries]
    model = LocalEmbedder()
    vectors, probes = model.embed(texts), model.embed(questions)
    agents = ["other" if i % 4 == 0 else "default" for i in range(len(texts))]
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="memscope-ann-") as tmp,
        SqliteStore(Path(tmp) / "ann.db", ann_min_rows=min(1000, len(texts))) as store,
    ):
        store.write_memories([
            MemoryNode(id=f"t{i:06d}", user_id="u", agent_id=agents[i], content=text, embedding=v.tolist())
            for i, (text, v) in enumerate(zip(texts, vectors, strict=True))
        ])  # fmt: skip
        started = time.perf_counter()
        store.build_vector_index("u")
        build_s = time.perf_counter() - started
        for label, agent in (("none", None), ("agent (3/4 of rows)", "default")):
            f = MemoryFilter(statuses=(MemoryStatus.ACTIVE,), agent_id=agent)
            allowed = np.array([agent is None or a == agent for a in agents])
            recalls, samples = [], []
            for probe in probes:
                sims = np.where(allowed, vectors @ probe, -np.inf)
                truth = {f"t{i:06d}" for i in np.argsort(-sims)[:k]}
                t0 = time.perf_counter()
                hits = store.search_memories("u", SearchQuery(embedding=probe.tolist(), top_k=k, candidates=k), f)
                samples.append((time.perf_counter() - t0) * 1000)
                recalls.append(len(truth & {h.memory.id for h in hits}) / k)
            latency = summarize(samples)
            rows.append({"filter": label, "rows": len(texts), "queries": len(probes), "k": k,
                         "mean_recall": round(float(np.mean(recalls)), 4), "worst_recall": min(recalls),
                         "p50_ms": round(latency.p50, 3), "p95_ms": round(latency.p95, 3),
                         "build_s": round(build_s, 2)})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="HNSW first pass vs exact search on MiniLM embeddings of LoCoMo")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/locomo"))
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run_ann_recall(args.data, args.queries, args.k)
    columns = ["filter", "rows", "queries", "k", "mean_recall", "worst_recall", "p50_ms", "p95_ms", "build_s"]
    emit("SQLite HNSW first pass vs exact (search_memories, vector channel)", columns,
         [[r[c] for c in columns] for r in rows], rows, args.json)  # fmt: skip


if __name__ == "__main__":
    main()
