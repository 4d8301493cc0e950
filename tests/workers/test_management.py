"""add_memory, list_memory, update_memory and delete_memory: the real operations on a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from memscope.engine import OperationCatalog, OperationRunner, Resources, RunResult
from memscope.errors import OperationRunError, ValidationError
from memscope.llm.local_embedding import LocalEmbedder
from memscope.models import EventKind, Granularity, MemoryNode, MemoryStatus, MemoryType
from memscope.stores.sqlite import SqliteStore

pytestmark = pytest.mark.unit

NOW = datetime(2024, 5, 15, 12, 0, tzinfo=UTC)  # a Wednesday


@pytest.fixture(scope="module")
def catalog() -> OperationCatalog:
    return OperationCatalog()


@pytest.fixture
def store(tmp_path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "m.db") as s:
        yield s


@pytest.fixture
def resources(store) -> Resources:
    return Resources(store=store, clock=lambda: NOW)


def run(resources: Resources, catalog: OperationCatalog, operation: str, **inputs) -> RunResult:
    return OperationRunner(resources).run(catalog.get(operation), inputs)


def cause(info: pytest.ExceptionInfo[OperationRunError]) -> BaseException:
    assert isinstance(info.value.__cause__, ValidationError)
    return info.value.__cause__


def seed(store: SqliteStore, user: str, *contents: str, **fields) -> list[MemoryNode]:
    nodes = [MemoryNode(user_id=user, content=c, created_at=NOW - timedelta(days=len(contents) - i), **fields)
             for i, c in enumerate(contents)]  # fmt: skip
    store.write_memories(nodes, operation="seed")
    return nodes


# -- add -------------------------------------------------------------------------------------------


def test_add_memory_with_a_time_phrase(resources, catalog, store):
    result = run(resources, catalog, "add_memory", user_id="u1", content="  Dentist appointment  ",
                 time="last Friday", importance=0.9, metadata={"source": "app"}, key="health")  # fmt: skip
    [node] = result["stored_memories"]
    stored = store.get_memory("u1", node.id)
    assert stored.content == "Dentist appointment"
    assert (stored.memory_type, stored.status, stored.key, stored.importance) == (
        MemoryType.CUSTOMIZED, MemoryStatus.ACTIVE, "health", 0.9)  # fmt: skip
    assert stored.metadata == {"source": "app"}
    assert stored.event_time.start == datetime(2024, 5, 10, tzinfo=UTC)
    assert stored.event_time.granularity is Granularity.DAY
    assert stored.created_at == NOW
    [event] = store.history("u1", node.id)
    assert (event.kind, event.operation, event.before) == (EventKind.ADD, "add_memory", None)


@pytest.mark.parametrize(
    ("time", "start", "granularity"),
    [
        ("2023-05-08", datetime(2023, 5, 8, tzinfo=UTC), Granularity.DAY),
        ("2023-05-08T14:30:00+02:00", datetime(2023, 5, 8, 12, 30, tzinfo=UTC), Granularity.INSTANT),
        ("上周三", datetime(2024, 5, 8, tzinfo=UTC), Granularity.DAY),
        (None, None, None),
    ],
)
def test_add_memory_time_forms(resources, catalog, store, time, start, granularity):
    [node] = run(resources, catalog, "add_memory", user_id="u1", content="x", time=time)["stored_memories"]
    stored = store.get_memory("u1", node.id)
    if start is None:
        assert stored.event_time is None
    else:
        assert (stored.event_time.start, stored.event_time.granularity) == (start, granularity)


def test_add_memory_in_the_users_zone(resources, catalog, store):
    [node] = run(resources, catalog, "add_memory", user_id="u1", content="x", time="yesterday",
                 timezone="Asia/Shanghai")["stored_memories"]  # fmt: skip
    assert store.get_memory("u1", node.id).event_time.start == datetime(2024, 5, 13, 16, tzinfo=UTC)


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"time": "when pigs fly"}, "time 'when pigs fly' is not understood"),
        ({"memory_type": "diary"}, "memory_type"),
        ({"importance": 2}, "importance"),
        ({"content": "   "}, "content must be non-empty"),
    ],
)
def test_add_memory_rejects_bad_input(resources, catalog, store, inputs, expected):
    with pytest.raises(OperationRunError) as info:
        run(resources, catalog, "add_memory", **{"user_id": "u1", "content": "x", **inputs})
    assert expected in str(cause(info))
    assert store.list_memories("u1") == []


@pytest.mark.integration
def test_add_memory_embeds_when_an_embedder_is_configured(store, catalog):
    embedder = LocalEmbedder()
    resources = Resources(store=store, embedder=embedder, clock=lambda: NOW)
    [node] = run(resources, catalog, "add_memory", user_id="u1", content="I love jazz")["stored_memories"]
    assert node.embedding is not None and len(node.embedding) == embedder.dim
    found = store.search_memories("u1", _query(embedder, "music taste"))
    assert [h.memory.id for h in found] == [node.id]


def _query(embedder: LocalEmbedder, text: str):
    from memscope.stores.base import SearchQuery

    return SearchQuery(embedding=[float(x) for x in embedder.embed([text])[0]], top_k=5)


# -- list ------------------------------------------------------------------------------------------


def test_list_memory_filters_and_pages(resources, catalog, store):
    a, b, c = seed(store, "u1", "one", "two", "three")
    [insight] = seed(store, "u1", "four", memory_type=MemoryType.INSIGHT)
    [gone] = seed(store, "u1", "five", status=MemoryStatus.DELETED)
    seed(store, "u2", "someone else's")
    listed = run(resources, catalog, "list_memory", user_id="u1")["memories"]
    assert [m.id for m in listed] == [insight.id, c.id, b.id, a.id]  # newest first, active only
    page = run(resources, catalog, "list_memory", user_id="u1", limit=2, offset=1)["memories"]
    assert [m.id for m in page] == [c.id, b.id]
    only = run(resources, catalog, "list_memory", user_id="u1", memory_types=["insight"])["memories"]
    assert [m.id for m in only] == [insight.id]
    deleted = run(resources, catalog, "list_memory", user_id="u1", statuses=["deleted"])["memories"]
    assert [m.id for m in deleted] == [gone.id]


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [({"limit": 0}, "limit"), ({"offset": -1}, "offset"), ({"statuses": ["gone"]}, "allowed: active")],
)
def test_list_memory_rejects_bad_input(resources, catalog, inputs, expected):
    with pytest.raises(OperationRunError) as info:
        run(resources, catalog, "list_memory", user_id="u1", **inputs)
    assert expected in str(cause(info))


# -- update ----------------------------------------------------------------------------------------


def test_update_memory_records_before_and_after(resources, catalog, store):
    [node] = seed(store, "u1", "Tom works at Apple", metadata={"source": "chat", "pinned": False})
    result = run(resources, catalog, "update_memory", user_id="u1", memory_id=node.id, content="Tom works at Google",
                 importance=0.8, metadata={"pinned": True, "source": None})  # fmt: skip
    assert [n.id for n in result["stored_memories"]] == [node.id]
    stored = store.get_memory("u1", node.id)
    assert (stored.content, stored.importance, stored.metadata) == ("Tom works at Google", 0.8, {"pinned": True})
    assert stored.updated_at == NOW
    add, update = store.history("u1", node.id)
    assert (add.kind, update.kind, update.operation) == (EventKind.ADD, EventKind.UPDATE, "update_memory")
    assert update.before["content"] == "Tom works at Apple"
    assert update.after["content"] == "Tom works at Google"


@pytest.mark.integration
def test_update_memory_re_embeds_changed_content(store, catalog):
    embedder = LocalEmbedder()
    resources = Resources(store=store, embedder=embedder, clock=lambda: NOW)
    [node] = run(resources, catalog, "add_memory", user_id="u1", content="I love jazz")["stored_memories"]
    run(resources, catalog, "update_memory", user_id="u1", memory_id=node.id, content="I hate spiders")
    stored = store.get_memory("u1", node.id)
    expected = embedder.embed(["I hate spiders"])[0]
    assert np.allclose(stored.embedding, expected, atol=1e-5)


def test_update_unknown_or_foreign_memory_writes_nothing(resources, catalog, store):
    [theirs] = seed(store, "u2", "Alice likes tea")
    for memory_id in ("no-such-id", theirs.id):
        result = run(resources, catalog, "update_memory", user_id="u1", memory_id=memory_id, content="hacked")
        assert result["stored_memories"] == []
    assert store.get_memory("u2", theirs.id).content == "Alice likes tea"


def test_update_with_nothing_to_change_says_what_to_pass(resources, catalog, store):
    [node] = seed(store, "u1", "Tom works at Apple")
    with pytest.raises(OperationRunError) as info:
        run(resources, catalog, "update_memory", user_id="u1", memory_id=node.id)
    assert "pass content, importance, metadata or key" in str(cause(info))


# -- delete ----------------------------------------------------------------------------------------


def test_delete_by_id_is_soft_and_keeps_history(resources, catalog, store):
    [node, other] = seed(store, "u1", "Tom works at Apple", "Tom likes tea")
    result = run(resources, catalog, "delete_memory", user_id="u1", memory_id=node.id)
    assert [n.id for n in result["stored_memories"]] == [node.id]
    assert store.get_memory("u1", node.id).status is MemoryStatus.DELETED
    assert store.get_memory("u1", other.id).status is MemoryStatus.ACTIVE
    event = store.history("u1", node.id)[-1]
    assert event.kind is EventKind.DELETE and event.before["content"] == "Tom works at Apple"
    listed = run(resources, catalog, "list_memory", user_id="u1")["memories"]
    assert [m.id for m in listed] == [other.id]
    again = run(resources, catalog, "delete_memory", user_id="u1", memory_id=node.id)
    assert again["stored_memories"] == []  # already deleted: nothing changes, no second event
    assert len(store.history("u1", node.id)) == 2


def test_delete_by_content_match_is_case_insensitive(resources, catalog, store):
    black, morning, tea = seed(store, "u1", "Likes COFFEE black", "Drinks coffee every morning", "Likes tea")
    [theirs] = seed(store, "u2", "Also likes coffee")
    [expired] = seed(store, "u1", "Used to like coffee", status=MemoryStatus.EXPIRED)
    result = run(resources, catalog, "delete_memory", user_id="u1", content_match="Coffee")
    assert {n.id for n in result["stored_memories"]} == {black.id, morning.id}
    assert store.get_memory("u1", tea.id).status is MemoryStatus.ACTIVE
    assert store.get_memory("u1", expired.id).status is MemoryStatus.EXPIRED  # only active ones match
    assert store.get_memory("u2", theirs.id).status is MemoryStatus.ACTIVE


def test_delete_unknown_or_foreign_id_writes_nothing(resources, catalog, store):
    [theirs] = seed(store, "u2", "Alice likes tea")
    for memory_id in ("no-such-id", theirs.id):
        assert run(resources, catalog, "delete_memory", user_id="u1", memory_id=memory_id)["stored_memories"] == []
    assert store.get_memory("u2", theirs.id).status is MemoryStatus.ACTIVE


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({}, "pass memory_id (the memory to delete) or content_match"),
        ({"memory_id": "x", "content_match": "y"}, "not both"),
        ({"content_match": "  "}, "must not be blank"),
    ],
)
def test_delete_needs_exactly_one_of_id_or_match(resources, catalog, store, inputs, expected):
    seed(store, "u1", "Tom works at Apple")
    with pytest.raises(OperationRunError) as info:
        run(resources, catalog, "delete_memory", user_id="u1", **inputs)
    assert expected in str(cause(info))
    assert len(store.list_memories("u1")) == 1
