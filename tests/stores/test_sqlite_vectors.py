"""The SQLite store's large-user vector search: the HNSW first pass, its snapshots on disk, and how both
stay right under writes (this process's and another's). Graphs start at `ann_min_rows`, set low here.

The vectors are all-MiniLM-L6-v2 embeddings of 1,600 LoCoMo dialogue turns (tests/fixtures/
locomo_minilm_vectors.npy, float16): real embeddings of real text, not random vectors.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import memscope
from memscope.models import MemoryStatus, MemoryType
from memscope.stores.base import MemoryFilter, SearchQuery
from memscope.stores.sqlite import SqliteStore
from memscope.stores.testing import memory
from memscope.stores.vector_ann import ann_available
from memscope.stores.vector_files import snapshot_folder

pytestmark = pytest.mark.skipif(not ann_available(), reason="needs usearch: pip install 'memscope-ai[ann]'")

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "locomo_minilm_vectors.npy"
USER = "ann-user"
ROWS = 1200  # stored rows; the fixture's other 400 vectors make the queries
MIN_ROWS = 500
ACTIVE = MemoryFilter(statuses=(MemoryStatus.ACTIVE,))


def _vectors() -> tuple[np.ndarray, np.ndarray]:
    all_vectors = np.load(FIXTURE).astype(np.float32)
    all_vectors /= np.linalg.norm(all_vectors, axis=1, keepdims=True)
    stored = all_vectors[:ROWS]
    rng = np.random.default_rng(3)
    # queries: another turn blended with a stored one, so no query is a stored row's own vector
    queries = all_vectors[ROWS:] + 0.5 * stored[rng.integers(0, ROWS, len(all_vectors) - ROWS)]
    return stored, queries / np.linalg.norm(queries, axis=1, keepdims=True)


def _fill(store: SqliteStore, vectors: np.ndarray) -> list[str]:
    types = [MemoryType.OBSERVATION, MemoryType.INSIGHT, MemoryType.CUSTOMIZED]
    nodes = [
        memory(USER, f"turn {i}", id=f"mem-{i:05d}", embedding=v.tolist(), memory_type=types[i % 3],
               agent_id="helper" if i % 10 == 0 else "default")
        for i, v in enumerate(vectors)
    ]  # fmt: skip
    store.write_memories(nodes)
    return [n.id for n in nodes]


def _search(store: SqliteStore, q: np.ndarray, f: MemoryFilter = ACTIVE, k: int = 50) -> list[str]:
    hits = store.search_memories(USER, SearchQuery(embedding=q.tolist(), top_k=k, candidates=k), f)
    return [h.memory.id for h in hits]


def _exact(ids: Sequence[str], vectors: np.ndarray, q: np.ndarray, allowed: np.ndarray, k: int = 50) -> list[str]:
    sims = np.where(allowed, vectors @ q, -np.inf)
    order = np.argsort(-sims, kind="stable")[: min(k, int(allowed.sum()))]
    return [ids[i] for i in order]


def _graph_of(store: SqliteStore) -> object:
    index = store._vector_index("memories", USER, 384)  # the cached index the searches use
    return index.ann


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, list[str], np.ndarray, np.ndarray]:
    """A store file with the stored rows, its graph built and its snapshot saved."""
    stored, queries = _vectors()
    path = tmp_path / "vectors.db"
    with SqliteStore(path, ann_min_rows=MIN_ROWS) as store:
        ids = _fill(store, stored)
        store.build_vector_index(USER)
        assert _graph_of(store) is not None
    return path, ids, stored, queries


def test_first_pass_recall_on_real_minilm_embeddings(built: tuple[Path, list[str], np.ndarray, np.ndarray]) -> None:
    path, ids, stored, queries = built
    everything = np.ones(len(ids), dtype=bool)
    with SqliteStore(path, ann_min_rows=MIN_ROWS) as store:
        assert _graph_of(store) is not None
        recalls = [
            len(set(_search(store, q)) & set(_exact(ids, stored, q, everything))) / 50 for q in queries
        ]  # fmt: skip
    assert np.mean(recalls) >= 0.99, f"mean recall@50 {np.mean(recalls):.4f}, worst {min(recalls):.2f}"


def test_filters_hold_exactly_with_the_graph(built: tuple[Path, list[str], np.ndarray, np.ndarray]) -> None:
    path, ids, stored, queries = built
    helper = np.array([i % 10 == 0 for i in range(len(ids))])  # 10%: searched exactly over its rows
    insights = np.array([i % 3 == 1 for i in range(len(ids))])  # a third: the graph's pool, filtered
    with SqliteStore(path, ann_min_rows=MIN_ROWS) as store:
        for q in queries[:40]:
            found = _search(store, q, MemoryFilter(statuses=(MemoryStatus.ACTIVE,), agent_id="helper"))
            assert found == _exact(ids, stored, q, helper)
            found = _search(store, q, MemoryFilter(statuses=(MemoryStatus.ACTIVE,), memory_types=[MemoryType.INSIGHT]))
            assert all(ids.index(i) % 3 == 1 for i in found)
            assert len(set(found) & set(_exact(ids, stored, q, insights))) >= 48


def test_a_snapshot_is_on_the_disk_before_its_name_is_published(
    built: tuple[Path, list[str], np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every file of a snapshot, its folder, and then the folder it is renamed into are flushed (fsync): a
    power cut after the rename must not leave the snapshot's name over files that never reached the disk."""
    import memscope.stores.vector_files as vector_files

    path = built[0]
    flushed: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        flushed.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(vector_files.os, "fsync", fsync)
    with SqliteStore(path, ann_min_rows=MIN_ROWS) as store:
        index = store._vector_index("memories", USER, 384)
        vector_files.remove_snapshots(snapshot_folder(path), USER)  # the fixture's: this one is saved anew
        saved = vector_files.save_snapshot(snapshot_folder(path), "memories", USER, index, store.store_id())
    files = sorted(f.name for f in saved.iterdir())
    assert {"matrix.npy", "ids.bin", "graph.usearch", "meta.json"} <= set(files)
    temporary = Path(flushed[-2])  # the files, then their folder, then the folder it was renamed into
    assert temporary.name.startswith(".") and temporary.parent == saved.parent
    assert sorted(Path(f).name for f in flushed[:-2]) == files
    assert all(Path(f).parent == temporary for f in flushed[:-2])
    assert flushed[-1] == str(saved.parent)


def test_reopened_snapshot_gives_the_results_of_a_fresh_build(
    built: tuple[Path, list[str], np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    path, _ids, stored, queries = built
    assert any(snapshot_folder(path).iterdir())
    with SqliteStore(path, ann_min_rows=MIN_ROWS) as reopened:
        from_disk = [_search(reopened, q) for q in queries[:50]]
        index = reopened._cache[("memories", USER, 384)]
        assert index.matrix.base is not None  # memory-mapped, not rebuilt
        assert index.ann is not None and 0 not in index.ann.graph  # mapped without its key table: faster to open
    fresh_path = tmp_path / "fresh.db"
    with SqliteStore(fresh_path, ann_min_rows=MIN_ROWS) as fresh:
        _fill(fresh, stored)
        fresh.build_vector_index(USER)
        assert [_search(fresh, q) for q in queries[:50]] == from_disk


def test_graph_stays_right_after_add_update_expire_delete(
    built: tuple[Path, list[str], np.ndarray, np.ndarray],
) -> None:
    path, _ids, _stored, queries = built
    q = queries[0]
    with SqliteStore(path, ann_min_rows=MIN_ROWS) as store:
        before = _search(store, q, k=10)
        graph = _graph_of(store)
        store.write_memories([memory(USER, "new, right on the query", id="mem-new", embedding=q.tolist())])
        moved = store.get_memory(USER, before[-1])
        assert moved is not None
        store.write_memories([moved.model_copy(update={"embedding": (-q).tolist()})])  # now the farthest row
        gone = store.get_memory(USER, before[0])
        assert gone is not None
        store.write_memories([gone.model_copy(update={"status": MemoryStatus.EXPIRED})])
        after = _search(store, q, k=10)
        assert _graph_of(store) is graph  # still the old graph: the changed rows were scored exactly
        assert after[0] == "mem-new"
        assert before[0] not in after and before[-1] not in after
        assert set(before[1:-1]) <= set(after)
        store.delete_user(USER)
        assert _search(store, q, k=10) == []
        assert not any(snapshot_folder(path).iterdir()), "a deleted user's vectors stayed on disk"


_WRITER = """
import sys
import numpy as np
from memscope.models import MemoryNode, MemoryStatus
from memscope.stores.sqlite import SqliteStore

path, user = sys.argv[1], sys.argv[2]
q = np.array([float(x) for x in sys.argv[3].split(",")], dtype=np.float32)
with SqliteStore(path) as store:
    store.write_memories([MemoryNode(user_id=user, content="from another process", id="mem-other",
                                     embedding=q.tolist())])
    old = store.get_memory(user, sys.argv[4])
    store.write_memories([old.model_copy(update={"status": MemoryStatus.DELETED})])
"""


def test_writes_from_another_process_reach_the_cached_graph_and_the_snapshot(
    built: tuple[Path, list[str], np.ndarray, np.ndarray],
) -> None:
    path, _ids, _stored, queries = built
    q = queries[1]
    env = {**os.environ, "PYTHONPATH": str(Path(memscope.__file__).resolve().parents[1])}
    with SqliteStore(path, ann_min_rows=MIN_ROWS) as store:
        before = _search(store, q, k=10)
        assert _graph_of(store) is not None
        done = subprocess.run(
            [sys.executable, "-c", _WRITER, str(path), USER, ",".join(map(str, q.tolist())), before[0]],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        after = _search(store, q, k=10)
        assert after[0] == "mem-other" and before[0] not in after
    with SqliteStore(path, ann_min_rows=MIN_ROWS) as reopened:  # the snapshot predates those writes
        assert _search(reopened, q, k=10) == after


def test_a_mid_sized_index_is_saved_without_a_graph_and_reopened_from_disk(tmp_path: Path) -> None:
    stored, queries = _vectors()
    path = tmp_path / "mid.db"
    with SqliteStore(path, ann_min_rows=10**9, snapshot_min_rows=300) as store:
        _fill(store, stored[:400])
        first = [_search(store, q) for q in queries[:20]]  # the first search saves the snapshot in the background
        store.build_vector_index(USER)  # waits for it
        assert _graph_of(store) is None
    assert len(list(snapshot_folder(path).iterdir())) == 1
    with SqliteStore(path, ann_min_rows=10**9, snapshot_min_rows=300) as reopened:
        assert [_search(reopened, q) for q in queries[:20]] == first
        assert reopened._cache[("memories", USER, 384)].matrix.base is not None  # memory-mapped, not rebuilt


def test_a_memory_mapped_index_stays_cached_beside_the_small_ones(tmp_path: Path, monkeypatch) -> None:
    """A retrieval searches a user's memories and messages; with a memory-mapped memory index larger than
    the cache budget, the messages index used to evict it each time, so every query reread the snapshot."""
    import memscope.stores.sqlite as sqlite_module
    from memscope.stores.testing import message

    stored, queries = _vectors()
    path = tmp_path / "mapped.db"
    with SqliteStore(path, ann_min_rows=10**9, snapshot_min_rows=300) as store:
        _fill(store, stored)
        store.add_messages([message(USER, "hello there")])
        store.build_vector_index(USER)
    loads = []
    real = sqlite_module.load_snapshot
    monkeypatch.setattr(sqlite_module, "load_snapshot", lambda *a: loads.append(a) or real(*a))
    monkeypatch.setattr(sqlite_module, "_CACHE_BYTES", stored.nbytes // 2)  # the matrix alone is over budget
    with SqliteStore(path, ann_min_rows=10**9, snapshot_min_rows=300) as reopened:
        for q in queries[:5]:
            assert _search(reopened, q)
            reopened.search_messages(USER, SearchQuery(text="hello", embedding=q.tolist()))
        assert len([a for a in loads if a[1] == "memories"]) == 1


def test_packed_ids_find_every_id_and_no_other_even_when_hashes_collide(tmp_path: Path, monkeypatch) -> None:
    """A large snapshot's ids are read in place: the id at a position from the blob, an id's position by
    its hash. Odd Unicode ids survive, and ids sharing a hash are told apart by comparing them."""
    from memscope.stores import vector_ids

    ids = ["mem-1", "Tōkyō 東京", "😀", "", "a" * 300, "mem-2", "x\u00e9", "xe\u0301", "mem-10"]
    monkeypatch.setattr(vector_ids, "_PACKED_ROWS", 1)
    monkeypatch.setattr(vector_ids, "_hash", lambda encoded: len(encoded) % 3)  # many collisions
    vector_ids.write_packed(tmp_path, ids)
    packed = vector_ids.read_packed(tmp_path)
    assert isinstance(packed, vector_ids.PackedIds)
    assert [packed[n] for n in range(len(ids))] == ids and packed.decoded() == ids
    assert [packed.position(i) for i in ids] == list(range(len(ids)))
    assert packed.position("mem-3") is None and packed.position("missing") is None
    row_ids = vector_ids.RowIds(packed).extended(["added"])
    assert row_ids.position("added") == len(ids) and row_ids.position("😀") == 2 and row_ids[1] == "Tōkyō 東京"
    monkeypatch.setattr(vector_ids, "_PACKED_ROWS", 100)  # few ids: decoded into a list on load
    assert vector_ids.read_packed(tmp_path) == ids
    (tmp_path / "ids.bin").write_bytes(b"short")
    with pytest.raises(ValueError, match="offsets"):
        vector_ids.read_packed(tmp_path)


def test_a_snapshot_with_ids_read_in_place_searches_and_takes_writes_like_a_fresh_build(
    built: tuple[Path, list[str], np.ndarray, np.ndarray], monkeypatch
) -> None:
    """At a million rows, decoding the snapshot's ids into a list and a dict was most of the first query
    after opening: large snapshots keep them packed. Searches, id filters and writes work as on a list."""
    from memscope.stores import vector_ids

    path, ids, _stored, queries = built
    with SqliteStore(path, ann_min_rows=MIN_ROWS) as store:
        expected = [_search(store, q) for q in queries[:20]]
    monkeypatch.setattr(vector_ids, "_PACKED_ROWS", MIN_ROWS)
    with SqliteStore(path, ann_min_rows=MIN_ROWS) as store:
        assert [_search(store, q) for q in queries[:20]] == expected
        index = store._cache[("memories", USER, 384)]
        assert isinstance(index.ids._base, vector_ids.PackedIds)
        assert isinstance(index.cols["stamp"], np.memmap)  # a large snapshot's columns too are read as touched
        assert index.open_files == 1 + len(index.cols) + len(index.cats) + 1 + vector_ids.PACKED_FILES  # + graph
        picked = ids[5:900:97]
        assert set(_search(store, queries[0], MemoryFilter(ids=picked), k=50)) == set(picked)
        q = queries[3]
        store.write_memories([memory(USER, "new, right on the query", id="mem-new", embedding=q.tolist())])
        gone = store.get_memory(USER, expected[3][0])
        assert gone is not None
        store.write_memories([gone.model_copy(update={"status": MemoryStatus.EXPIRED})])
        after = _search(store, q, k=10)
        assert after[0] == "mem-new" and expected[3][0] not in after and after[1:] == expected[3][1:10]
        assert isinstance(store._cache[("memories", USER, 384)].ids._base, vector_ids.PackedIds)  # patched in


def test_a_snapshot_written_by_the_previous_format_is_still_read(
    built: tuple[Path, list[str], np.ndarray, np.ndarray],
) -> None:
    """Snapshots of format 1 held their ids in meta.json: a store upgraded in place keeps using them."""
    import json

    path, ids, _stored, queries = built
    with SqliteStore(path, ann_min_rows=MIN_ROWS) as store:
        expected = [_search(store, q) for q in queries[:10]]
    (folder,) = list(snapshot_folder(path).iterdir())
    meta = json.loads((folder / "meta.json").read_text())
    packed = (folder / "ids.bin").read_bytes()
    ends = np.load(folder / "ids-end.npy").tolist()
    old_ids = [packed[a:b].decode() for a, b in zip([0, *ends[:-1]], ends, strict=True)]
    assert sorted(old_ids) == sorted(ids)
    for name in ("ids.bin", "ids-end.npy", "ids-hash.npy", "ids-order.npy"):
        (folder / name).unlink()
    del meta["rows"]
    (folder / "meta.json").write_text(json.dumps({**meta, "format": 1, "ids": old_ids}))
    with SqliteStore(path, ann_min_rows=MIN_ROWS) as store:
        assert [_search(store, q) for q in queries[:10]] == expected
        assert store._cache[("memories", USER, 384)].matrix.base is not None  # from the snapshot, not rebuilt


_WARM = """
import sys
from memscope.api import MemoryScope

config = {"store": {"path": sys.argv[1]}, "llm": {"backend": "none"},
          "embedding": {"backend": "openai", "api_key": "k", "base_url": "http://127.0.0.1:9", "dim": 384}}
with MemoryScope(config, background=False) as memory:
    import memscope.llm.blas_threads as blas
    before = ("usearch.index" in sys.modules, blas._state["done"])
    memory.warm_up()
    print(before, ("usearch.index" in sys.modules, blas._state["done"]))
"""


def test_warm_up_loads_what_the_first_vector_search_needs(tmp_path: Path) -> None:
    """`memscope serve` warms up before its first request: the store's part is the vector libraries, which the
    first search of a large user imported and set up otherwise (~30 ms of a 1M-row user's first query)."""
    env = {**os.environ, "PYTHONPATH": str(Path(memscope.__file__).resolve().parents[1])}
    env = {k: v for k, v in env.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", _WARM, str(tmp_path / "warm.db")], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["(False,", "False)", "(True,", "True)"]


def test_indexes_reading_snapshots_in_place_are_capped_so_open_files_stay_bounded(tmp_path: Path, monkeypatch) -> None:
    """A memory-mapped snapshot costs the cache's byte budget almost nothing but holds files open: with
    many users served by one process, the least recently used of them are dropped past _OPEN_FILES_KEPT
    (and read again from disk when asked), so open file descriptors stay bounded."""
    import memscope.stores.sqlite as sqlite_module

    stored, queries = _vectors()
    path = tmp_path / "many.db"
    users = [f"user-{n}" for n in range(6)]
    with SqliteStore(path, ann_min_rows=10**9, snapshot_min_rows=300) as store:
        for n, user in enumerate(users):
            vectors = stored[n * 150 : n * 150 + 400]
            store.write_memories([memory(user, f"turn {i}", embedding=v.tolist()) for i, v in enumerate(vectors)])
            store.build_vector_index(user)
    monkeypatch.setattr(sqlite_module, "_OPEN_FILES_KEPT", 2)  # these hold one file each: the matrix
    fds = lambda: len(os.listdir("/proc/self/fd"))  # noqa: E731
    with SqliteStore(path, ann_min_rows=10**9, snapshot_min_rows=300) as store:
        query = SearchQuery(embedding=queries[0].tolist(), top_k=5, candidates=5)
        first = {user: [h.memory.id for h in store.search_memories(user, query)] for user in users[:3]}
        opened = fds()
        for _ in range(3):
            for user in users:
                assert store.search_memories(user, query)
        assert fds() <= opened + 2  # three more users than the cap: no more files held open
        mapped = [key for key, index in store._cache.items() if index.open_files]
        assert [key[1] for key in mapped] == users[-2:]  # the two most recently used
        again = {user: [h.memory.id for h in store.search_memories(user, query)] for user in users[:3]}
        assert again == first  # read from disk again, the same answers
