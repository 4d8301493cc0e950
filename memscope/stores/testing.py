"""The Store contract test-kit: every backend's test module subclasses `StoreContractSuite`.

    @pytest.mark.unit            # or integration, if the backend needs a server
    class TestSqliteStore(StoreContractSuite):
        @pytest.fixture
        def store(self, tmp_path):
            s = SqliteStore(tmp_path / "m.db")
            yield s
            s.close()

The suite uses only the `Store` protocol. Users get unique ids per test, so a backend whose fixture
shares one index between tests still passes; only `test_embedding_model_mismatch` needs a store
that no embedder has used yet. Needs pytest and hypothesis (`pip install 'memscope-ai[dev]'`).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

try:
    import pytest
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - only without the dev extras
    raise ImportError(
        "memscope.stores.testing needs pytest and hypothesis; run `pip install 'memscope-ai[dev]'`"
    ) from exc

from memscope.errors import EmbeddingMismatch, LeaseLost, ValidationError
from memscope.models import (
    EventKind,
    EventTime,
    Granularity,
    MemoryNode,
    MemoryStatus,
    MemoryType,
    Message,
    Role,
    TimeRange,
)
from memscope.stores.base import (
    ConsolidationMark,
    Fence,
    MemoryFilter,
    MessageFilter,
    ScoredMemory,
    SearchQuery,
    Store,
)

__all__ = ["DIM", "StoreContractSuite", "basis", "memory", "message", "uid", "vec"]

DIM = 8
T0 = datetime(2024, 3, 1, tzinfo=UTC)
ALL_STATUSES = (MemoryStatus.ACTIVE, MemoryStatus.EXPIRED, MemoryStatus.DELETED)
HOSTILE_IDS = (
    "x' OR 1=1 --", "%", "*", "_", '"', "\\", "a%b", "'; DROP TABLE memories; --", "用户", "🙂", "?", "$ne",
)  # fmt: skip
HOSTILE_QUERIES = (
    '"', '""', "'", "*", "whisk*", "NEAR(cat dog)", "cat AND", "AND", "OR OR", "NOT", "(", ")", "((cat",
    "content:cat", "^cat", "-cat", "+cat", 'cat"dog', "\\", "%", "_", ":", "{cat}", "[cat]", "😀😀",
    "\u200b", "ﷺ", "\uff23\uff41\uff54", "cat\x00dog", "a" * 5000, "cat " * 300, "name:x OR 1=1", "\ud7ff",
)  # fmt: skip
WORDS = ("coffee", "tea", "hiking", "cat", "咖啡", "猫", "secret", "plan")


def uid(name: str = "user") -> str:
    """A user id unique to this test run, so tests never see each other's data."""
    return f"{name}-{uuid.uuid4().hex[:10]}"


def vec(*weights: float) -> list[float]:
    """A DIM-dimensional unit vector from leading weights (the rest are zero)."""
    padded = [float(w) for w in weights] + [0.0] * (DIM - len(weights))
    norm = math.sqrt(sum(w * w for w in padded)) or 1.0
    return [w / norm for w in padded]


def basis(axis: int) -> list[float]:
    """The unit vector along one axis."""
    return vec(*([0.0] * axis + [1.0]))


def memory(user_id: str, content: str, **fields: object) -> MemoryNode:
    """A memory node with a fixed creation time unless given."""
    fields.setdefault("created_at", T0)
    fields.setdefault("updated_at", fields["created_at"])
    return MemoryNode(user_id=user_id, content=content, **fields)  # type: ignore[arg-type]


def message(user_id: str, content: str, **fields: object) -> Message:
    """A message with a fixed creation time unless given."""
    fields.setdefault("created_at", T0)
    return Message(user_id=user_id, content=content, **fields)  # type: ignore[arg-type]


def _ids_in_order(hits: list[ScoredMemory]) -> list[str]:
    return [h.memory.id for h in hits]


def _ids(items: Sequence[object]) -> set[str]:
    out: set[str] = set()
    for item in items:
        node: Any = getattr(item, "memory", None) or getattr(item, "message", None) or item
        out.add(node.id)
    return out


_user_names = st.one_of(
    st.sampled_from(HOSTILE_IDS),
    st.text(st.characters(blacklist_categories=("Cc", "Cs", "Cf", "Zl", "Zp")), min_size=1, max_size=8)
    .filter(str.strip),  # ids refuse control, invisible-format and separator characters
)


# Each backend's subclass runs these property tests from its own class (a "differing executor" by
# design), and the store fixture is per test, not per example.
_PER_BACKEND = [HealthCheck.function_scoped_fixture, HealthCheck.differing_executors]


class StoreContractSuite:
    """Contract tests every Store backend must pass; override the `store` fixture."""

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        raise NotImplementedError("override the `store` fixture in your StoreContractSuite subclass")

    # -- helpers -------------------------------------------------------------------------------------

    @staticmethod
    def search_ids(
        store: Store,
        user_id: str,
        filter: MemoryFilter | None = None,
        text: str | None = None,
        embedding: Sequence[float] | None = None,
        top_k: int = 50,
    ) -> set[str]:
        """Ids of memories a search finds."""
        query = SearchQuery(text=text, embedding=embedding, top_k=top_k)
        return _ids(store.search_memories(user_id, query, filter))

    def assert_memory_filter(self, store: Store, user: str, f: MemoryFilter, expected: set[str]) -> None:
        """A filter selects the same memories in list, text search and vector search."""
        assert {m.id for m in store.list_memories(user, f)} == expected
        assert self.search_ids(store, user, f, text="coffee") == expected
        assert self.search_ids(store, user, f, embedding=basis(0)) == expected

    # -- messages ------------------------------------------------------------------------------------

    def test_add_and_list_messages_oldest_first(self, store: Store) -> None:
        user = uid()
        tz8 = timezone(timedelta(hours=8))
        given = [
            message(user, "second", created_at=datetime(2024, 3, 2, 9, 0, 0, 123456, tzinfo=tz8)),
            message(user, "first", created_at=T0, role=Role.ASSISTANT, name="bot", session_id="s1"),
            message(user, "third", created_at=T0 + timedelta(days=3), metadata={"lang": "en", "n": [1, 2]}),
        ]
        store.add_messages(given)
        got = store.list_messages(user)
        assert [m.content for m in got] == ["first", "second", "third"]
        by_id = {m.id: m for m in got}
        for m in given:
            back = by_id[m.id]
            assert back == m
            assert back.created_at.tzinfo is not None and back.created_at == m.created_at
        assert store.list_messages(user, limit=2) == got[:2]

    def test_list_messages_newest_first(self, store: Store) -> None:
        user = uid()
        msgs = [message(user, f"m{i}", created_at=T0 + timedelta(minutes=i)) for i in range(5)]
        store.add_messages(msgs)
        store.mark_consolidated(user, [msgs[4].id], T0 + timedelta(days=1))
        newest = store.list_messages(user, newest_first=True)
        assert [m.id for m in newest] == [m.id for m in reversed(msgs)]
        latest_pending = store.list_messages(user, MessageFilter(pending=True), limit=2, newest_first=True)
        assert [m.id for m in latest_pending] == [msgs[3].id, msgs[2].id]
        assert [m.id for m in store.list_messages(user, limit=2)] == [msgs[0].id, msgs[1].id]

    def test_add_messages_is_idempotent_by_id(self, store: Store) -> None:
        user = uid()
        first = message(user, "hello")
        store.add_messages([first])
        store.add_messages([first, first.model_copy(update={"content": "changed"})])
        assert [m.content for m in store.list_messages(user)] == ["hello"]

    def test_pending_and_mark_consolidated(self, store: Store) -> None:
        user = uid()
        msgs = [message(user, f"m{i}", created_at=T0 + timedelta(minutes=i)) for i in range(3)]
        store.add_messages(msgs)
        assert store.stats(user).pending_messages == 3
        at = T0 + timedelta(days=1)
        assert store.mark_consolidated(user, [msgs[0].id, msgs[1].id], at) == 2
        assert store.mark_consolidated(user, [msgs[0].id, msgs[1].id], at) == 0
        pending = store.list_messages(user, MessageFilter(pending=True))
        assert [m.id for m in pending] == [msgs[2].id]
        done = store.list_messages(user, MessageFilter(pending=False))
        assert [m.consolidated_at for m in done] == [at, at]
        store.add_messages(msgs)  # a re-add must not reset consolidated_at
        assert len(store.list_messages(user, MessageFilter(pending=False))) == 2
        stats = store.stats(user)
        assert (stats.pending_messages, stats.total_messages) == (1, 3)

    def test_mark_consolidated_only_touches_own_messages(self, store: Store) -> None:
        alice, bob = uid("alice"), uid("bob")
        theirs = message(bob, "bob's")
        store.add_messages([theirs])
        assert store.mark_consolidated(alice, [theirs.id], T0) == 0
        assert store.list_messages(bob)[0].pending

    def test_message_filters(self, store: Store) -> None:
        user = uid()
        a = message(user, "coffee at home", session_id="s1", created_at=T0)
        b = message(user, "coffee at work", session_id="s2", agent_id="helper", created_at=T0 + timedelta(days=1))
        c = message(user, "coffee in town", session_id="s1", created_at=T0 + timedelta(days=2))
        store.add_messages([a, b, c])
        store.set_message_embeddings(user, {a.id: basis(0), b.id: vec(1, 0.1), c.id: vec(1, 0.2)})
        store.mark_consolidated(user, [c.id], T0 + timedelta(days=3))
        cases = [
            (MessageFilter(agent_id="helper"), {b.id}),
            (MessageFilter(session_id="s1"), {a.id, c.id}),
            (MessageFilter(pending=True), {a.id, b.id}),
            (MessageFilter(pending=False), {c.id}),
            (MessageFilter(time_range=TimeRange(start=T0, end=T0 + timedelta(days=1))), {a.id}),
            (MessageFilter(ids=[a.id, b.id, "missing"]), {a.id, b.id}),
            (MessageFilter(ids=[]), set()),
        ]
        for f, expected in cases:
            assert {m.id for m in store.list_messages(user, f)} == expected, f
            text_hits = store.search_messages(user, SearchQuery(text="coffee"), f)
            assert _ids(text_hits) == expected, f
            vector_hits = store.search_messages(user, SearchQuery(embedding=basis(0)), f)
            assert _ids(vector_hits) == expected, f

    def test_messages_searchable_by_text_at_once_and_by_vector_once_embedded(self, store: Store) -> None:
        user, other = uid(), uid("other")
        hit = message(user, "My flight to Lisbon leaves on Tuesday")
        miss = message(user, "I had pasta for dinner", created_at=T0 + timedelta(seconds=1))
        store.add_messages([hit, miss])
        found = store.search_messages(user, SearchQuery(text="Lisbon flight"))
        assert found[0].message.id == hit.id and found[0].text_rank == 1
        assert [m.id for m in store.messages_without_embedding(user)] == [hit.id, miss.id]
        store.set_message_embeddings(user, {hit.id: basis(1), miss.id: basis(2)})
        store.set_message_embeddings(other, {hit.id: basis(3)})  # not other's: ignored
        assert store.messages_without_embedding(user) == []
        best = store.search_messages(user, SearchQuery(embedding=vec(0, 1, 0.1)))[0]
        assert best.message.id == hit.id and best.vector_rank == 1
        assert best.vector_similarity == pytest.approx(0.995, abs=0.01)

    def test_a_turn_is_found_by_the_words_of_the_turn_it_replies_to(self, store: Store) -> None:
        user = uid()
        at = [T0 + timedelta(minutes=i) for i in range(4)]
        question = message(user, "Which instrument do you play?", name="Mel", session_id="s", created_at=at[0])
        answer = message(user, "The violin, since I was ten", name="Cara", session_id="s", created_at=at[1])
        reaction = message(user, "Wow, lovely!", name="Mel", session_id="s", created_at=at[2])
        elsewhere = message(user, "Nice weather", name="Cara", session_id="t", created_at=at[1])
        store.add_messages([answer, reaction, elsewhere])  # consecutive turns in one batch
        store.add_messages([question])  # an earlier turn arriving later becomes the next one's context

        def text_ranks(text: str) -> dict[str, int | None]:
            hits = store.search_messages(user, SearchQuery(text=text))  # BM25 alone: no vectors anywhere
            return {h.message.id: h.text_rank for h in hits}

        asked = text_ranks("instrument")
        assert asked[question.id] == 1 and asked[answer.id] == 2 and reaction.id not in asked
        told = text_ranks("violin")
        assert told[answer.id] == 1 and told[reaction.id] == 2  # its own words first, its context after
        assert elsewhere.id not in text_ranks("instrument violin")

    def test_users_with_pending(self, store: Store) -> None:
        alice, bob = uid("alice"), uid("bob")
        a1, a2 = message(alice, "hi"), message(alice, "hey", agent_id="helper")
        b1 = message(bob, "yo")
        store.add_messages([a1, a2, b1])
        store.mark_consolidated(bob, [b1.id], T0)
        pairs = set(store.users_with_pending())
        assert {(alice, "default"), (alice, "helper")} <= pairs
        assert not any(u == bob for u, _ in pairs)
        store.mark_consolidated(alice, [a1.id, a2.id], T0)
        assert not any(u == alice for u, _ in store.users_with_pending())

    def test_message_neighbours_in_conversation_order(self, store: Store) -> None:
        user, other = uid(), uid("other")
        at = [T0 + timedelta(minutes=i) for i in range(5)]
        turns = [message(user, f"s1 turn {i}", session_id="s1", created_at=at[i]) for i in range(5)]
        tied = [message(user, f"tie {c}", session_id="s2", created_at=T0, id=f"{c}-{user}") for c in "bac"]
        stray = [
            message(user, "s2 later", session_id="s2", created_at=at[1]),
            message(user, "no session", created_at=at[1]),
            message(user, "other agent", session_id="s1", agent_id="helper", created_at=at[1]),
            message(other, "other user", session_id="s1", created_at=at[1]),
        ]
        store.add_messages([*reversed(turns), *tied, *stray])

        def texts(got: dict[str, list[Message]], mid: str) -> list[str]:
            return [m.content for m in got[mid]]

        got = store.message_neighbours(user, [turns[2].id, turns[0].id, turns[4].id])
        assert texts(got, turns[2].id) == ["s1 turn 1", "s1 turn 3"]
        assert texts(got, turns[0].id) == ["s1 turn 1"]
        assert texts(got, turns[4].id) == ["s1 turn 3"]
        wide = store.message_neighbours(user, [turns[2].id], before=2, after=0)
        assert texts(wide, turns[2].id) == ["s1 turn 0", "s1 turn 1"]
        assert store.message_neighbours(user, [turns[2].id], before=0, after=0) == {turns[2].id: []}
        by_id = store.message_neighbours(user, [f"b-{user}"], before=5, after=5)  # equal times: id order
        assert texts(by_id, f"b-{user}") == ["tie a", "tie c", "s2 later"]
        assert texts(store.message_neighbours(user, [stray[1].id], 3, 3), stray[1].id) == []
        assert store.message_neighbours(other, [turns[2].id]) == {}  # another user's message
        assert store.message_neighbours(user, ["no-such-id", *HOSTILE_IDS]) == {}
        assert store.message_neighbours(user, []) == {}
        for bad in (-1, 51, 1.5, True):
            with pytest.raises(ValidationError):
                store.message_neighbours(user, [turns[0].id], before=bad)  # type: ignore[arg-type]

    # -- memories: writes and events -----------------------------------------------------------------

    def test_memory_round_trip(self, store: Store) -> None:
        user = uid()
        tz8 = timezone(timedelta(hours=8))
        node = memory(
            user,
            "Meeting with Ana about the budget",
            memory_type=MemoryType.INSIGHT,
            key="budget",
            embedding=vec(1, 2, 3),
            event_time=EventTime(
                start=datetime(2024, 5, 1, tzinfo=tz8),
                end=datetime(2024, 5, 2, tzinfo=tz8),
                granularity=Granularity.DAY,
            ),
            created_at=datetime(2024, 4, 1, 8, 30, 0, 654321, tzinfo=tz8),
            source_message_ids=["m1", "m2"],
            source_memory_ids=["x"],
            importance=0.8,
            metadata={"k": [1, "two", None], "nested": {"a": 1.5}},
        )
        store.write_memories([node])
        back = store.get_memory(user, node.id)
        assert back is not None
        assert back.model_dump(exclude={"embedding"}) == node.model_dump(exclude={"embedding"})
        assert back.embedding == pytest.approx(node.embedding, abs=1e-6)
        assert back.created_at.tzinfo is not None

    def test_identical_rewrite_records_nothing(self, store: Store) -> None:
        user = uid()
        nodes = [memory(user, "I like tea", embedding=basis(0)), memory(user, "I live in Oslo")]
        assert [e.kind for e in store.write_memories(nodes)] == [EventKind.ADD, EventKind.ADD]
        assert store.write_memories(nodes) == []
        later = [n.model_copy(update={"updated_at": T0 + timedelta(days=9)}) for n in nodes]
        assert store.write_memories(later) == []
        stored = [store.get_memory(user, n.id) for n in nodes]
        assert store.write_memories([s for s in stored if s is not None]) == []
        assert [len(store.history(user, n.id)) for n in nodes] == [1, 1]

    def test_events_for_add_update_expire_delete(self, store: Store) -> None:
        user, other = uid(), uid("other")
        node = memory(user, "I like tea")
        added = store.write_memories([node], operation="add_memory", run_id="r1")
        assert [e.kind for e in added] == [EventKind.ADD]
        assert added[0].before is None and added[0].after is not None
        assert added[0].after["content"] == "I like tea" and "embedding" not in added[0].after
        changed = node.model_copy(update={"content": "I like green tea", "updated_at": T0 + timedelta(1)})
        [update] = store.write_memories([changed], operation="consolidate_memory", run_id="r2")
        assert update.kind == EventKind.UPDATE
        assert update.before is not None and update.after is not None
        assert (update.before["content"], update.after["content"]) == ("I like tea", "I like green tea")
        expired = changed.model_copy(update={"status": MemoryStatus.EXPIRED, "superseded_by": "other-id"})
        assert [e.kind for e in store.write_memories([expired])] == [EventKind.EXPIRE]
        deleted = expired.model_copy(update={"status": MemoryStatus.DELETED})
        assert [e.kind for e in store.write_memories([deleted])] == [EventKind.DELETE]
        history = store.history(user, node.id)
        assert [e.kind for e in history] == [
            EventKind.ADD,
            EventKind.UPDATE,
            EventKind.EXPIRE,
            EventKind.DELETE,
        ]
        assert [(e.operation, e.run_id) for e in history[:2]] == [
            ("add_memory", "r1"),
            ("consolidate_memory", "r2"),
        ]
        assert history[0].id == added[0].id and history[1].id == update.id
        assert all(e.user_id == user and e.memory_id == node.id for e in history)
        assert all(e.created_at.tzinfo is not None for e in history)
        assert history[2].after is not None and history[2].after["superseded_by"] == "other-id"
        assert store.history(other, node.id) == []
        assert store.get_memory(user, node.id).status == MemoryStatus.DELETED  # type: ignore[union-attr]

    def test_cross_user_memory_id_collision_raises(self, store: Store) -> None:
        alice, bob = uid("alice"), uid("bob")
        mine = memory(alice, "alice's secret")
        store.write_memories([mine])
        stolen = mine.model_copy(update={"user_id": bob, "content": "bob's overwrite"})
        with pytest.raises(ValidationError):
            store.write_memories([memory(bob, "fine"), stolen])
        assert store.get_memory(alice, mine.id).content == "alice's secret"  # type: ignore[union-attr]
        assert store.get_memory(bob, mine.id) is None
        assert store.list_memories(bob) == []  # the whole batch was refused

    def test_cross_user_message_id_collision_raises(self, store: Store) -> None:
        alice, bob = uid("alice"), uid("bob")
        mine = message(alice, "alice's message")
        store.add_messages([mine])
        with pytest.raises(ValidationError):
            store.add_messages([mine.model_copy(update={"user_id": bob, "content": "bob's"})])
        assert [m.content for m in store.list_messages(alice)] == ["alice's message"]
        assert store.list_messages(bob) == []

    def test_list_memories_newest_first_with_limit_and_offset(self, store: Store) -> None:
        user = uid()
        nodes = [memory(user, f"memory {i}", created_at=T0 + timedelta(hours=i)) for i in range(5)]
        store.write_memories(nodes)
        newest_first = [n.id for n in reversed(nodes)]
        assert [m.id for m in store.list_memories(user)] == newest_first
        assert [m.id for m in store.list_memories(user, limit=2, offset=1)] == newest_first[1:3]

    def test_touch_memories(self, store: Store) -> None:
        alice, bob = uid("alice"), uid("bob")
        node = memory(alice, "I like tea")
        store.write_memories([node])
        store.touch_memories(alice, [node.id], T0 + timedelta(days=1))
        store.touch_memories(alice, [node.id], T0 + timedelta(days=2))
        store.touch_memories(bob, [node.id], T0 + timedelta(days=3))
        got = store.get_memory(alice, node.id)
        assert got is not None
        assert (got.access_count, got.last_accessed_at) == (2, T0 + timedelta(days=2))
        assert [e.kind for e in store.history(alice, node.id)] == [EventKind.ADD]

    # -- filters and time ----------------------------------------------------------------------------

    def test_memory_filters(self, store: Store) -> None:
        user = uid()
        o = memory(user, "coffee in the morning", embedding=vec(1, 0.1), created_at=T0)
        i = memory(
            user, "likes coffee", embedding=vec(1, 0.2), memory_type=MemoryType.INSIGHT, key="coffee",
            created_at=T0 + timedelta(days=1),
        )  # fmt: skip
        c = memory(
            user, "coffee order: flat white", embedding=vec(1, 0.3), memory_type=MemoryType.CUSTOMIZED,
            agent_id="helper", created_at=T0 + timedelta(days=2),
        )  # fmt: skip
        e = memory(user, "coffee was bad", embedding=vec(1, 0.4), status=MemoryStatus.EXPIRED)
        d = memory(user, "coffee grinder", embedding=vec(1, 0.5), status=MemoryStatus.DELETED)
        store.write_memories([o, i, c, e, d])
        cases = [
            (MemoryFilter(), {o.id, i.id, c.id}),
            (MemoryFilter(memory_types=[MemoryType.INSIGHT]), {i.id}),
            (MemoryFilter(memory_types=[]), set()),
            (MemoryFilter(statuses=[MemoryStatus.EXPIRED]), {e.id}),
            (MemoryFilter(statuses=ALL_STATUSES), {o.id, i.id, c.id, e.id, d.id}),
            (MemoryFilter(agent_id="helper"), {c.id}),
            (MemoryFilter(key="coffee"), {i.id}),
            (MemoryFilter(ids=[o.id, e.id, "missing"]), {o.id}),
            (MemoryFilter(created_after=T0 + timedelta(hours=12)), {i.id, c.id}),
            (MemoryFilter(created_after=T0), {i.id, c.id}),  # strict: created_at > created_after
            (MemoryFilter(created_before=T0 + timedelta(days=1)), {o.id}),  # strict: created_at < created_before
            (MemoryFilter(created_before=T0 + timedelta(days=1, microseconds=1)), {o.id, i.id}),
            (MemoryFilter(created_after=T0, created_before=T0 + timedelta(days=2)), {i.id}),
            (MemoryFilter(ids=[]), set()),
        ]
        for f, expected in cases:
            self.assert_memory_filter(store, user, f, expected)

    def test_reflected_filter_and_round_trip(self, store: Store) -> None:
        user = uid()
        done = memory(user, "coffee at noon", embedding=vec(1, 0.1), reflected_at=T0 + timedelta(microseconds=7))
        waiting = memory(user, "coffee at night", embedding=vec(1, 0.2))
        store.write_memories([done, waiting])
        got = store.get_memory(user, done.id)
        assert got is not None and got.reflected_at == done.reflected_at  # microseconds kept, like every time
        self.assert_memory_filter(store, user, MemoryFilter(reflected=True), {done.id})
        self.assert_memory_filter(store, user, MemoryFilter(reflected=False), {waiting.id})
        self.assert_memory_filter(store, user, MemoryFilter(reflected=None), {done.id, waiting.id})
        store.write_memories([waiting.model_copy(update={"reflected_at": T0})])  # marking is a recorded change
        self.assert_memory_filter(store, user, MemoryFilter(reflected=False), set())
        assert [e.kind for e in store.history(user, waiting.id)] == [EventKind.ADD, EventKind.UPDATE]

    def test_time_range_uses_event_time_else_created_at(self, store: Store) -> None:
        user = uid()
        day = memory(
            user, "coffee trip", embedding=basis(0), created_at=datetime(2024, 4, 10, tzinfo=UTC),
            event_time=EventTime(start=T0, end=T0 + timedelta(days=1), granularity=Granularity.DAY),
        )  # fmt: skip
        noon = datetime(2024, 3, 3, 12, tzinfo=UTC)
        instant = memory(
            user, "coffee call", embedding=basis(0), created_at=datetime(2024, 4, 10, tzinfo=UTC),
            event_time=EventTime(start=noon, end=noon, granularity=Granularity.INSTANT),
        )  # fmt: skip
        plain = memory(user, "coffee chat", embedding=basis(0), created_at=datetime(2024, 3, 10, 12, tzinfo=UTC))
        store.write_memories([day, instant, plain])
        hour = timedelta(hours=1)
        cases = [
            (T0, T0 + timedelta(days=4), {day.id, instant.id}),
            (datetime(2024, 3, 10, tzinfo=UTC), datetime(2024, 3, 11, tzinfo=UTC), {plain.id}),
            (datetime(2024, 4, 10, tzinfo=UTC), datetime(2024, 4, 11, tzinfo=UTC), set()),
            (T0 + timedelta(hours=23), T0 + timedelta(days=1), {day.id}),
            (T0 + timedelta(days=1), T0 + timedelta(days=2), set()),  # [start, end) excludes the end
            (noon, noon + hour, {instant.id}),
            (noon - hour, noon, set()),
            (noon, noon, {instant.id}),
        ]
        for start, end, expected in cases:
            f = MemoryFilter(time_range=TimeRange(start=start, end=end))
            self.assert_memory_filter(store, user, f, expected)

    # -- search --------------------------------------------------------------------------------------

    def _ranking_corpus(self, store: Store, user: str) -> dict[str, MemoryNode]:
        nodes = {
            "keyword": memory(user, "My cat is called Whiskers", embedding=basis(1)),
            "vector": memory(user, "I enjoy mountain trails on weekends", embedding=basis(0)),
            "both": memory(user, "I love hiking in the Alps", embedding=basis(5)),
            "u1": memory(user, "The invoice is due on Friday", embedding=basis(2)),
            "u2": memory(user, "Paris is the capital of France", embedding=basis(3)),
            "u3": memory(user, "Bought new running shoes", embedding=basis(4)),
        }
        store.write_memories(list(nodes.values()))
        return nodes

    def test_hybrid_ranking_puts_keyword_and_vector_matches_first(self, store: Store) -> None:
        user = uid()
        nodes = self._ranking_corpus(store, user)
        hits = store.search_memories(user, SearchQuery(text="whiskers", embedding=vec(1, 0, 0, 0, 0, 0, 0, 0.2)))
        assert {h.memory.id for h in hits[:2]} == {nodes["keyword"].id, nodes["vector"].id}
        assert hits[0].score >= hits[1].score >= hits[-1].score
        assert all(h.memory.embedding is not None for h in hits)  # hits carry their vectors by default
        lean = SearchQuery(text="whiskers", embedding=vec(1, 0, 0, 0, 0, 0, 0, 0.2), with_vectors=False)
        lean_hits = store.search_memories(user, lean)
        assert [h.memory.id for h in lean_hits] == [h.memory.id for h in hits]  # same hits, same order
        assert [h.memory.content for h in lean_hits] == [h.memory.content for h in hits]
        assert all(h.memory.embedding is None for h in lean_hits)  # ... without the vectors read

    def test_text_only_and_vector_only_queries(self, store: Store) -> None:
        user = uid()
        nodes = self._ranking_corpus(store, user)
        text_hits = store.search_memories(user, SearchQuery(text="whiskers"))
        assert text_hits[0].memory.id == nodes["keyword"].id
        assert (text_hits[0].text_rank, text_hits[0].vector_rank) == (1, None)
        vector_hits = store.search_memories(user, SearchQuery(embedding=vec(0.1, 0, 0, 0, 0, 1)))
        assert vector_hits[0].memory.id == nodes["both"].id
        assert (vector_hits[0].vector_rank, vector_hits[0].text_rank) == (1, None)
        assert len(store.search_memories(user, SearchQuery(embedding=basis(0), top_k=2))) == 2

    def test_fused_hit_carries_both_ranks_and_similarity(self, store: Store) -> None:
        user = uid()
        nodes = self._ranking_corpus(store, user)
        best = store.search_memories(user, SearchQuery(text="hiking Alps", embedding=basis(5)))[0]
        assert best.memory.id == nodes["both"].id
        assert (best.vector_rank, best.text_rank) == (1, 1)
        assert best.vector_similarity == pytest.approx(1.0, abs=1e-4)
        assert best.score == pytest.approx(2 / 61)

    def test_a_text_ranking_run_ahead_gives_the_hybrid_search_its_own_result(self, store: Store) -> None:
        user = uid()
        nodes = self._ranking_corpus(store, user)
        for text, vector, f in [
            ("hiking Alps whiskers", vec(1, 0, 0, 0, 0, 0.3), MemoryFilter()),
            ("invoice Friday", basis(2), MemoryFilter(memory_types=[MemoryType.OBSERVATION])),
            ("nothing matches this", basis(4), MemoryFilter()),
        ]:
            ranking = _ids_in_order(store.search_memories(user, SearchQuery(text=text), f))  # BM25 alone
            fetched = store.memory_text_ranking(user, SearchQuery(text=text, embedding=vector), f)
            assert fetched is None or fetched == ranking  # None: the store runs BM25 in the search itself
            inline = store.search_memories(user, SearchQuery(text=text, embedding=vector), f)
            ahead = store.search_memories(user, SearchQuery(text=text, embedding=vector, text_ranking=ranking), f)
            assert [(h.memory.id, h.text_rank, h.vector_rank) for h in ahead] == [
                (h.memory.id, h.text_rank, h.vector_rank) for h in inline
            ]
            assert [h.score for h in ahead] == pytest.approx([h.score for h in inline])
        text_only = store.search_memories(user, SearchQuery(text_ranking=[nodes["u2"].id, nodes["u1"].id]))
        assert [h.memory.id for h in text_only] == [nodes["u2"].id, nodes["u1"].id]  # the ranking's order
        assert store.memory_text_ranking(user, SearchQuery(text="  ")) in ([], None)
        assert store.memory_text_ranking(uid("other"), SearchQuery(text="whiskers")) in ([], None)

    def test_a_message_text_ranking_run_ahead_gives_the_hybrid_search_its_own_result(self, store: Store) -> None:
        user = uid()
        turns = [
            message(user, "My flight to Lisbon leaves on Tuesday"),
            message(user, "I had pasta for dinner", created_at=T0 + timedelta(seconds=1)),
            message(user, "Lisbon has great pasta", created_at=T0 + timedelta(seconds=2), agent_id="helper"),
        ]
        store.add_messages(turns)
        store.set_message_embeddings(user, {m.id: basis(n) for n, m in enumerate(turns)})
        for f in (MessageFilter(), MessageFilter(agent_id="helper")):
            ranking = [h.message.id for h in store.search_messages(user, SearchQuery(text="Lisbon pasta"), f)]
            assert store.message_text_ranking(user, SearchQuery(text="Lisbon pasta"), f) in (ranking, None)
            query = SearchQuery(text="Lisbon pasta", embedding=vec(0, 1, 0.2))
            inline = store.search_messages(user, query, f)
            ahead = store.search_messages(user, SearchQuery(text="Lisbon pasta", embedding=vec(0, 1, 0.2),
                                                            text_ranking=ranking), f)  # fmt: skip
            assert [(h.message.id, h.text_rank, h.vector_rank) for h in ahead] == [
                (h.message.id, h.text_rank, h.vector_rank) for h in inline
            ]

    def test_no_query_and_blank_text_find_nothing_by_text(self, store: Store) -> None:
        user = uid()
        self._ranking_corpus(store, user)
        assert store.search_memories(user, SearchQuery()) == []
        assert store.search_memories(user, SearchQuery(text="   \n\t")) == []
        blank_text = store.search_memories(user, SearchQuery(text=" ", embedding=basis(0)))
        assert blank_text and all(h.text_rank is None for h in blank_text)

    def test_chinese_text_search(self, store: Store) -> None:
        user = uid()
        duck = memory(user, "我上周在北京吃了烤鸭\uff0c味道非常好")
        coffee = memory(user, "我每天早上都喝一杯咖啡")
        trip = memory(user, "明天要去上海出差三天")
        store.write_memories([duck, coffee, trip])
        for query, expected in [
            ("烤鸭", duck),
            ("北京", duck),
            ("咖啡", coffee),
            ("上海", trip),
            ("烤鸭好吃吗", duck),
        ]:
            hits = store.search_memories(user, SearchQuery(text=query))
            assert hits and hits[0].memory.id == expected.id, query
        english = memory(user, "Notes: 用户喜欢 jazz music")
        store.write_memories([english])
        assert store.search_memories(user, SearchQuery(text="jazz"))[0].memory.id == english.id
        assert store.search_memories(user, SearchQuery(text="喜欢"))[0].memory.id == english.id

    def test_fts_special_query_text_is_plain_text(self, store: Store) -> None:
        user = uid()
        nodes = self._ranking_corpus(store, user)
        for text in HOSTILE_QUERIES:
            for hit in store.search_memories(user, SearchQuery(text=text)):
                assert hit.memory.user_id == user
            store.search_messages(user, SearchQuery(text=text))
        for text in ["NOT whiskers", "whiskers AND zzzunknown", '"whiskers', "whiskers)", "whiskers*"]:
            hits = store.search_memories(user, SearchQuery(text=text))
            assert hits and hits[0].memory.id == nodes["keyword"].id, text

    @settings(max_examples=40, deadline=None, suppress_health_check=_PER_BACKEND)
    @given(text=st.text(max_size=40))
    def test_any_query_text_is_safe(self, store: Store, text: str) -> None:
        user = uid()
        store.write_memories([memory(user, 'cat and coffee 猫 咖啡 (NEAR) "quoted" *')])
        try:
            for hit in store.search_memories(user, SearchQuery(text=text, embedding=basis(0))):
                assert hit.memory.user_id == user
        finally:
            store.delete_user(user)

    # -- users and scoping ---------------------------------------------------------------------------

    def test_get_memory_of_another_user_is_none(self, store: Store) -> None:
        alice, bob = uid("alice"), uid("bob")
        node = memory(alice, "alice's")
        store.write_memories([node])
        assert store.get_memory(bob, node.id) is None
        assert store.get_memory(alice, "no-such-id") is None

    def test_hostile_user_ids_are_plain_strings(self, store: Store) -> None:
        tag = uid("")
        users = [h + tag for h in HOSTILE_IDS]
        for n, user in enumerate(users):
            store.add_messages([message(user, f"secret number {n}")])
            store.write_memories([memory(user, f"secret number {n}", embedding=basis(n % DIM))])
        for n, user in enumerate(users):
            assert [m.content for m in store.list_messages(user)] == [f"secret number {n}"]
            assert [m.content for m in store.list_memories(user)] == [f"secret number {n}"]
            found = store.search_memories(user, SearchQuery(text="secret number", embedding=basis(0)))
            assert [h.memory.user_id for h in found] == [user]
            assert [h.message.user_id for h in store.search_messages(user, SearchQuery(text="secret"))] == [user]
            assert store.stats(user).total_messages == 1
        for n, user in enumerate(users):
            assert store.delete_user(user) >= 2
            for later in users[n + 1 :]:
                assert len(store.list_memories(later)) == 1

    def test_delete_user_cascades_and_spares_others(self, store: Store) -> None:
        alice, bob = uid("alice"), uid("bob")
        for user in (alice, bob):
            store.add_messages([message(user, "coffee talk"), message(user, "tea talk")])
            node = memory(user, "likes coffee", embedding=basis(0))
            store.write_memories([node])
            store.write_memories([node.model_copy(update={"content": "loves coffee"})])
        alice_memory = store.list_memories(alice)[0]
        bob_before = (store.list_messages(bob), store.list_memories(bob), store.stats(bob))
        assert store.delete_user(alice) >= 4  # 2 messages, 1 memory, its events
        assert store.list_messages(alice) == []
        assert store.list_memories(alice, MemoryFilter(statuses=ALL_STATUSES)) == []
        assert store.history(alice, alice_memory.id) == []
        assert store.search_memories(alice, SearchQuery(text="coffee", embedding=basis(0))) == []
        assert store.search_messages(alice, SearchQuery(text="coffee")) == []
        stats = store.stats(alice)
        assert (stats.total_messages, stats.pending_messages, stats.memories) == (0, 0, {})
        assert not any(u == alice for u, _ in store.users_with_pending())
        assert (store.list_messages(bob), store.list_memories(bob), store.stats(bob)) == bob_before
        bob_memory = store.list_memories(bob)[0]
        assert len(store.history(bob, bob_memory.id)) == 2
        assert store.delete_user(alice) == 0

    def test_stats(self, store: Store) -> None:
        user = uid()
        store.add_messages([message(user, "a"), message(user, "b")])
        store.write_memories(
            [
                memory(user, "o1"),
                memory(user, "o2"),
                memory(user, "i1", memory_type=MemoryType.INSIGHT),
                memory(user, "x1", status=MemoryStatus.EXPIRED),
            ]
        )
        stats = store.stats(user)
        assert (stats.total_messages, stats.pending_messages) == (2, 2)
        assert stats.memories == {"active": {"observation": 2, "insight": 1}, "expired": {"observation": 1}}

    @settings(max_examples=15, deadline=None, suppress_health_check=_PER_BACKEND)
    @given(
        people=st.lists(
            st.tuples(_user_names, st.lists(st.sampled_from(WORDS), min_size=1, max_size=4), st.integers(0, DIM - 1)),
            min_size=2,
            max_size=4,
            unique_by=lambda p: p[0],
        )
    )
    def test_no_call_returns_another_users_data(self, store: Store, people: list[tuple[str, list[str], int]]) -> None:
        tag = uid("")
        owned: dict[str, tuple[set[str], set[str]]] = {}
        try:
            for name, words, axis in people:
                user = name + tag
                text = " ".join(words)
                msgs = [message(user, text), message(user, f"{text} again")]
                nodes = [
                    memory(user, text, embedding=basis(axis)),
                    memory(user, text, status=MemoryStatus.EXPIRED),
                ]
                store.add_messages(msgs)
                store.set_message_embeddings(user, {m.id: basis(axis) for m in msgs})
                store.write_memories(nodes)
                owned[user] = ({m.id for m in msgs}, {n.id for n in nodes})
            everyone = " ".join(WORDS)
            for user, (msg_ids, mem_ids) in owned.items():
                others_msgs = set().union(*(m for u, (m, _) in owned.items() if u != user))
                others_mems = set().union(*(n for u, (_, n) in owned.items() if u != user))
                every = MemoryFilter(statuses=ALL_STATUSES)
                assert {m.id for m in store.list_messages(user)} == msg_ids
                assert {m.id for m in store.list_memories(user, every)} == mem_ids
                for axis in range(0, DIM, 3):
                    query = SearchQuery(text=everyone, embedding=basis(axis), top_k=100)
                    assert _ids(store.search_memories(user, query, every)) <= mem_ids
                    assert _ids(store.search_messages(user, query)) <= msg_ids
                for other_id in others_mems:
                    assert store.get_memory(user, other_id) is None
                    assert store.history(user, other_id) == []
                assert store.mark_consolidated(user, list(others_msgs), T0) == 0
                store.touch_memories(user, list(others_mems), T0)
                stats = store.stats(user)
                assert (stats.total_messages, stats.pending_messages) == (2, 2)
                assert sum(sum(by_type.values()) for by_type in stats.memories.values()) == 2
            for user in owned:
                assert all(m.access_count == 0 for m in store.list_memories(user, MemoryFilter(statuses=ALL_STATUSES)))
        finally:
            for user in owned:
                store.delete_user(user)

    # -- identity and per-user leases ----------------------------------------------------------------

    def test_store_id_is_stable(self, store: Store) -> None:
        first = store.store_id()
        assert isinstance(first, str) and first
        assert store.store_id() == first

    def test_lease_is_exclusive_and_its_token_grows_with_each_holder(self, store: Store) -> None:
        user = uid()
        first = store.acquire_lease(user, "a", 30)
        assert first is not None
        assert store.acquire_lease(user, "b", 30) is None  # live and someone else's
        assert store.acquire_lease(user, "a", 30) == first  # re-entrant for the same holder
        assert store.renew_lease(user, first, 30)
        store.release_lease(user, first)
        second = store.acquire_lease(user, "b", 30)
        assert second is not None and second > first
        assert not store.renew_lease(user, first, 30)  # the old holder cannot revive it
        store.release_lease(user, first)  # nor release the new holder's
        assert store.acquire_lease(user, "c", 30) is None
        assert store.acquire_lease(uid(), "c", 30) is not None  # per user

    def test_expired_lease_goes_to_the_next_holder(self, store: Store) -> None:
        user = uid()
        first = store.acquire_lease(user, "a", 0.05)
        time.sleep(0.2)
        second = store.acquire_lease(user, "b", 30)
        assert first is not None and second is not None and second > first

    def test_fenced_writes_commit_only_under_the_current_token(self, store: Store) -> None:
        user = uid()
        msgs = [message(user, "one"), message(user, "two")]
        store.add_messages(msgs)
        old = store.acquire_lease(user, "paused-job", 30)
        assert old is not None
        store.release_lease(user, old)  # as if it expired while the job was paused
        new = store.acquire_lease(user, "next-job", 30)
        assert new is not None
        stale, current = Fence(user, old), Fence(user, new)
        with pytest.raises(LeaseLost):
            store.write_memories([memory(user, "from the stale job")], fence=stale)
        with pytest.raises(LeaseLost):
            store.mark_consolidated(user, [msgs[0].id], T0, fence=stale)
        assert store.list_memories(user) == []
        assert len(store.list_messages(user, MessageFilter(pending=True))) == 2
        store.write_memories([memory(user, "from the current job")], fence=current)
        assert store.mark_consolidated(user, [msgs[0].id], T0, fence=current) == 1
        assert [m.content for m in store.list_memories(user)] == ["from the current job"]
        with pytest.raises(LeaseLost):  # a batch's memories and marks are refused together
            store.write_memories([memory(user, "stale batch")], fence=stale,
                                 consolidates=ConsolidationMark(user, [msgs[1].id], T0))
        assert len(store.list_messages(user, MessageFilter(pending=True))) == 1
        store.write_memories([memory(user, "current batch")], fence=current,
                             consolidates=ConsolidationMark(user, [msgs[1].id], T0))
        assert store.list_messages(user, MessageFilter(pending=True)) == []
        assert len(store.list_memories(user)) == 2
        with pytest.raises(LeaseLost):  # no lease at all for this user
            store.write_memories([memory(other := uid(), "x")], fence=Fence(other, 1))

    # -- embedding space -----------------------------------------------------------------------------

    def test_embedding_model_mismatch(self, store: Store) -> None:
        store.check_embedding_model("model-a", 8)
        store.check_embedding_model("model-a", 8)
        for model, dim in [("model-b", 8), ("model-a", 16)]:
            with pytest.raises(EmbeddingMismatch) as info:
                store.check_embedding_model(model, dim)
            text = str(info.value)
            assert "model-a" in text and model in text  # both named; the fix is backend-specific
            assert "8" in text and str(dim) in text
