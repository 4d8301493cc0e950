"""What only a live Elasticsearch can show: compare-and-set under concurrent writers, the default
`refresh=wait_for` read-your-writes, the core-only analyzer on Chinese text, an index made
before `replied_to` getting the field and its backfill, and the time-filtered search's round trip
beside the open one's."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from memscope.models import EventTime, Granularity, MemoryStatus, TimeRange
from memscope.retrieval import search_with_period
from memscope.stores import es_queries as q
from memscope.stores.base import MemoryFilter, SearchQuery
from memscope.stores.elasticsearch import ElasticsearchStore
from memscope.stores.es_templates import ADDED_FIELDS, PROPERTIES
from memscope.stores.testing import memory, message, uid, vec
from tests.support.es import es_prefix

pytestmark = pytest.mark.integration
AT = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def store() -> Iterator[ElasticsearchStore]:
    with es_prefix("live") as (url, prefix), ElasticsearchStore(url, index_prefix=prefix, refresh="true") as es:
        yield es


def test_concurrent_touches_and_rewrites_lose_no_access_and_no_event(store: ElasticsearchStore) -> None:
    user = uid()
    node = memory(user, "likes green tea")
    store.write_memories([node])

    def touch(_: int) -> None:
        for _ in range(10):
            store.touch_memories(user, [node.id], AT)

    def rewrite(_: int) -> None:
        for n in range(5):
            store.write_memories([node.model_copy(update={"content": f"likes green tea, cup {n}"})])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(touch, range(3)))  # warm the pool, then race touches against rewrites
        futures = [pool.submit(touch, i) for i in range(3)] + [pool.submit(rewrite, 0)]
        for future in futures:
            future.result()
    stored = store.get_memory(user, node.id)
    assert stored is not None and stored.access_count == 60  # 6 x 10 touches, none lost to a rewrite
    assert stored.content == "likes green tea, cup 4"
    assert [e.kind.value for e in store.history(user, node.id)] == ["add"] + ["update"] * 5


def test_the_time_filtered_search_beside_the_open_one_finds_what_it_finds_in_turn(store: ElasticsearchStore) -> None:
    """A retrieval naming a time sends its time-filtered search on a helper thread while the open one runs
    (`search_with_period`, as the search workers do on a networked store): through the one client, both
    ways give the same hits, the period's memory merged in below the open search's."""
    user = uid()
    nodes = [
        memory(user, f"went hiking with Sam, trip {i}", embedding=vec(1.0, 0.1 * i),
               event_time=EventTime(start=AT + timedelta(days=60 * i), end=AT + timedelta(days=60 * i + 1),
                                    granularity=Granularity.DAY))
        for i in range(6)
    ]  # fmt: skip
    store.write_memories(nodes)
    active = MemoryFilter(statuses=(MemoryStatus.ACTIVE,))
    period = TimeRange(start=AT + timedelta(days=240), end=AT + timedelta(days=250))  # trip 4 alone
    calls = (
        (SearchQuery(text="hiking Sam", embedding=vec(1.0, 0.0), top_k=2, candidates=2), active),
        (SearchQuery(text="hiking Sam", embedding=vec(1.0, 0.0), top_k=2, candidates=2),
         MemoryFilter(statuses=(MemoryStatus.ACTIVE,), time_range=period)),
    )  # fmt: skip

    def search(query: SearchQuery, f: MemoryFilter) -> list[Any]:
        return store.search_memories(user, query, f)

    for _ in range(5):
        beside = search_with_period(search, *calls, key=lambda h: h.memory.id, side_by_side=True)
        in_turn = search_with_period(search, *calls, key=lambda h: h.memory.id, side_by_side=False)
        assert [h.memory.id for h in beside] == [h.memory.id for h in in_turn]
        assert len(beside) == 3 and beside[-1].memory.id == nodes[4].id  # the period's, below the open two


def test_concurrent_mark_consolidated_counts_each_message_once(store: ElasticsearchStore) -> None:
    user = uid()
    batch = [message(user, f"note {i}") for i in range(20)]
    store.add_messages(batch)
    ids = [m.id for m in batch]
    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(lambda _: store.mark_consolidated(user, ids, AT), range(4)))
    assert sum(counts) == 20
    assert store.stats(user).pending_messages == 0


def test_default_wait_for_refresh_reads_its_own_writes(store: ElasticsearchStore) -> None:
    waiting = ElasticsearchStore(store._client.transport.node_pool.get().base_url, index_prefix=store.index_prefix)
    with waiting:
        assert waiting.refresh == "wait_for"
        user = uid()
        waiting.add_messages([message(user, "my locker code is 4711")])
        hits = waiting.search_messages(user, SearchQuery(text="locker code"))  # no refresh in between
        assert [h.message.content for h in hits] == ["my locker code is 4711"]


def test_core_analyzer_finds_chinese_by_characters(store: ElasticsearchStore) -> None:
    user = uid()
    store.write_memories([memory(user, "用户喜欢喝乌龙茶"), memory(user, "用户住在北京")])
    found = store.search_memories(user, SearchQuery(text="乌龙茶"))
    assert [h.memory.content for h in found][:1] == ["用户喜欢喝乌龙茶"]


def test_an_index_made_before_replied_to_gets_the_field_and_the_backfill(monkeypatch: pytest.MonkeyPatch) -> None:
    user = uid()
    turns = [
        message(user, "Which instrument do you play?", name="Mel", session_id="s", created_at=AT),
        message(user, "The violin, since I was ten", name="Cara", session_id="s", created_at=AT + timedelta(minutes=1)),
        message(user, "Lovely!", name="Mel", session_id="s", created_at=AT + timedelta(minutes=2)),
        message(user, "Which instrument again?", name="Mel", created_at=AT),  # no session: its own conversation
    ]
    with es_prefix("replied") as (url, prefix):
        with monkeypatch.context() as old:  # the mapping and documents of a memscope before `replied_to`
            old.delitem(PROPERTIES["messages"], "replied_to")
            old.setitem(ADDED_FIELDS, "messages", ())
            with ElasticsearchStore(url, index_prefix=prefix, refresh="true") as before:
                operations: list[dict[str, Any]] = []
                for m in turns:
                    operations += [{"create": {"_index": before.alias("messages"), "_id": m.id}}, q.message_doc(m)]
                assert not before._es().bulk(operations=operations, refresh="true")["errors"]
        with ElasticsearchStore(url, index_prefix=prefix, refresh="true") as store:
            store.init_indices()
            mapping = store._client.indices.get_mapping(index=store.alias("messages"))
            assert all("replied_to" in m["mappings"]["properties"] for m in mapping.values())
            assert store.backfill_replied_to() == 4
            assert store.backfill_replied_to() == 0  # every message has the field now ("" for a first turn)
            hits = store.search_messages(user, SearchQuery(text="violin"))
            assert [h.message.id for h in hits] == [turns[1].id, turns[2].id]
            hits = store.search_messages(user, SearchQuery(text="play"))
            assert [h.message.id for h in hits] == [turns[0].id, turns[1].id]  # the answer by its question
