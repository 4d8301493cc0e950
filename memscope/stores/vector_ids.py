"""Row ids of a vector index: the id at a position, and the position of an id.

An index built from the table keeps its ids in a list and a dict. A snapshot stores them packed (one
UTF-8 blob, each id's end offset, and each id's 64-bit hash sorted beside its position): a large one
is read in place, as decoding a million ids into a list and a dict took 0.8 s of the first query after
opening. Indexes patched from one another share that base and keep only the ids added since apart.
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

__all__ = ["PACKED_FILES", "PackedIds", "RowIds", "read_packed", "write_packed"]

_ADDED_KEPT = 1024  # ids added since the base that `RowIds` keeps apart (or an eighth of the base)
_PACKED_ROWS = 200_000  # a snapshot of fewer ids is decoded into a list on load (100k ids: ~30 ms)
PACKED_FILES = 4  # files packed ids hold open (the blob, its offsets, the hashes and their positions)


def _hash(encoded: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(encoded, digest_size=8).digest(), "little")


class PackedIds:
    """A snapshot's ids read in place: the blob memory-mapped, the offsets and sorted hashes as arrays."""

    __slots__ = ("_blob", "_ends", "_hashes", "_order")

    def __init__(self, blob: bytes | mmap.mmap, ends: np.ndarray, hashes: np.ndarray, order: np.ndarray) -> None:
        self._blob, self._ends, self._hashes, self._order = blob, ends, hashes, order

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, n: int) -> str:
        start = int(self._ends[n - 1]) if n > 0 else 0
        return self._blob[start : int(self._ends[n])].decode()

    def __iter__(self) -> Iterator[str]:
        return iter(self.decoded())

    def position(self, row_id: str) -> int | None:
        """Where `row_id` is, or None: its hash's run in the sorted hashes, each candidate compared."""
        wanted = np.uint64(_hash(row_id.encode()))
        at = int(np.searchsorted(self._hashes, wanted))
        while at < len(self._hashes) and self._hashes[at] == wanted:
            found = int(self._order[at])
            if self[found] == row_id:
                return found
            at += 1
        return None

    def decoded(self) -> list[str]:
        """Every id, in position order."""
        return _decode(self._blob, self._ends)


def _decode(blob: bytes | mmap.mmap, ends: np.ndarray) -> list[str]:
    """The ids packed in `blob`, each ending at its offset in `ends`."""
    stops = ends.tolist()
    return [blob[a:b].decode() for a, b in zip([0, *stops[:-1]], stops, strict=True)]


def write_packed(folder: Path, ids: Iterable[str]) -> None:
    """Write `ids` (in position order) into `folder` as `read_packed` reads them."""
    encoded = [i.encode() for i in ids]
    (folder / "ids.bin").write_bytes(b"".join(encoded))
    np.save(folder / "ids-end.npy", np.cumsum([len(e) for e in encoded], dtype=np.int64))
    hashes = np.array([_hash(e) for e in encoded], dtype=np.uint64)
    order = np.argsort(hashes, kind="stable")
    np.save(folder / "ids-hash.npy", hashes[order])
    np.save(folder / "ids-order.npy", order)


def read_packed(folder: Path) -> list[str] | PackedIds:
    """The ids `write_packed` wrote: decoded when few, read in place when many. ValueError if inconsistent."""
    ends = np.load(folder / "ids-end.npy", mmap_mode="r")
    path = folder / "ids.bin"
    size = int(ends[-1]) if len(ends) else 0
    if path.stat().st_size != size:
        raise ValueError(f"{path} holds {path.stat().st_size} bytes, its offsets {size}")
    if len(ends) < _PACKED_ROWS:
        return _decode(path.read_bytes(), ends)
    with path.open("rb") as file:
        blob = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    hashes = np.load(folder / "ids-hash.npy", mmap_mode="r")
    order = np.load(folder / "ids-order.npy", mmap_mode="r")
    if len(hashes) != len(ends) or len(order) != len(ends):
        raise ValueError(f"{folder}: {len(ends)} ids but {len(hashes)} hashes and {len(order)} positions")
    return PackedIds(blob, ends, hashes, order)


class RowIds:
    """The ids of an index's rows in position order, and the position of each: a base shared by the indexes
    patched from one another (a list with its dict, or a snapshot's packed ids) plus the ids added since.
    A patch copies only those: copying a whole map cost each write ~4 ms at 100k rows (tens at 1M). The
    added ids are folded into a new base once they are an eighth of it."""

    __slots__ = ("_added", "_added_at", "_base", "_base_at")

    def __init__(self, base: Sequence[str] | PackedIds = ()) -> None:
        self._base: list[str] | PackedIds = base if isinstance(base, PackedIds | list) else list(base)
        self._base_at = None if isinstance(base, PackedIds) else dict(zip(self._base, range(len(base)), strict=True))
        self._added: list[str] = []
        self._added_at: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._base) + len(self._added)

    def __getitem__(self, n: int) -> str:
        if 0 <= n < len(self._base):
            return self._base[n]
        if n < 0:
            raise IndexError(f"row position {n} is negative")
        return self._added[n - len(self._base)]

    def __iter__(self) -> Iterator[str]:
        yield from self._base
        yield from self._added

    def __contains__(self, row_id: object) -> bool:
        return isinstance(row_id, str) and self.position(row_id) is not None

    @property
    def packed(self) -> bool:
        """Whether these ids are read in place from a snapshot's files (which they hold open)."""
        return isinstance(self._base, PackedIds)

    def position(self, row_id: str) -> int | None:
        """The position of `row_id`, or None."""
        found = self._added_at.get(row_id)
        if found is not None:
            return found
        if self._base_at is not None:
            return self._base_at.get(row_id)
        assert isinstance(self._base, PackedIds)
        return self._base.position(row_id)

    def extended(self, added: Sequence[str]) -> RowIds:
        """These ids followed by `added` (ids not among them). Never changes this object."""
        if not added:
            return self
        if len(self._added) + len(added) > max(_ADDED_KEPT, len(self._base) // 8):
            return RowIds([*self, *added])
        out = RowIds.__new__(RowIds)
        out._base, out._base_at = self._base, self._base_at
        out._added = self._added + list(added)
        out._added_at = {**self._added_at, **dict(zip(added, range(len(self), len(self) + len(added)), strict=True))}
        return out

    def extends(self, other: RowIds) -> bool:
        """Whether `other`'s ids are this object's first ids, in order (this index was patched from it)."""
        if len(other) > len(self):
            return False
        if other._base is self._base:
            return self._added[: len(other._added)] == other._added
        return all(mine == theirs for mine, theirs in zip(self, other, strict=False))
