"""The SQLite store's in-memory vector index: one user's vectors as a matrix, filter masks, top-k search.

The matrix holds L2-normalised float32 rows; the columns filters need (status, agent, times...) sit
beside it as numpy arrays, so a filtered search is a boolean mask, not SQL. `apply_rows` patches
changed rows into a copy (the cache is never mutated in place), except that the matrix keeps room for
rows added later: new rows are written past the rows any existing index sees (see `RowBuffer`).

Search is exact cosine (one float32 matrix-vector product over the allowed rows, then a partial sort)
until the index is large and has an HNSW graph (`vector_ann`): then the graph proposes a pool of
candidates, which are rescored exactly and filtered; a selective filter goes exact over its rows.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from memscope.stores.base import MemoryFilter, MessageFilter
from memscope.stores.sqlite_rows import span_bounds, to_us
from memscope.stores.vector_ann import ANN_MIN_ROWS, AnnGraph, ann_available
from memscope.stores.vector_ids import PACKED_FILES, RowIds

__all__ = [
    "NUMERIC",
    "TIME_ORDER",
    "VECTOR_COLUMNS",
    "VectorIndex",
    "apply_rows",
    "empty_index",
    "memory_mask",
    "message_mask",
    "needs_graph",
    "search",
    "top_matches",
    "upkeep",
]

VECTOR_COLUMNS = {
    "memories": "id, embedding, dim, agent_id, memory_type, status, key, time_start, time_end, created_at,"
    " reflected_at IS NOT NULL AS reflected",
    "messages": "id, embedding, dim, agent_id, session_id, consolidated_at IS NULL AS pending, created_at",
}
# Rows are laid out in this column's order when an index is built from the table (rows added later are
# appended): a time-filtered search then reads one contiguous run of the matrix, not rows scattered over it.
TIME_ORDER = {"memories": "time_start", "messages": "created_at"}
NUMERIC = {
    "alive": np.bool_,
    "time_start": np.int64,
    "time_end": np.int64,
    "created_at": np.int64,
    "pending": np.bool_,
    "reflected": np.bool_,
    "stamp": np.int64,  # the index version that last wrote the row (rows newer than the graph are exact-scored)
}
_EXACT_SHARE = 0.05  # a filter letting fewer rows than this share through is searched exactly over those rows
_POOL_MIN = 200  # smallest candidate pool asked of the graph
_POOL_FACTOR = 4  # pool = this many times the wanted count (scaled up by how selective the filter is)
_MASKS_KEPT = 16  # column masks (`VectorIndex.isin`) kept per index
_ROOM_SHARE = 0.1  # a copied matrix keeps room for this share more rows, plus _ROOM_MIN: a small index stays
_ROOM_MIN = 64  # small (the vector cache's budget counts the room), and copying it is cheap anyway


class RowBuffer:
    """A matrix with room for rows added later, shared by the indexes patched from one another: each index
    sees only its own first rows, so rows written past the newest index's are invisible to older ones."""

    def __init__(self, buf: np.ndarray, used: int) -> None:
        self.buf = buf
        self.used = used  # rows the newest index on this buffer sees
        self._lock = threading.Lock()

    def claim(self, used: int, rows: int) -> bool:
        """Take rows `used`..`rows` for a new index patched from the one that sees `used` rows: only when that
        index is the newest on this buffer (two patches of one index must not share rows) and there is room."""
        with self._lock:
            if self.used != used or rows > len(self.buf):
                return False
            self.used = rows
            return True

    @staticmethod
    def copied(matrix: np.ndarray, rows: int) -> RowBuffer:
        """A new buffer holding `matrix` (its first rows), with room past `rows`."""
        room = _ROOM_MIN + int(rows * _ROOM_SHARE)
        buf = np.zeros((rows + room, matrix.shape[1]), dtype=np.float32)
        buf[: len(matrix)] = matrix
        return RowBuffer(buf, rows)


@dataclass(frozen=True)
class VectorIndex:
    """One user's vectors of one dimension, L2-normalised, with the columns filters need."""

    version: int
    ids: RowIds  # position -> id and id -> position
    matrix: np.ndarray
    cols: dict[str, np.ndarray]  # numbers per row
    cats: dict[str, tuple[list[Any], np.ndarray]]  # text per row as (distinct values, code per row)
    ann: AnnGraph | None = None  # candidate generator over a prefix of the rows (large indexes only)
    saved: int = -1  # the version of the snapshot on disk this index extends (-1: none)
    rows: RowBuffer | None = field(default=None, compare=False, repr=False)  # `matrix` is its first rows
    masks: dict[tuple[str, frozenset[str | None]], np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    @property
    def nbytes(self) -> int:
        """Bytes the arrays hold in the process's heap: a memory-mapped snapshot's pages belong to the OS
        page cache (shared, dropped under pressure), so they do not count against the cache's budget."""
        matrix = self.rows.buf if self.rows is not None else self.matrix  # with its room
        arrays = [matrix, *self.cols.values(), *(codes for _, codes in self.cats.values())]
        return int(sum(a.nbytes for a in arrays if not isinstance(a, np.memmap)))

    @property
    def open_files(self) -> int:
        """How many files of a snapshot this index reads in place: each holds a descriptor open while cached."""
        arrays = [self.matrix, *self.cols.values(), *(codes for _, codes in self.cats.values())]
        mapped = sum(isinstance(a, np.memmap) for a in arrays) + (self.ann is not None and self.ann.mapped)
        return mapped + (PACKED_FILES if self.ids.packed else 0)

    def isin(self, name: str, values: Sequence[Any]) -> np.ndarray:
        """Rows whose text column `name` is one of `values` (read-only: the last few are kept, as every
        search of a retrieval asks for the same statuses and agent)."""
        wanted = frozenset(None if v is None else str(v) for v in values)
        mask = self.masks.get((name, wanted))
        if mask is None:
            distinct, codes = self.cats[name]
            mask = np.array([v in wanted for v in distinct], dtype=bool)[codes]
            mask.flags.writeable = False
            if len(self.masks) >= _MASKS_KEPT:
                self.masks.clear()
            self.masks[(name, wanted)] = mask
        return mask


# -- filters -----------------------------------------------------------------------------------------------


def memory_mask(index: VectorIndex, f: MemoryFilter) -> np.ndarray:
    """Rows that have a vector and pass a memory filter (as `sqlite_schema.memory_where` does)."""
    c = index.cols
    mask = index.cols["alive"] & index.isin("status", f.statuses)
    if f.agent_id is not None:
        mask &= index.isin("agent_id", [f.agent_id])
    if f.memory_types is not None:
        mask &= index.isin("memory_type", f.memory_types)
    if f.time_range is not None:
        start, end = span_bounds(f.time_range)
        mask &= (c["time_start"] < end) & (c["time_end"] > start)
    if f.key is not None:
        mask &= index.isin("key", [f.key])
    if f.ids is not None:
        mask &= _ids_mask(index, f.ids)
    if f.created_after is not None:
        mask &= c["created_at"] > to_us(f.created_after)
    if f.created_before is not None:
        mask &= c["created_at"] < to_us(f.created_before)
    if f.reflected is not None:
        mask &= c["reflected"] == f.reflected
    return mask


def message_mask(index: VectorIndex, f: MessageFilter) -> np.ndarray:
    """Rows that have a vector and pass a message filter (as `sqlite_schema.message_where` does)."""
    c = index.cols
    mask = c["alive"].copy()
    if f.agent_id is not None:
        mask &= index.isin("agent_id", [f.agent_id])
    if f.session_id is not None:
        mask &= index.isin("session_id", [f.session_id])
    if f.pending is not None:
        mask &= c["pending"] == f.pending
    if f.time_range is not None:
        start, end = span_bounds(f.time_range)
        mask &= (c["created_at"] >= start) & (c["created_at"] < end)
    if f.ids is not None:
        mask &= _ids_mask(index, f.ids)
    return mask


def _ids_mask(index: VectorIndex, ids: Sequence[str]) -> np.ndarray:
    mask = np.zeros(len(index.ids), dtype=bool)
    positions = [index.ids.position(i) for i in ids]
    mask[[p for p in positions if p is not None]] = True
    return mask


# -- search ------------------------------------------------------------------------------------------------


def top_matches(sims: np.ndarray, allowed: np.ndarray, wanted: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the `wanted` rows among `allowed` (a boolean mask) with the highest `sims` (the
    query's cosine with every row), best first, and their cosines."""
    count = int(np.count_nonzero(allowed))
    if count == 0 or wanted <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    rows = np.arange(sims.size) if count == allowed.size else np.flatnonzero(allowed)
    scores = sims if count == allowed.size else sims[rows]
    top = np.argpartition(-scores, wanted - 1)[:wanted] if scores.size > wanted else np.arange(scores.size)
    top = top[np.argsort(-scores[top], kind="stable")]
    return rows[top], scores[top]


def needs_graph(index: VectorIndex, min_rows: int = ANN_MIN_ROWS) -> bool:
    """Whether a graph should be (re)built: the index has `min_rows` rows and no graph, or more than a tenth
    of its rows (and a quarter of `min_rows`) came or changed after its graph: those are scored exactly."""
    n = len(index.ids)
    if n < min_rows or not ann_available():
        return False
    if index.ann is None:
        return True
    lag = n - index.ann.covered + int(np.count_nonzero(index.cols["stamp"][: index.ann.covered] > index.ann.version))
    return lag > max(min_rows // 4, n // 10)


def upkeep(index: VectorIndex, graph_rows: int, snapshot_rows: int) -> str | None:
    """What to do in the background for this index: "graph" (build one, and save it), "snapshot" (save the
    index, so a new process loads it instead of reading every row), or None."""
    if needs_graph(index, graph_rows):
        return "graph"
    n = len(index.ids)
    if n < snapshot_rows or (index.ann is not None and n >= graph_rows):
        return None
    if index.saved < 0:
        return "snapshot"
    lag = int(np.count_nonzero(index.cols["stamp"] > index.saved))
    return "snapshot" if lag > max(snapshot_rows // 4, n // 10) else None


def search(index: VectorIndex, q: np.ndarray, allowed: np.ndarray, wanted: int) -> tuple[np.ndarray, np.ndarray]:
    """The `wanted` allowed rows most similar to the unit vector `q`, best first, and their cosines.

    Exact when the index has no graph or the filter is selective; otherwise the graph's candidate pool
    (plus rows newer than the graph) rescored exactly, the pool widened while too few candidates pass
    the filter, and exact as the last resort.
    """
    count = int(np.count_nonzero(allowed))
    n = allowed.size
    ann = index.ann
    if count == 0 or wanted <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    if ann is None or count < _EXACT_SHARE * n or count <= wanted:
        return _exact(index, q, allowed, count, wanted)
    fresh = np.flatnonzero(index.cols["stamp"][: ann.covered] > ann.version)  # rewritten since the graph
    extra = np.concatenate([fresh, np.arange(ann.covered, n)])
    pool = max(_POOL_MIN, _POOL_FACTOR * wanted * n // count)
    while pool < ann.covered:
        proposed = ann.candidates(q, pool)
        passing = proposed[allowed[proposed]]
        if passing.size >= wanted or proposed.size < pool:
            rows = np.unique(np.concatenate([passing, extra[allowed[extra]]]))
            scores = index.matrix[rows] @ q
            top = np.argsort(-scores, kind="stable")[:wanted]
            return rows[top], scores[top]
        pool *= 4
    return _exact(index, q, allowed, count, wanted)


def _exact(
    index: VectorIndex, q: np.ndarray, allowed: np.ndarray, count: int, wanted: int
) -> tuple[np.ndarray, np.ndarray]:
    if 2 * count >= allowed.size:  # most rows: one product over the whole matrix
        return top_matches(index.matrix @ q, allowed, wanted)
    rows = np.flatnonzero(allowed)  # few rows: gather them first
    scores = _scores_of(index.matrix, rows, q)
    top = np.argpartition(-scores, wanted - 1)[:wanted] if scores.size > wanted else np.arange(scores.size)
    top = top[np.argsort(-scores[top], kind="stable")]
    return rows[top], scores[top]


def _scores_of(matrix: np.ndarray, rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Cosines of `q` with `matrix[rows]` (sorted positions): when they lie mostly in one run (a time filter
    over a time-ordered index), the product over that run's slice, with no gather; otherwise gathered."""
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    if hi - lo <= 2 * rows.size:
        return (matrix[lo:hi] @ q)[rows - lo]
    return matrix[rows] @ q


# -- building and patching -----------------------------------------------------------------------------


def empty_index(dim: int) -> VectorIndex:
    """An index of no rows."""
    cols = {"alive": np.zeros(0, dtype=bool), "stamp": np.zeros(0, dtype=np.int64)}
    return VectorIndex(0, RowIds(), np.zeros((0, dim), dtype=np.float32), cols, {})


def apply_rows(base: VectorIndex, rows: Sequence[Any], version: int) -> VectorIndex:
    """A new index: `base` with these rows (sqlite3.Row of VECTOR_COLUMNS) updated in place or appended.

    Never mutates `base`. A row whose vector went away or changed dimension stays in place, marked not
    alive.
    """
    if not rows:
        return replace(base, version=version)
    dim = base.matrix.shape[1]
    usable = [r["embedding"] is not None and r["dim"] == dim for r in rows]
    found = [base.ids.position(r["id"]) for r in rows]
    added = [r["id"] for r, ok, at in zip(rows, usable, found, strict=True) if ok and at is None]
    ids = base.ids.extended(added)
    places = [at if at is not None else ids.position(r["id"]) for r, at in zip(rows, found, strict=True)]
    keep = [n for n, at in enumerate(places) if at is not None]
    where = np.array([places[n] for n in keep], dtype=np.int64)
    old = len(base.ids)

    def grown(array: np.ndarray, fill: Any) -> np.ndarray:
        out = np.full((len(ids), *array.shape[1:]), fill, dtype=array.dtype)
        out[:old] = array
        return out

    vectors = np.zeros((len(keep), dim), dtype=np.float32)
    filled = [out_row for out_row, n in enumerate(keep) if usable[n]]
    if filled:  # one buffer for every vector: a cold build reads 100k rows
        joined = b"".join(rows[keep[out_row]]["embedding"] for out_row in filled)
        vectors[filled] = np.frombuffer(joined, dtype=np.float32).reshape(len(filled), dim)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors /= np.where(norms > 0, norms, 1.0)
    matrix, buffer = _patched_matrix(base, where, vectors, len(ids))
    cols = {"alive": grown(base.cols["alive"], False), "stamp": grown(base.cols["stamp"], 0)}
    cols["alive"][where] = [usable[n] for n in keep]
    cols["stamp"][where] = version
    cats: dict[str, tuple[list[Any], np.ndarray]] = {}
    for name in rows[0].keys()[3:]:
        values = [rows[n][name] for n in keep]
        if name in NUMERIC:
            column = base.cols.get(name, np.zeros(0, dtype=NUMERIC[name]))
            cols[name] = grown(column, 0)
            cols[name][where] = values
        else:
            distinct, codes = base.cats.get(name, ([], np.zeros(0, dtype=np.int32)))
            lookup = {v: n for n, v in enumerate(distinct)}
            per_row = [lookup.setdefault(v, len(lookup)) for v in values]
            cats[name] = (list(lookup), grown(codes, 0))
            cats[name][1][where] = per_row
    return VectorIndex(version, ids, matrix, cols, cats, base.ann, base.saved, buffer)


def _patched_matrix(
    base: VectorIndex, where: np.ndarray, vectors: np.ndarray, rows: int
) -> tuple[np.ndarray, RowBuffer]:
    """`base.matrix` with `vectors` at rows `where`, `rows` long. Added rows go into the room of base's
    buffer when base is its newest index and no row base sees changes (a status change rewrites the same
    vector); otherwise the matrix is copied, with room: at 100k rows a copy took 50-360 ms."""
    old = len(base.ids)
    added = where >= old
    same = bool(np.array_equal(base.matrix[where[~added]], vectors[~added])) if not added.all() else True
    if base.rows is not None and same and base.rows.claim(old, rows):
        base.rows.buf[where[added]] = vectors[added]
        return base.rows.buf[:rows], base.rows
    buffer = RowBuffer.copied(base.matrix, rows)
    buffer.buf[where] = vectors
    return buffer.buf[:rows], buffer
