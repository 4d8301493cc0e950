"""Snapshots of the SQLite store's large vector indexes on disk, so a new process need not rebuild them.

A snapshot is a folder beside the database (`<db>-vectors/<kind>-<dim>-<user hash>-v<version>/`):
the float32 matrix as .npy (memory-mapped on load), the filter columns as .npy, the ids packed (see
`vector_ids`), text columns in meta.json, and the HNSW graph (memory-mapped too). It is written to a
hidden temporary folder, flushed to disk and renamed into place, so a reader never sees half of one
(nor, after a power cut, a published name over unwritten files). A snapshot is only
a head start: the store patches in the rows written after its version, and ignores it when the user was
reset since (`delete_user`, `clear_embeddings`) or when it belongs to another database file (store id).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Literal

import numpy as np

from memscope.stores.vector_ann import load_graph
from memscope.stores.vector_ids import RowIds, read_packed, write_packed
from memscope.stores.vector_index import VectorIndex

__all__ = ["load_snapshot", "remove_snapshots", "save_snapshot", "snapshot_folder"]

_FORMAT = 2  # 1: ids in meta.json (still read)


def snapshot_folder(db_path: Path) -> Path:
    """Where the snapshots of the store at `db_path` live."""
    return db_path.with_name(db_path.name + "-vectors")


def _user_hash(user_id: str) -> str:
    return hashlib.sha256(user_id.encode()).hexdigest()[:32]


def _stem(kind: str, user_id: str, dim: int) -> str:
    return f"{kind}-{dim}-{_user_hash(user_id)}"


def remove_snapshots(folder: Path, user_id: str) -> None:
    """Delete every snapshot of this user (their vectors must go with their data)."""
    with contextlib.suppress(OSError):
        for path in folder.glob(f"*-{_user_hash(user_id)}-v*"):
            shutil.rmtree(path, ignore_errors=True)


def _versions(folder: Path, stem: str) -> list[tuple[int, Path]]:
    """This key's snapshot folders, newest first."""
    found = []
    with contextlib.suppress(OSError):
        for path in folder.glob(f"{stem}-v*"):
            with contextlib.suppress(ValueError):
                found.append((int(path.name.rsplit("-v", 1)[1]), path))
    return sorted(found, reverse=True)


def save_snapshot(folder: Path, kind: str, user_id: str, index: VectorIndex, store_id: str) -> Path:
    """Write `index` (and its graph) as the newest snapshot of this user, then drop older ones."""
    stem = _stem(kind, user_id, int(index.matrix.shape[1]))
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{stem}-{uuid.uuid4().hex}.tmp"
    tmp.mkdir()
    try:
        np.save(tmp / "matrix.npy", np.ascontiguousarray(index.matrix))
        write_packed(tmp, index.ids)
        for name, column in index.cols.items():
            np.save(tmp / f"col-{name}.npy", column)
        for name, (_, codes) in index.cats.items():
            np.save(tmp / f"cat-{name}.npy", codes)
        meta: dict[str, Any] = {
            "format": _FORMAT, "store_id": store_id, "user_id": user_id, "kind": kind, "version": index.version,
            "rows": len(index.ids), "cols": list(index.cols), "cats": {k: v for k, (v, _) in index.cats.items()},
            "ann": None if index.ann is None else {"covered": index.ann.covered, "version": index.ann.version},
        }  # fmt: skip
        if index.ann is not None:
            index.ann.save(tmp / "graph.usearch")
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False))
        _sync(tmp)
        final = folder / f"{stem}-v{index.version:012d}"
        if final.exists():  # the same version saved by another process: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
            return final
        os.rename(tmp, final)
        _sync_entry(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _, older in _versions(folder, stem)[1:]:
        shutil.rmtree(older, ignore_errors=True)
    return final


def _sync(tmp: Path) -> None:
    """Flush the snapshot's files and folder to the disk before the rename publishes it: renamed first, a
    power cut could leave the published name over empty or partly written files (the older snapshots
    are deleted right after)."""
    for path in tmp.iterdir():
        with path.open("rb") as file:
            os.fsync(file.fileno())
    _sync_entry(tmp)


def _sync_entry(folder: Path) -> None:
    """Flush a folder's entries (a file created or renamed in it), where the system allows it."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # some file systems cannot sync a folder; the files are flushed
            os.fsync(fd)
    finally:
        os.close(fd)


def load_snapshot(folder: Path, kind: str, user_id: str, dim: int, store_id: str, newest: int) -> VectorIndex | None:
    """The newest readable snapshot of this user of version <= `newest` (the user's current version), or None."""
    for version, path in _versions(folder, _stem(kind, user_id, dim)):
        if version > newest:
            continue
        with contextlib.suppress(OSError, ValueError, KeyError, json.JSONDecodeError):
            return _read(path, kind, user_id, store_id)
    return None


def _read(path: Path, kind: str, user_id: str, store_id: str) -> VectorIndex | None:
    meta = json.loads((path / "meta.json").read_text())
    owner = (meta["store_id"], meta["user_id"], meta["kind"])
    if meta["format"] not in (1, _FORMAT) or owner != (store_id, user_id, kind):
        return None
    ids = RowIds(meta["ids"] if meta["format"] == 1 else read_packed(path))
    matrix = np.load(path / "matrix.npy", mmap_mode="r")
    # A large snapshot's columns are read as touched, like its ids: reading them took 37-97 ms of the
    # first query at 1M rows (their 10 files stay open while the index is cached: see _OPEN_FILES_KEPT).
    in_place: Literal["r"] | None = "r" if ids.packed else None
    cols = {name: np.load(path / f"col-{name}.npy", mmap_mode=in_place) for name in meta["cols"]}
    cats = {
        name: (values, np.load(path / f"cat-{name}.npy", mmap_mode=in_place)) for name, values in meta["cats"].items()
    }
    if matrix.shape[0] != len(ids) or any(c.shape[0] != len(ids) for c in cols.values()):
        return None
    ann = None
    if meta["ann"] is not None:
        ann = load_graph(path / "graph.usearch", meta["ann"]["covered"], meta["ann"]["version"])
    return VectorIndex(meta["version"], ids, matrix, cols, cats, ann, saved=meta["version"])
