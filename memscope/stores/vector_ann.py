"""An approximate first pass for large vector indexes: an HNSW graph (usearch) over a frozen prefix of rows.

The graph proposes candidates; every candidate is then rescored exactly against the float32 matrix
and checked against the filter mask, so the graph only decides which rows are looked at, never a
score or whether a row may be returned. Rows added after the graph was built (the tail) and rows
rewritten since (stamped with a later version) are always scored exactly. Without `usearch` installed
every search is exact.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ANN_MIN_ROWS", "AnnGraph", "BuildStopped", "ann_available", "build_graph", "load_graph"]

ANN_MIN_ROWS = 20_000  # below this an exact product over the matrix is as fast (about 2 ms at 20k x 384)
# HNSW settings: measured on MiniLM vectors of LoCoMo turns (benchmarks/ann_recall.py); the candidate
# pool is several times the wanted count and rescored exactly, so the graph needs recall of the pool only.
_CONNECTIVITY = 16
_EXPANSION_ADD = 64
_EXPANSION_SEARCH = 128
_DTYPE = "f16"


@functools.cache
def ann_available() -> bool:
    """Whether the optional `usearch` package is installed."""
    try:
        import usearch.index  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class AnnGraph:
    """An HNSW graph over rows [0, covered) of an index as it was at `version`."""

    graph: Any  # usearch.index.Index (keys are row positions)
    covered: int
    version: int
    mapped: bool = False  # a saved graph, memory-mapped (it holds its file open)

    def candidates(self, q: np.ndarray, count: int) -> np.ndarray:
        """Row positions of (about) the `count` nearest rows by inner product, nearest first."""
        count = min(count, self.covered)
        if count <= 0:
            return np.zeros(0, dtype=np.int64)
        found = self.graph.search(q, count, threads=1)
        return np.asarray(found.keys, dtype=np.int64)

    def save(self, path: Path) -> None:
        """Write the graph to `path` (a usearch file)."""
        self.graph.save(str(path))


class BuildStopped(Exception):
    """`keep_going` said stop (the store is closing) before the graph was complete."""


def build_graph(
    matrix: np.ndarray, rows: int, version: int, keep_going: Callable[[], bool] | None = None
) -> AnnGraph:
    """A graph over the first `rows` rows of `matrix` (L2-normalised float32); usearch releases the GIL
    while it builds, and asks `keep_going` now and then (BuildStopped when it says no)."""
    from usearch.index import Index

    def progress(done: int, total: int) -> bool:
        return keep_going is None or keep_going()

    # usearch checks the callback's annotations as types, which this module's `annotations` import makes text
    progress.__annotations__ = {"done": int, "total": int, "return": bool}

    graph = Index(
        ndim=matrix.shape[1], metric="ip", dtype=_DTYPE, connectivity=_CONNECTIVITY,
        expansion_add=_EXPANSION_ADD, expansion_search=_EXPANSION_SEARCH,
    )  # fmt: skip
    if rows:
        vectors = np.ascontiguousarray(matrix[:rows])
        try:
            graph.add(np.arange(rows, dtype=np.int64), vectors, threads=1, progress=progress)
        except RuntimeError as exc:
            if keep_going is not None and not keep_going():
                raise BuildStopped(str(exc)) from exc
            raise
    return AnnGraph(graph, rows, version)


def load_graph(path: Path, covered: int, version: int) -> AnnGraph | None:
    """A saved graph, memory-mapped (read-only, loads as touched); None if unreadable. Without its key -> node
    table (searches return the keys stored in the nodes; nothing asks a graph for a key): building that
    table was two thirds of opening a 1M-row graph (110 -> 40 ms)."""
    try:
        from usearch.index import Index

        graph = Index.restore(str(path), view=True, expansion_search=_EXPANSION_SEARCH, enable_key_lookups=False)
    except (ImportError, OSError, RuntimeError, ValueError):
        return None
    if graph is None or len(graph) != covered:
        return None
    return AnnGraph(graph, covered, version, mapped=True)
