"""The SQLite store: the contract suite, plus what only a file on disk can show."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import memscope
from memscope.errors import StoreError, ValidationError
from memscope.models import MemoryStatus, Message, TimeRange
from memscope.stores.base import (
    MemoryFilter,
    MessageFilter,
    ScoredMemory,
    ScoredMessage,
    SearchQuery,
    Store,
)
from memscope.stores.sqlite import SCHEMA_VERSION, SqliteStore, fts_normalize, fts_query
from memscope.stores.sqlite_schema import message_where
from memscope.stores.testing import T0, StoreContractSuite, basis, memory, message, vec
from memscope.stores.vector_index import apply_rows, empty_index, memory_mask, message_mask, search, top_matches


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "memscope.db")
    yield store
    store.close()


@pytest.mark.unit
class TestSqliteStore(StoreContractSuite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        store = SqliteStore(tmp_path / "m.db")
        yield store
        store.close()


# -- the file ----------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_satisfies_the_protocol(sqlite_store: SqliteStore) -> None:
    assert isinstance(sqlite_store, Store)


@pytest.mark.unit
def test_creates_folders_wal_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "m.db"
    SqliteStore(path).close()
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"messages", "memories", "memory_events", "meta", "messages_fts", "memories_fts"} <= tables
    finally:
        raw.close()


@pytest.mark.unit
def test_reopened_file_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with SqliteStore(path) as store:
        store.check_embedding_model("model-a", 8)
        store.add_messages([message("u", "remember the milk")])
        node = memory("u", "buys oat milk", embedding=basis(2))
        store.write_memories([node])
    with SqliteStore(path) as store:
        assert [m.content for m in store.list_messages("u")] == ["remember the milk"]
        assert store.get_memory("u", node.id) == node
        assert store.search_memories("u", SearchQuery(text="milk", embedding=basis(2)))[0].memory.id == node.id
        store.check_embedding_model("model-a", 8)


@pytest.mark.unit
def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    SqliteStore(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StoreError, match="newer than this memscope supports"):
        SqliteStore(path)


@pytest.mark.unit
def test_closed_store_and_memory_path_are_clear_errors(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "m.db")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.list_messages("u")
    with pytest.raises(ValidationError, match="file path"):
        SqliteStore(":memory:")


@pytest.mark.unit
def test_naive_datetimes_and_wrong_dimensions_are_refused(sqlite_store: SqliteStore) -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        sqlite_store.mark_consolidated("u", ["x"], datetime(2024, 1, 1))
    sqlite_store.check_embedding_model("model-a", 8)
    with pytest.raises(ValidationError, match="dimension"):
        sqlite_store.write_memories([memory("u", "too long a vector", embedding=[1.0] * 16)])


# -- full-text ---------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_fts_normalize_splits_cjk_characters() -> None:
    assert fts_normalize("我喜欢jazz").split() == ["我", "喜", "欢", "jazz"]
    assert fts_normalize("\uff23\uff41\uff46\u00e9") == "Caf\u00e9"  # NFKC folds full-width letters


@pytest.mark.unit
def test_fts_query_quotes_every_term() -> None:
    assert fts_query('cat" OR NEAR(x) *') == '"cat" OR "near" OR "x"'
    assert fts_query("what do I like") == '"like"'  # stop words go unless nothing else is left
    assert fts_query("what is it") == '"what" OR "is" OR "it"'
    assert fts_query("吃烤鸭") == '"吃 烤" OR "烤 鸭"'
    assert fts_query("猫") == '"猫"'
    assert fts_query("😀 * ()") is None
    assert fts_query("   ") is None
    assert fts_query(" ".join(f"w{i}" for i in range(500))).count(" OR ") == 63  # type: ignore[union-attr]


@pytest.mark.unit
def test_english_text_is_stemmed(sqlite_store: SqliteStore) -> None:
    node = memory("u", "She hikes every weekend")
    sqlite_store.write_memories([node])
    assert sqlite_store.search_memories("u", SearchQuery(text="hiking"))[0].memory.id == node.id


@pytest.mark.unit
def test_fts_rows_follow_updates_and_deletes(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with SqliteStore(path) as store:
        node = memory("u", "walrus")
        store.write_memories([node])
        store.write_memories([node.model_copy(update={"content": "penguin"})])
        assert store.search_memories("u", SearchQuery(text="walrus")) == []
        assert store.search_memories("u", SearchQuery(text="penguin"))[0].memory.id == node.id
        store.add_messages([message("u", "walrus talk"), message("v", "other user")])
        store.delete_user("u")
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("SELECT COUNT(*) FROM memories_fts").fetchone()[0] == 0
        assert raw.execute("SELECT COUNT(*) FROM messages_fts").fetchone()[0] == 1
    finally:
        raw.close()


# -- write semantics this backend documents ------------------------------------------------------------


@pytest.mark.unit
def test_stale_copy_neither_records_an_event_nor_undoes_a_touch(sqlite_store: SqliteStore) -> None:
    node = memory("u", "likes tea")
    sqlite_store.write_memories([node])
    sqlite_store.touch_memories("u", [node.id], T0 + timedelta(days=1))
    assert sqlite_store.write_memories([node]) == []  # access counters are not a change
    [event] = sqlite_store.write_memories([node.model_copy(update={"content": "likes green tea"})])
    assert event.after is not None and event.after["access_count"] == 1
    stored = sqlite_store.get_memory("u", node.id)
    assert stored is not None and stored.access_count == 1
    assert stored.last_accessed_at == T0 + timedelta(days=1)


@pytest.mark.unit
def test_search_reads_rows_back_as_the_validated_path_does(sqlite_store: SqliteStore) -> None:
    """The hot path reads a row's columns by position: every field must land where the validated path puts it."""
    from memscope.models import EventTime, Granularity, MemoryType, Role

    node = memory(
        "u", "Tom hikes in Yosemite", memory_type=MemoryType.INSIGHT, key="hobby", embedding=vec(1, 2),
        event_time=EventTime(start=T0, end=T0 + timedelta(days=7), granularity=Granularity.WEEK),
        updated_at=T0 + timedelta(hours=1), source_message_ids=["m-1", "m-2"], source_memory_ids=["n-1"],
        superseded_by="n-9", importance=0.7, metadata={"tag": "✓ 用户", "n": [1, 2]},
        reflected_at=T0 + timedelta(days=2),
    )  # fmt: skip
    sqlite_store.write_memories([node])
    sqlite_store.touch_memories("u", [node.id], T0 + timedelta(days=3))
    stored = sqlite_store.get_memory("u", node.id)  # built and validated field by field, by name
    assert stored is not None and stored.access_count == 1
    everything = MemoryFilter(statuses=list(MemoryStatus))
    for with_vectors in (True, False):
        query = SearchQuery(text="Yosemite", embedding=vec(1, 2), with_vectors=with_vectors)
        [hit] = sqlite_store.search_memories("u", query, everything)
        expected = stored if with_vectors else stored.model_copy(update={"embedding": None})
        assert hit.memory.model_dump() == expected.model_dump()

    turns = [
        message("u", "How was Yosemite?", role=Role.ASSISTANT, session_id="s", name="Bot", metadata={"k": "v"}),
        message("u", "Great, we hiked Half Dome", session_id="s", created_at=T0 + timedelta(minutes=1)),
    ]
    sqlite_store.add_messages(turns)
    sqlite_store.mark_consolidated("u", [turns[0].id], T0 + timedelta(hours=1))
    validated = {m.id: m.model_dump() for m in sqlite_store.messages_without_embedding("u")}
    assert len(validated) == 2
    [hit] = sqlite_store.search_messages("u", SearchQuery(text="Half Dome"))
    assert hit.message.model_dump() == validated[turns[1].id]
    assert [m.model_dump() for m in sqlite_store.list_messages("u")] == list(validated.values())
    assert [m.model_dump() for m in sqlite_store.message_neighbours("u", [turns[1].id])[turns[1].id]] == [
        validated[turns[0].id]
    ]


# -- vectors -----------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_vector_search_is_exact_over_many_rows(sqlite_store: SqliteStore) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(3000, 8)).astype(np.float32)
    statuses = [MemoryStatus.EXPIRED if i % 3 == 0 else MemoryStatus.ACTIVE for i in range(3000)]
    nodes = [memory("u", f"memory {i}", embedding=vectors[i].tolist(), status=statuses[i]) for i in range(3000)]
    sqlite_store.write_memories(nodes)
    query = rng.normal(size=8).astype(np.float32)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit @ (query / np.linalg.norm(query))
    active = [i for i in range(3000) if statuses[i] == MemoryStatus.ACTIVE]
    expected = [nodes[i].id for i in sorted(active, key=lambda i: -sims[i])[:20]]
    hits = sqlite_store.search_memories("u", SearchQuery(embedding=query.tolist(), top_k=20, candidates=20))
    assert [h.memory.id for h in hits] == expected
    assert [h.vector_rank for h in hits] == list(range(1, 21))
    assert hits[0].vector_similarity == pytest.approx(float(sims[active][np.argmax(sims[active])]), abs=1e-5)


@pytest.mark.unit
def test_cached_vectors_see_writes_from_another_process(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with SqliteStore(path) as reader, SqliteStore(path) as writer:
        first = memory("u", "first", embedding=basis(0))
        writer.write_memories([first])
        assert [h.memory.id for h in reader.search_memories("u", SearchQuery(embedding=basis(1)))] == [first.id]
        second = memory("u", "second", embedding=basis(1))
        writer.write_memories([second])
        assert reader.search_memories("u", SearchQuery(embedding=basis(1)))[0].memory.id == second.id
        writer.write_memories([second.model_copy(update={"status": MemoryStatus.EXPIRED})])
        assert reader.search_memories("u", SearchQuery(embedding=basis(1)))[0].memory.id == first.id
        writer.delete_user("u")
        assert reader.search_memories("u", SearchQuery(embedding=basis(1))) == []
        every = MemoryFilter(statuses=list(MemoryStatus))
        assert reader.search_memories("u", SearchQuery(embedding=basis(1)), every) == []
        third = memory("u", "third", embedding=basis(0))
        writer.write_memories([third])  # the deleted rows must not hold the only candidate slot
        narrow = SearchQuery(embedding=basis(1), top_k=1, candidates=1)
        assert [h.memory.id for h in reader.search_memories("u", narrow, every)] == [third.id]


@pytest.mark.unit
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=st.lists(
        st.tuples(
            st.integers(0, 5),  # which memory
            st.one_of(st.none(), st.integers(0, 7)),  # its vector axis, or no vector
            st.sampled_from(list(MemoryStatus)),
            st.sampled_from(["default", "helper"]),
            st.booleans(),  # also add and embed a message, and consolidate an older one
        ),
        min_size=1,
        max_size=12,
    )
)
def test_patched_cache_matches_a_fresh_build(
    tmp_path: Path, ops: list[tuple[int, int | None, MemoryStatus, str, bool]]
) -> None:
    path = tmp_path / f"{uuid.uuid4().hex}.db"
    with SqliteStore(path) as reader, SqliteStore(path) as writer:
        message_ids: list[str] = []
        for n, (which, axis, status, agent, with_message) in enumerate(ops):
            embedding = None if axis is None else vec(*([0.3] * axis + [1.0]))
            node = memory("u", f"memory {which}", id=f"m{which}", embedding=embedding, status=status, agent_id=agent)
            writer.write_memories([node])
            if with_message:
                msg = message("u", f"message {n}", id=f"msg{n}", agent_id=agent)
                writer.add_messages([msg])
                writer.set_message_embeddings("u", {msg.id: basis(n % 8)})
                if message_ids:
                    writer.mark_consolidated("u", [message_ids[0]], T0)
                message_ids.append(msg.id)
            with SqliteStore(path) as fresh:
                query = SearchQuery(embedding=basis(n % 8), top_k=50)
                for f in (MemoryFilter(), MemoryFilter(statuses=list(MemoryStatus)), MemoryFilter(agent_id="helper")):
                    assert _ranked(reader.search_memories("u", query, f)) == _ranked(
                        fresh.search_memories("u", query, f)
                    )
                for mf in (MessageFilter(), MessageFilter(pending=True), MessageFilter(agent_id="helper")):
                    assert _ranked(reader.search_messages("u", query, mf)) == _ranked(
                        fresh.search_messages("u", query, mf)
                    )


def _ranked(hits: Sequence[ScoredMemory | ScoredMessage]) -> list[tuple[float, str]]:
    """Hits as (similarity, id), ties in id order: the order among equal similarities is arbitrary."""
    out = []
    for hit in hits:
        node = hit.memory if isinstance(hit, ScoredMemory) else hit.message
        out.append((round(-(hit.vector_similarity or 0.0), 5), node.id))
    return sorted(out)


# -- concurrency -------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_threads_share_one_store(sqlite_store: SqliteStore) -> None:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(20):
                user = f"user-{i % 3}"
                sqlite_store.add_messages([message(user, f"t{worker} m{i}", id=f"t{worker}-m{i}")])
                sqlite_store.write_memories([memory(user, f"t{worker} n{i}", id=f"t{worker}-n{i}", embedding=vec(i))])
                sqlite_store.search_memories(user, SearchQuery(text="n1", embedding=vec(1, i)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    messages = [m.id for u in ("user-0", "user-1", "user-2") for m in sqlite_store.list_messages(u)]
    assert sorted(messages) == sorted(f"t{w}-m{i}" for w in range(4) for i in range(20))


_WRITER = """
import sys
from memscope.models import MemoryNode, Message
from memscope.stores.base import SearchQuery
from memscope.stores.sqlite import SqliteStore

path, worker, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = SqliteStore(path, timeout_s=60)
for i in range(n):
    user = f"user-{i % 3}"
    store.add_messages([Message(id=f"{worker}-msg-{i}", user_id=user, content=f"message {i} from {worker}")])
    vector = [float(i % 8 == d) + 0.1 for d in range(8)]
    text = f"memory {i} of {worker}"
    node = MemoryNode(id=f"{worker}-mem-{i}", user_id=user, content=text, embedding=vector)
    store.write_memories([node], run_id=worker)
    store.write_memories([node], run_id=worker)  # idempotent: no second event
    store.search_memories(user, SearchQuery(text=f"memory {worker}", embedding=vector))
    if i % 4 == 3:
        store.mark_consolidated(user, [f"{worker}-msg-{i}"], node.created_at)
store.close()
"""


@pytest.mark.integration
def test_two_processes_write_one_file(tmp_path: Path) -> None:
    path, n, workers = tmp_path / "shared.db", 40, ("p1", "p2", "p3")
    SqliteStore(path).close()
    env = {**os.environ, "PYTHONPATH": str(Path(memscope.__file__).resolve().parents[1])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), w, str(n)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in workers
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    with SqliteStore(path) as store:
        users = ("user-0", "user-1", "user-2")
        message_ids = [m.id for u in users for m in store.list_messages(u)]
        assert sorted(message_ids) == sorted(f"{w}-msg-{i}" for w in workers for i in range(n))
        every = MemoryFilter(statuses=list(MemoryStatus))
        memory_ids = [m.id for u in users for m in store.list_memories(u, every)]
        assert sorted(memory_ids) == sorted(f"{w}-mem-{i}" for w in workers for i in range(n))
        for w in workers:
            assert [len(store.history(f"user-{i % 3}", f"{w}-mem-{i}")) for i in range(n)] == [1] * n
        assert sum(store.stats(u).pending_messages for u in users) == len(workers) * (n - n // 4)
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("SELECT COUNT(*) FROM messages_fts").fetchone()[0] == len(workers) * n
        assert raw.execute("SELECT COUNT(*) FROM memories_fts").fetchone()[0] == len(workers) * n
    finally:
        raw.close()


@pytest.mark.unit
def test_message_ids_keep_their_first_version(sqlite_store: SqliteStore) -> None:
    first = Message(id="m-1", user_id="u", content="first", created_at=T0)
    sqlite_store.add_messages([first, first.model_copy(update={"content": "duplicate in one batch"})])
    assert [m.content for m in sqlite_store.list_messages("u")] == ["first"]


# -- vector search ---------------------------------------------------------------------------------------


@pytest.mark.unit
def test_top_matches_is_exact_and_respects_the_filter() -> None:
    rng = np.random.default_rng(1)
    n, dim = 8000, 384
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    rows = [{"id": f"r{i}", "embedding": vectors[i].tobytes(), "dim": dim, "created_at": 0} for i in range(n)]
    index = apply_rows(empty_index(dim), [_Row(r) for r in rows], 1)
    allowed = index.cols["alive"].copy()
    allowed[::7] = False
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for _ in range(5):
        q = rng.normal(size=dim).astype(np.float32)
        q /= np.linalg.norm(q)
        exact = np.argsort(-np.where(allowed, unit @ q, -np.inf), kind="stable")[:10]
        positions, sims = top_matches(index.matrix @ q, allowed, 10)
        assert positions.tolist() == exact.tolist()
        assert sims == pytest.approx((unit @ q)[positions], abs=1e-5)


@pytest.mark.unit
def test_store_vector_search_matches_brute_force(sqlite_store: SqliteStore) -> None:
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(2500, 16)).astype(np.float32)
    nodes = [memory("u", f"memory {i}", embedding=vectors[i].tolist()) for i in range(2500)]
    sqlite_store.write_memories(nodes)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    query = rng.normal(size=16).astype(np.float32)
    sims = unit @ (query / np.linalg.norm(query))
    expected = [nodes[i].id for i in np.argsort(-sims)[:10]]
    hits = sqlite_store.search_memories("u", SearchQuery(embedding=query.tolist(), top_k=10, candidates=10))
    assert [h.memory.id for h in hits] == expected


@pytest.mark.unit
def test_an_index_lays_rows_out_in_time_order_and_time_filtered_searches_stay_exact(
    sqlite_store: SqliteStore,
) -> None:
    """Memories and turns written out of time order: the index built from the table holds them by time, so a
    month is one run of the matrix (its product needs no gather); rows added later are appended out of order.
    Either way a time-filtered search, the store's and the graph path's exact one, returns exactly the
    brute-force top hits within the period."""
    rng = np.random.default_rng(17)
    n, dim = 3000, 16
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    days = rng.permutation(n) % 720  # written in no time order
    when = [T0 + timedelta(days=int(d), hours=i % 24) for i, d in enumerate(days)]
    nodes = [memory("u", "m", id=f"m{i}", embedding=vectors[i].tolist(), created_at=when[i]) for i in range(n)]
    turns = [message("u", "t", id=f"t{i}", created_at=when[i]) for i in range(n)]

    def add(picked: range) -> None:
        sqlite_store.write_memories([nodes[i] for i in picked])
        sqlite_store.add_messages([turns[i] for i in picked])
        sqlite_store.set_message_embeddings("u", {f"t{i}": vectors[i].tolist() for i in picked})

    def check(kind: str, period: TimeRange, written: int) -> None:
        query = rng.normal(size=dim).astype(np.float32)
        query /= np.linalg.norm(query)
        inside = np.array([period.start <= w < period.end for w in when[:written]])
        order = np.argsort(-np.where(inside, unit[:written] @ query, -np.inf), kind="stable")
        expected = [f"{'m' if kind == 'memories' else 't'}{i}" for i in order[:10] if inside[i]]
        q = SearchQuery(embedding=query.tolist(), top_k=10, candidates=10)
        if kind == "memories":
            f: MemoryFilter | MessageFilter = MemoryFilter(time_range=period)
            found = [h.memory.id for h in sqlite_store.search_memories("u", q, f)]
        else:
            f = MessageFilter(time_range=period)
            found = [h.message.id for h in sqlite_store.search_messages("u", q, f)]
        assert found == expected
        index = sqlite_store._vector_index(kind, "u", dim)
        mask = memory_mask(index, f) if isinstance(f, MemoryFilter) else message_mask(index, f)
        rows, _ = search(index, query, mask, 10)  # what a graph-backed index does with a selective filter
        assert [index.ids[r] for r in rows] == expected

    month = TimeRange(start=T0 + timedelta(days=200), end=T0 + timedelta(days=231))
    add(range(2500))
    for kind, column in (("memories", "time_start"), ("messages", "created_at")):
        check(kind, month, 2500)
        assert np.all(np.diff(sqlite_store._vector_index(kind, "u", dim).cols[column]) >= 0)  # in time order
    add(range(2500, n))  # added to a built index, out of time order: appended
    for kind, column in (("memories", "time_start"), ("messages", "created_at")):
        check(kind, month, n)
        check(kind, TimeRange(start=T0 + timedelta(days=700), end=T0 + timedelta(days=720)), n)
        assert not np.all(np.diff(sqlite_store._vector_index(kind, "u", dim).cols[column]) >= 0)


class _Row(dict):  # type: ignore[type-arg]
    """A dict with sqlite3.Row's keys(), as apply_rows reads it."""

    def keys(self) -> list[str]:  # type: ignore[override]
        return list(super().keys())


@pytest.mark.unit
def test_added_rows_go_into_the_room_of_the_matrix_and_older_indexes_never_see_a_change() -> None:
    """A patch that only adds rows writes them past the rows older indexes see (no copy: at 100k rows the
    copy took 50-360 ms); a second patch of an older index, or a changed vector, copies."""
    rng = np.random.default_rng(5)
    v = rng.normal(size=(6, 8)).astype(np.float32)
    unit = v / np.linalg.norm(v, axis=1, keepdims=True)

    def rows(*picks: tuple[str, int]) -> list[_Row]:
        return [_Row({"id": i, "embedding": v[n].tobytes(), "dim": 8, "created_at": n}) for i, n in picks]

    base = apply_rows(empty_index(8), rows(("a", 0), ("b", 1)), 1)
    grown = apply_rows(base, rows(("c", 2)), 2)
    assert np.shares_memory(grown.matrix, base.matrix) and grown.matrix.shape == (3, 8)
    assert base.matrix.shape == (2, 8) and list(base.ids) == ["a", "b"]
    assert grown.matrix == pytest.approx(unit[:3])
    restated = apply_rows(grown, rows(("b", 1), ("d", 3)), 3)  # b rewritten with its vector (a status change)
    assert np.shares_memory(restated.matrix, grown.matrix) and restated.matrix == pytest.approx(unit[:4])
    forked = apply_rows(base, rows(("e", 4)), 2)  # base is not the newest index on its buffer: a copy
    assert not np.shares_memory(forked.matrix, grown.matrix)
    assert forked.matrix == pytest.approx(unit[[0, 1, 4]]) and grown.matrix == pytest.approx(unit[:3])
    moved = apply_rows(restated, rows(("a", 5)), 4)  # a's vector changed: copied, never under a reader
    assert not np.shares_memory(moved.matrix, restated.matrix)
    assert restated.matrix[0] == pytest.approx(unit[0]) and moved.matrix[0] == pytest.approx(unit[5])


@pytest.mark.unit
def test_a_patch_that_adds_rows_shares_the_id_map_and_folds_it_when_the_added_ids_grow() -> None:
    """Each write patches the index: the ids of the rows already there (and their positions) are shared,
    not copied (at 100k rows the copy was most of a retrieval right after a write); the added ids fold into
    a new base once they are many. Positions stay right either way, and older indexes never see the newer ids."""
    from memscope.stores.vector_ids import RowIds

    def rows(ids: range) -> list[_Row]:
        return [_Row({"id": f"r{i}", "embedding": np.ones(4, dtype=np.float32).tobytes(), "dim": 4, "created_at": i})
                for i in ids]  # fmt: skip

    base = apply_rows(empty_index(4), rows(range(5000)), 1)
    patched = apply_rows(base, rows(range(5000, 5003)), 2)
    assert patched.ids._base is base.ids._base and len(patched.ids) == 5003  # shared, three ids beside it
    assert patched.ids.position("r5001") == 5001 and patched.ids.position("r17") == 17 and "r5002" in patched.ids
    assert "r5001" not in base.ids and base.ids.position("r5001") is None and len(base.ids) == 5000
    assert patched.ids.extends(base.ids) and not base.ids.extends(patched.ids)
    forked = apply_rows(base, rows(range(6000, 6003)), 2)  # another patch of base: not patched from `patched`
    assert not forked.ids.extends(patched.ids) and forked.ids.extends(base.ids)
    grown = patched
    for version, start in enumerate(range(5003, 7003, 500), start=3):
        grown = apply_rows(grown, rows(range(start, start + 500)), version)
    assert grown.ids._base is not base.ids._base  # 2,000 added ids: folded
    assert grown.ids.extends(patched.ids) and not grown.ids.extends(forked.ids)  # compared id by id
    assert [grown.ids.position(f"r{i}") for i in range(0, 7003, 997)] == list(range(0, 7003, 997))
    assert sorted(grown.ids.position(i) for i in grown.ids) == list(range(7003)) and grown.ids[6500] == "r6500"
    assert RowIds().extended(["a"]).position("a") == 0  # a position of 0 is found, not taken for missing
    with pytest.raises(IndexError):
        grown.ids[7003]


# -- common terms in a large index -------------------------------------------------------------------------


@pytest.mark.unit
def test_text_plan_leaves_out_unselective_terms() -> None:
    from memscope.stores.sqlite_fts import TextPlan, plan_text_query

    def plan(freq: dict[str, int | None]) -> TextPlan:
        return plan_text_query(list(freq), freq, rows=100_000)

    assert plan({"alice": 40, "work": 25_000}) == TextPlan(["alice"])
    assert plan({"neighbour": 2_470, "live": 8_341}) == TextPlan(["neighbour", "live"], all_required=True)
    assert plan({"brother": 2_393}) == TextPlan(["brother"], vector_suffices=True)
    assert plan({"work": 25_000, "nowhere": 0}) == TextPlan(["work"], vector_suffices=True)  # 0 rows: no keeper
    assert plan({"nowhere": 0}) == TextPlan(["nowhere"])  # matches nothing: nothing to save
    assert plan({"work": 900, "alice": 3}) == TextPlan(["work", "alice"])  # up to 1,000 rows: kept
    assert plan({"老 师": None, "work": 25_000}) == TextPlan(["老 师"])  # a CJK phrase's count is unknown


@pytest.mark.unit
def test_text_plan_leaves_out_terms_in_more_than_half_the_rows_while_one_can_rank() -> None:
    """FTS5 floors the BM25 IDF of a term in more than half the rows at 1e-6: it cannot rank, it only adds
    matches to score. A small index (at LoCoMo size a speaker's name is in half the turns) leaves it out
    while a term that can rank remains; so does a large one."""
    from memscope.stores.sqlite_fts import TextPlan, plan_text_query

    def plan(freq: dict[str, int | None], rows: int = 400) -> TextPlan:
        return plan_text_query(list(freq), freq, rows=rows)

    assert plan({"melanie": 230, "camping": 9}) == TextPlan(["camping"])
    assert plan({"melanie": 230, "camping": 9, "zelda": 0}) == TextPlan(["camping", "zelda"])
    assert plan({"melanie": 200, "camping": 9}) == TextPlan(["melanie", "camping"])  # half: it still ranks
    assert plan({"melanie": 230, "say": 390}) == TextPlan(["melanie", "say"])  # none can rank: all kept
    assert plan({"melanie": 230, "zelda": 0}) == TextPlan(["melanie", "zelda"])  # nor can a term in no row
    assert plan({"老 师": None, "melanie": 230}) == TextPlan(["老 师"])
    assert plan({"pottery": 1_600, "start": 900}, rows=1_800) == TextPlan(["start"])  # large: both rules
    assert plan({"pottery": 1_600, "start": 1_200}, rows=1_800) == TextPlan(["pottery", "start"], all_required=True)


@pytest.mark.unit
def test_a_small_index_ranks_by_the_terms_that_can_rank(sqlite_store: SqliteStore) -> None:
    """Most turns name Melanie: "Melanie camping" ranks the camping turns alone, not every Melanie turn."""
    texts = [f"Melanie: chat number {i}" for i in range(30)] + ["Melanie: we went camping by the lake", "Camping!"]
    ids = [f"t{i}" for i in range(30)] + ["camp1", "camp2"]  # the last turns: no later turn quotes them
    pairs = enumerate(zip(ids, texts, strict=True))
    sqlite_store.add_messages([message("u", t, id=i, created_at=T0 + timedelta(minutes=n)) for n, (i, t) in pairs])
    ranking = sqlite_store.message_text_ranking("u", SearchQuery(text="Melanie camping", top_k=10, candidates=10))
    assert sorted(ranking or []) == ["camp1", "camp2"]
    hits = sqlite_store.search_messages("u", SearchQuery(text="Melanie chat number 7", top_k=3, candidates=3))
    assert hits[0].message.id == "t7"  # a query of rankable terms is unchanged


@pytest.mark.unit
def test_a_time_filtered_text_search_reads_only_the_periods_stretch_of_rows(sqlite_store: SqliteStore) -> None:
    """BM25 in a period is bounded by the least and greatest pk of the period's turns, and finds what the
    unbounded search finds, a turn written late (out of time order) included; an empty period runs no MATCH."""
    turns = [message("u", f"guitar lesson {n}" if n % 3 else f"painting class {n}", id=f"t{n}",
                     created_at=T0 + timedelta(days=n)) for n in range(90)]  # fmt: skip
    late = T0 + timedelta(days=10, hours=1)
    turns.append(message("u", "my first guitar lesson, back then", id="late", created_at=late))
    sqlite_store.add_messages(turns)
    statements: list[str] = []
    sqlite_store._conn().set_trace_callback(statements.append)
    start, end = T0 + timedelta(days=5), T0 + timedelta(days=15)
    period = MessageFilter(time_range=TimeRange(start=start, end=end))
    hits = sqlite_store.search_messages("u", SearchQuery(text="guitar lesson", top_k=20, candidates=20), period)
    assert all(start <= h.message.created_at < end for h in hits) and "late" in [h.message.id for h in hits]
    bounded = [s for s in statements if "ORDER BY rank" in s]
    assert len(bounded) == 1 and "rowid BETWEEN 6 AND 91" in bounded[0]  # t5's pk to the late turn's
    where, params = message_where("u", period)
    unbounded = sqlite_store._text_ids("messages", '"guitar" OR "lesson"', where, params, 20)
    assert len(hits) > 10 and [h.message.id for h in hits] == unbounded  # the same ranking without the bound
    del statements[:]
    empty = MessageFilter(time_range=TimeRange(start=T0 - timedelta(days=30), end=T0 - timedelta(days=20)))
    assert sqlite_store.search_messages("u", SearchQuery(text="guitar", top_k=5), empty) == []
    assert not [s for s in statements if "ORDER BY rank" in s]


@pytest.mark.unit
def test_large_index_searches_without_unselective_terms(sqlite_store: SqliteStore) -> None:
    nodes = [memory("u", f"I work on project {i}", embedding=[0.0, 1.0]) for i in range(1_100)]
    nodes.append(memory("u", "Alice works at the bakery", embedding=[1.0, 0.0]))
    sqlite_store.write_memories(nodes)
    assert sqlite_store._text_match("memories", "Where does Alice work?")[:2] == ('"alice"', False)
    hits = sqlite_store.search_memories("u", SearchQuery(text="Where does Alice work?", top_k=3))
    assert hits[0].memory.content == "Alice works at the bakery"
    # both unselective: required together; here they are still together in 1,100 rows, so the vector can stand in
    assert sqlite_store._text_match("memories", "which project at work?")[:2] == ('"project" AND "work"', True)
    assert sqlite_store._text_match("memories", "Alice at work?")[:2] == ('"alice"', False)
    # one unselective term: with a vector the text channel is left out (no text rank); without one it runs
    assert sqlite_store._text_match("memories", "work?")[:2] == ('"work"', True)
    with_vector = sqlite_store.search_memories("u", SearchQuery(text="work", embedding=[1.0, 0.0], top_k=3))
    assert with_vector[0].memory.content == "Alice works at the bakery"
    assert all(h.text_rank is None for h in with_vector)
    text_only = sqlite_store.search_memories("u", SearchQuery(text="work", top_k=3))
    assert len(text_only) == 3 and all(h.text_rank is not None for h in text_only)
    small = sqlite_store._text_match("messages", "Where does Alice work?")  # a small index keeps every term
    assert small[:2] == ('"alice" OR "work"', False)


@pytest.mark.unit
def test_a_time_filtered_memory_search_ranks_by_bm25_only_terms_in_few_rows(
    sqlite_store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FTS5 cannot bound a memory period's rows (an overlap of two times), so BM25 there reads every row of
    the terms: past _PERIOD_POSTINGS of them the period's vector search stands alone; the open search and
    a period search for a rare word still rank by BM25."""
    import memscope.stores.sqlite as sqlite_module
    from memscope.models import EventTime

    def on(day: int) -> EventTime:
        return EventTime(start=T0 + timedelta(days=day), end=T0 + timedelta(days=day + 1))

    nodes = [memory("u", f"I work on project {i}", embedding=vec(1, i % 7), event_time=on(i)) for i in range(300)]
    nodes.append(memory("u", "Alice works at the bakery", embedding=vec(0, 1), event_time=on(10)))
    sqlite_store.write_memories(nodes)
    monkeypatch.setattr(sqlite_module, "_PERIOD_POSTINGS", 100)
    assert sqlite_store._text_match("memories", "project work").rows == 601
    statements: list[str] = []
    sqlite_store._conn().set_trace_callback(statements.append)
    period = MemoryFilter(time_range=TimeRange(start=T0 + timedelta(days=8), end=T0 + timedelta(days=12)))
    common = SearchQuery(text="project work", embedding=vec(1, 3), top_k=5)
    hits = sqlite_store.search_memories("u", common, period)
    assert len(hits) == 5 and all(h.text_rank is None for h in hits)  # found by the vector channel alone
    assert not [s for s in statements if "ORDER BY rank" in s]
    assert sqlite_store.search_memories("u", common)[0].text_rank is not None  # no period: BM25 as ever
    rare = sqlite_store.search_memories("u", SearchQuery(text="Alice bakery", embedding=vec(1, 3), top_k=5), period)
    assert [h.text_rank for h in rare if h.memory.content.startswith("Alice")] == [1]


@pytest.mark.unit
def test_a_text_plan_and_its_counts_are_kept_until_the_index_grows(sqlite_store: SqliteStore) -> None:
    """A plan, and each word's row count, stand while the index grows by under half a percent (16 rows
    at least): a chatbot adding turns does not recount "work" for every question. More growth renews them."""
    sqlite_store.write_memories([memory("u", f"I work on project {i}") for i in range(1_001)])
    sqlite_store.write_memories([memory("u", "Alice bakes bread")])
    statements: list[str] = []
    sqlite_store._conn().set_trace_callback(statements.append)
    assert sqlite_store._text_match("memories", "Where does Alice bake?")[:2] == ('"alice" OR "bake"', False)
    planned = len(statements)
    assert sum("FROM temp.memories_vocab" in s for s in statements) == 2  # the two terms' document counts were read
    assert sqlite_store._text_match("memories", "Where does Alice bake?")[:2] == ('"alice" OR "bake"', False)
    assert len(statements) == planned + 1  # the second plan: only the max(pk) it is checked against
    sqlite_store.write_memories([memory("u", "Alice bakes a cake")])  # one row more: the plan stands
    del statements[:]
    assert sqlite_store._text_match("memories", "Where does Alice bake?")[:2] == ('"alice" OR "bake"', False)
    assert len(statements) == 1
    assert sqlite_store._text_match("memories", "Does Alice bake bread?")[:2] == ('"alice" OR "bake" OR "bread"', False)
    assert sum("FROM temp.memories_vocab" in s for s in statements) == 1  # a new plan: only "bread" is counted
    # growth renews them: "bake" in 1,001 more rows is no longer selective
    sqlite_store.write_memories([memory("u", f"I bake loaf {i}") for i in range(1_001)])
    assert sqlite_store._text_match("memories", "Where does Alice bake?")[:2] == ('"alice"', False)


@pytest.mark.unit
def test_vector_search_runs_blas_on_one_thread_unless_the_environment_chose(
    sqlite_store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from threadpoolctl import ThreadpoolController, threadpool_limits

    from memscope.llm.blas_threads import _state as blas_state

    def blas_threads() -> set[int]:
        return {info["num_threads"] for info in ThreadpoolController().info() if info["user_api"] == "blas"}

    sqlite_store.write_memories([memory("u", "I keep bees", embedding=[1.0, 0.0])])
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    with threadpool_limits(limits=2, user_api="blas"):
        monkeypatch.setitem(blas_state, "done", False)  # as in a fresh process
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
        sqlite_store.search_memories("u", SearchQuery(embedding=[1.0, 0.0], top_k=1))
        assert blas_threads() == {2}  # the user's choice stands
        monkeypatch.delenv("OPENBLAS_NUM_THREADS")
        blas_state["done"] = False
        sqlite_store.search_memories("u", SearchQuery(embedding=[1.0, 0.0], top_k=1))
        assert blas_threads() == {1}


# -- re-embedding -----------------------------------------------------------------------------------------


@pytest.mark.integration
def test_reembed_switches_the_store_to_a_new_model(tmp_path: Path) -> None:
    from memscope.config import load_settings
    from memscope.errors import EmbeddingMismatch
    from memscope.llm.cache import normalize
    from memscope.reembed import reembed

    class Letters:
        """A tiny real embedder: letter counts of the text (a new model of dimension 26)."""

        name, dim = "letters", 26

        def embed(self, texts: list[str]) -> np.ndarray:
            rows = [[t.lower().count(chr(97 + i)) + 0.01 for i in range(26)] for t in texts]
            return normalize(np.array(rows, dtype=np.float32))

    path = tmp_path / "m.db"
    store = SqliteStore(path)
    store.check_embedding_model("model-a", 8)
    old = memory("u", "I keep bees", embedding=[1.0] + [0.0] * 7)
    gone = memory("u", "I kept wasps", embedding=[0.0, 1.0] + [0.0] * 6, status=MemoryStatus.EXPIRED)
    store.write_memories([old, gone])
    said = Message(user_id="v", content="hello there", created_at=T0)
    store.add_messages([said])
    store.set_message_embeddings("v", {said.id: [0.0] * 7 + [1.0]})
    with pytest.raises(EmbeddingMismatch, match="memscope reembed"):
        store.check_embedding_model("letters", 26)
    store.close()

    settings = load_settings({"store": {"path": str(path)}, "llm": {"backend": "none"}})
    counts = reembed(settings, embedder=Letters())
    assert counts == {"users": 2, "messages": 1, "memories": 1}  # the expired memory keeps no vector
    again = SqliteStore(path)
    again.check_embedding_model("letters", 26)  # the store now belongs to the new model
    hits = again.search_memories("u", SearchQuery(embedding=Letters().embed(["bees"])[0].tolist(), top_k=1))
    assert [h.memory.id for h in hits] == [old.id] and hits[0].vector_similarity is not None
    assert [e.kind.value for e in again.history("u", old.id)] == ["add"]  # no event: the memory did not change
    assert again.messages_without_embedding("v") == []
    assert reembed(settings, embedder=Letters()) == {"users": 2, "messages": 0, "memories": 0}  # idempotent
    again.close()


@pytest.mark.unit
def test_a_schema_2_file_migrates_reflected_at_out_of_metadata(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    old = memory("u", "climbs on Sundays", embedding=basis(1))
    fresh = memory("u", "likes tea", embedding=basis(2))
    with SqliteStore(path) as store:
        store.write_memories([old, fresh])
    raw = sqlite3.connect(path)  # make it the file schema 2 wrote: no column, the mark in metadata
    raw.execute("DROP INDEX memories_user_unreflected")
    raw.execute("ALTER TABLE memories DROP COLUMN reflected_at")
    raw.execute(
        "UPDATE memories SET metadata = ? WHERE id = ?",
        ('{"source": "chat", "reflected_at": "2024-03-01T08:00:00.000005+00:00"}', old.id),
    )
    raw.execute("PRAGMA user_version = 2")
    raw.commit()
    raw.close()
    with SqliteStore(path) as store:
        got = store.get_memory("u", old.id)
        assert got is not None and got.metadata == {"source": "chat"}
        assert got.reflected_at == datetime(2024, 3, 1, 8, 0, 0, 5, tzinfo=UTC)
        assert [m.id for m in store.list_memories("u", MemoryFilter(reflected=False))] == [fresh.id]
        hits = store.search_memories("u", SearchQuery(embedding=basis(1)), MemoryFilter(reflected=True))
        assert [h.memory.id for h in hits] == [old.id]
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        indexes = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "memories_user_unreflected" in indexes
    finally:
        raw.close()


@pytest.mark.unit
def test_a_schema_3_file_rebuilds_its_message_index_with_reply_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.db"
    at = [T0 + timedelta(minutes=i) for i in range(7)]
    turns = [message("u", f"turn {i} word{i}", name="Ann", session_id="s", created_at=at[i]) for i in range(7)]
    lone = message("u", "a lone remark without session", created_at=at[4])
    theirs = message("v", "word1 of another user", session_id="s", created_at=at[2])
    with SqliteStore(path) as store:
        store.add_messages([*turns, lone, theirs])
    raw = sqlite3.connect(path)  # make it the file schema 3 wrote: messages_fts with one column, body
    raw.execute("DROP TABLE messages_fts")
    raw.execute("CREATE VIRTUAL TABLE messages_fts USING fts5(body, tokenize='porter unicode61 remove_diacritics 2')")
    raw.execute("INSERT INTO messages_fts (rowid, body) SELECT pk, coalesce(name || ': ', '') || content FROM messages")
    raw.execute("PRAGMA user_version = 3")
    raw.commit()
    raw.close()
    monkeypatch.setattr("memscope.stores.sqlite_schema._REFILL_ROWS", 3)  # pages end mid-conversation
    with SqliteStore(path) as store:
        for i in range(1, 6):  # each turn by its own word first, then the turn after it by its context
            hits = store.search_messages("u", SearchQuery(text=f"word{i}"))
            assert [h.message.id for h in hits][:2] == [turns[i].id, turns[i + 1].id]
        assert [h.message.id for h in store.search_messages("u", SearchQuery(text="lone"))] == [lone.id]
        assert [h.message.id for h in store.search_messages("v", SearchQuery(text="word1"))] == [theirs.id]
        assert [h.message.id for h in store.search_messages("u", SearchQuery(text="word6"))] == [turns[6].id]
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        rows = dict(raw.execute("SELECT rowid, context FROM messages_fts").fetchall())
        pks = dict(raw.execute("SELECT id, pk FROM messages").fetchall())
        assert len(rows) == 9
        assert rows[pks[turns[0].id]] == "" and rows[pks[lone.id]] == "" and rows[pks[theirs.id]] == ""
        assert rows[pks[turns[3].id]] == "Ann: turn 2 word2"
        assert raw.execute("SELECT v FROM messages_fts_config WHERE k = 'rank'").fetchone()[0] == "bm25(1.0, 0.3)"
    finally:
        raw.close()


@pytest.mark.unit
def test_context_follows_a_turn_inserted_out_of_order_and_goes_with_the_user(sqlite_store: SqliteStore) -> None:
    first, middle, last = (
        message("u", f"say {w}", session_id="s", created_at=T0 + timedelta(minutes=i)) for i, w in enumerate("abc")
    )
    sqlite_store.add_messages([first, last])
    sqlite_store.add_messages([middle])  # arrives late: `last` now replies to it, not to `first`
    conn = sqlite_store._conn()
    context = dict(conn.execute("SELECT m.id, f.context FROM messages_fts f JOIN messages m ON m.pk = f.rowid"))
    assert context == {first.id: "", middle.id: "user: say a", last.id: "user: say b"}
    sqlite_store.delete_user("u")
    assert conn.execute("SELECT count(*) FROM messages_fts").fetchone()[0] == 0


# -- conversation neighbours: one statement per 100 anchors, on an index every file gets --------------------


@pytest.mark.unit
def test_neighbours_of_more_anchors_than_one_statement_holds(sqlite_store: SqliteStore) -> None:
    turns = [message("u", f"turn {i}", session_id="s", created_at=T0 + timedelta(seconds=i)) for i in range(260)]
    sqlite_store.add_messages(turns)
    got = sqlite_store.message_neighbours("u", [t.id for t in turns[1:-1]], before=1, after=1)  # 258 anchors: 3 chunks
    assert len(got) == 258
    for i in range(1, 259):
        assert [m.content for m in got[turns[i].id]] == [f"turn {i - 1}", f"turn {i + 1}"]


@pytest.mark.unit
def test_a_file_without_the_conversation_index_gets_it_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP INDEX messages_conversation")
    store = SqliteStore(path)
    names = {r[0] for r in store._conn().execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    store.close()
    assert "messages_conversation" in names


_CLOSE_UNDER_A_CALL = """
import sqlite3, sys, threading, time
from datetime import UTC, datetime
from memscope.models import MemoryNode, MemoryType
from memscope.stores.sqlite import SqliteStore
path = sys.argv[1]
store = SqliteStore(path, timeout_s=2)
node = MemoryNode(user_id="u", memory_type=MemoryType.OBSERVATION, content="Ann likes figs")
store.write_memories([node])
holder = sqlite3.connect(path, isolation_level=None)
holder.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
outcome = []
def touch():
    try:
        store.touch_memories("u", [node.id], datetime.now(UTC))
        outcome.append("written")
    except Exception as exc:
        outcome.append(type(exc).__name__)
thread = threading.Thread(target=touch)
thread.start()
deadline = time.monotonic() + 60
while not store._in_flight and time.monotonic() < deadline:  # until the touch is in its call
    time.sleep(0.01)
time.sleep(0.2)  # and waiting for the lock
store.close()
thread.join()
print("closed", outcome)
"""


def test_closing_the_store_under_another_threads_call_does_not_crash(tmp_path: Path) -> None:
    """close() waits for a call in flight (here one waiting for the write lock) before closing its connection:
    closing it under the call crashed the process (SIGSEGV)."""
    done = subprocess.run([sys.executable, "-c", _CLOSE_UNDER_A_CALL, str(tmp_path / "m.db")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    # the call ends with the store's error (busy, or interrupted by close), never with the process
    assert "closed ['StoreUnavailable']" in done.stdout or "closed ['StoreError']" in done.stdout, done.stdout
