"""retrieve_memory, the real operation, on a real SQLite file with the real local embedder."""
# ruff: noqa: RUF001  (Chinese punctuation and odd Unicode are what these tests are about)

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from memscope.engine import Context, OperationCatalog, OperationRunner, Resources, RunResult
from memscope.errors import OperationRunError, ValidationError
from memscope.llm.base import UsageMeter
from memscope.llm.local_embedding import LocalEmbedder
from memscope.models import EventTime, Granularity, MemoryNode, MemoryStatus, MemoryType, Message, Role, TimeRange
from memscope.retrieval import MAX_QUERY_CHARS, RetrievedItem, merge_time_hits, message_embedding_text
from memscope.stores.base import MemoryFilter, MessageFilter, ScoredMessage, SearchQuery
from memscope.stores.sqlite import SqliteStore
from memscope.workers.embed_messages import EmbedMessages
from memscope.workers.fuse_scores import FuseScores

pytestmark = pytest.mark.integration

NOW = datetime(2024, 5, 15, 12, 0, tzinfo=UTC)  # a Wednesday; "last Friday" is 2024-05-10
MONTH_AGO = NOW - timedelta(days=30)


@pytest.fixture(scope="session")
def local_embedder() -> LocalEmbedder:
    embedder = LocalEmbedder()
    embedder.warm_up()
    return embedder


@pytest.fixture(scope="session")
def catalog() -> OperationCatalog:
    return OperationCatalog()


@pytest.fixture
def store(tmp_path) -> Iterator[SqliteStore]:
    with SqliteStore(tmp_path / "m.db") as s:
        yield s


@pytest.fixture
def resources(store, local_embedder) -> Resources:
    return Resources(store=store, embedder=local_embedder, meter=UsageMeter(), clock=lambda: NOW)


def retrieve(resources: Resources, catalog: OperationCatalog, user: str, query: str, **inputs) -> RunResult:
    spec = catalog.get("retrieve_memory")
    return OperationRunner(resources).run(spec, {"user_id": user, "query": query, **inputs})


def remember(resources: Resources, user: str, content: str, **fields) -> MemoryNode:
    """Write one memory with its embedding, straight into the store."""
    fields.setdefault("created_at", MONTH_AGO)
    fields.setdefault("updated_at", fields["created_at"])
    vector = resources.embedder.embed([content])[0]
    node = MemoryNode(user_id=user, content=content, embedding=[float(x) for x in vector], **fields)
    resources.store.write_memories([node], operation="test")
    return node


def day(y: int, m: int, d: int) -> EventTime:
    start = datetime(y, m, d, tzinfo=UTC)
    return EventTime(start=start, end=start + timedelta(days=1), granularity=Granularity.DAY)


def ids(result: RunResult) -> list[str]:
    return [item.id for item in result["results"]]


def test_finds_the_right_memory_among_distractors(resources, catalog):
    target = remember(resources, "u1", "Tom works at Apple as a software engineer")
    for text in (
        "Tom likes hiking in the Alps",
        "Tom's sister lives in Paris",
        "Tom is allergic to peanuts",
        "Tom plays the guitar on weekends",
        "Tom's favourite colour is green",
    ):
        remember(resources, "u1", text)
    result = retrieve(resources, catalog, "u1", "Which company is Tom employed by?")
    first = result["results"][0]
    assert isinstance(first, RetrievedItem)
    assert (first.id, first.kind, first.memory_type) == (target.id, "memory", "observation")
    assert first.score > result["results"][1].score
    assert result.report.llm_calls == 0


def test_chinese_memory_found_by_chinese_query(resources, catalog):
    target = remember(resources, "u1", "我的猫叫小白，今年三岁了")
    remember(resources, "u1", "我在北京的一家银行工作")
    remember(resources, "u1", "我喜欢吃四川火锅")
    result = retrieve(resources, catalog, "u1", "我的猫叫什么名字？")
    assert ids(result)[0] == target.id


def test_query_time_boosts_the_item_from_that_date(resources, catalog):
    friday = remember(resources, "u1", "I went hiking in the mountains", event_time=day(2024, 5, 10))
    april = remember(resources, "u1", "I went hiking in the forest", event_time=day(2024, 4, 12))
    result = retrieve(resources, catalog, "u1", "What did I do last Friday?")
    assert result["query_time"].start == datetime(2024, 5, 10, tzinfo=UTC)
    assert ids(result)[:2] == [friday.id, april.id]
    assert result["results"][0].explain["time"] == pytest.approx(0.5)
    assert result["results"][1].explain["time"] == 0.0
    # the same two memories, asked about the other date: the order flips, so it is the time that decides
    result = retrieve(resources, catalog, "u1", "What did I do on April 12?")
    assert ids(result)[:2] == [april.id, friday.id]


def test_chinese_query_time(resources, catalog):
    friday = remember(resources, "u1", "我去爬山了", event_time=day(2024, 5, 10))
    other = remember(resources, "u1", "我去爬山了，很累", event_time=day(2024, 3, 1))
    result = retrieve(resources, catalog, "u1", "我上周五做了什么？", timezone="Asia/Shanghai")
    assert result["query_time"] is not None
    assert ids(result)[:2] == [friday.id, other.id]


def test_time_filtered_search_brings_that_period_into_the_candidates(resources, catalog):
    # 60 memories closer to the query than the dated one: the open search (50 candidates) misses it
    texts = [f"What did I do last Friday? Note {i}" for i in range(60)]
    vectors = resources.embedder.embed(texts)
    resources.store.write_memories(
        [
            MemoryNode(user_id="u1", content=t, embedding=[float(x) for x in v], created_at=MONTH_AGO,
                       updated_at=MONTH_AGO)
            for t, v in zip(texts, vectors, strict=True)
        ]
    )  # fmt: skip
    visit = remember(resources, "u1", "Visited grandma in the countryside", event_time=day(2024, 5, 10))
    result = retrieve(resources, catalog, "u1", "What did I do last Friday?", top_k=5)
    hits = {h.memory.id: h for h in result.context["memory_hits"]}
    assert visit.id in hits
    assert hits[visit.id].score <= min(h.score for i, h in hits.items() if i != visit.id)  # no inflated rank
    untimed = retrieve(resources, catalog, "u1", "What did I do that day?", top_k=5)
    assert untimed["query_time"] is None
    assert visit.id not in {h.memory.id for h in untimed.context["memory_hits"]}


def test_read_your_writes_pending_message_without_embedding(resources, catalog):
    said = Message(user_id="u1", content="I just adopted a puppy named Biscuit", created_at=NOW - timedelta(minutes=1))
    resources.store.add_messages([said])
    result = retrieve(resources, catalog, "u1", "What is my puppy called? Biscuit?")
    assert [m.id for m in result["pending_messages"]] == [said.id]
    hit = next(item for item in result["results"] if item.id == said.id)
    assert (hit.kind, hit.memory_type, hit.role) == ("message", "message", "user")
    assert result["context_text"].count("adopted a puppy named Biscuit") == 1  # not repeated as pending


def test_the_users_own_words_rank_above_the_assistants(resources, catalog):
    asked = Message(
        user_id="u1",
        role="assistant",
        content="What do you enjoy doing outside work?",
        created_at=NOW - timedelta(minutes=3),
    )
    told = Message(user_id="u1", content="I go rock climbing most weekends", created_at=NOW - timedelta(minutes=2))
    resources.store.add_messages([asked, told])
    resources.store.set_message_embeddings(
        "u1",
        dict(zip([asked.id, told.id], resources.embedder.embed([asked.content, told.content]).tolist(), strict=True)),
    )
    result = retrieve(resources, catalog, "u1", "What do I enjoy doing for fun?")
    assert ids(result)[0] == told.id
    first_assistant = next(i for i in result["results"] if i.id == asked.id)
    assert first_assistant.explain["relevance"] <= 0.5


def test_pending_messages_are_the_most_recent_and_oldest_first(resources, catalog):
    messages = [
        Message(user_id="u1", content=f"message {i}", created_at=NOW - timedelta(days=40) + timedelta(hours=i))
        for i in range(25)
    ]
    resources.store.add_messages(messages)
    result = retrieve(resources, catalog, "u1", "hello")
    assert [m.id for m in result["pending_messages"]] == [m.id for m in messages[5:]]


def test_consolidated_message_is_deduplicated_into_its_memory(resources, catalog):
    said = Message(user_id="u1", content="My daughter Mia starts school in September", created_at=MONTH_AGO)
    resources.store.add_messages([said])
    resources.store.mark_consolidated("u1", [said.id], MONTH_AGO)
    memory = remember(resources, "u1", "User's daughter Mia starts school in September",
                      source_message_ids=[said.id])  # fmt: skip
    result = retrieve(resources, catalog, "u1", "When does Mia start school?")
    assert said.id not in ids(result)
    [item] = [i for i in result["results"] if i.id == memory.id]
    assert said.id in item.source_message_ids


def test_other_users_memories_never_returned(resources, catalog):
    other = remember(resources, "u2", "Alice works at Google in Zurich")
    resources.store.add_messages([Message(user_id="u2", content="I work at Google in Zurich")])
    mine = remember(resources, "u1", "I like tea")
    result = retrieve(resources, catalog, "u1", "Alice works at Google in Zurich")
    assert other.id not in ids(result)
    assert all(i.id == mine.id for i in result["results"])
    assert result["pending_messages"] == []


def test_memory_types_filter(resources, catalog):
    insight = remember(resources, "u1", "Tom loves outdoor sports", memory_type=MemoryType.INSIGHT)
    remember(resources, "u1", "Tom went skiing in January")
    resources.store.add_messages([Message(user_id="u1", content="I love outdoor sports", created_at=MONTH_AGO)])
    result = retrieve(resources, catalog, "u1", "outdoor sports", memory_types=["insight"])
    assert ids(result) == [insight.id]
    only_messages = retrieve(resources, catalog, "u1", "outdoor sports", memory_types=["message"])
    assert [i.kind for i in only_messages["results"]] == ["message"]
    with pytest.raises(OperationRunError) as info:
        retrieve(resources, catalog, "u1", "outdoor sports", memory_types=["insihgt"])
    assert isinstance(info.value.__cause__, ValidationError)
    assert "allowed: observation, insight" in str(info.value.__cause__)


def test_top_k_respected_and_access_counted(resources, catalog, store):
    nodes = [remember(resources, "u1", f"Tom visited city number {i} on his trip") for i in range(12)]
    result = retrieve(resources, catalog, "u1", "Which cities did Tom visit?", top_k=3)
    assert len(result["results"]) == 3
    returned = set(ids(result))
    for node in nodes:
        stored = store.get_memory("u1", node.id)
        assert stored.access_count == (1 if node.id in returned else 0)
        assert stored.last_accessed_at == (NOW if node.id in returned else None)
    assert store.history("u1", nodes[0].id)[-1].kind == "add"  # touching records no event


@pytest.mark.parametrize("top_k", [0, -1, "3", 10_000])
def test_bad_top_k_is_a_validation_error(resources, catalog, top_k):
    remember(resources, "u1", "Tom likes tea")
    with pytest.raises(OperationRunError) as info:
        retrieve(resources, catalog, "u1", "tea", top_k=top_k)
    assert isinstance(info.value.__cause__, ValidationError)
    assert "top_k" in str(info.value)


def test_expired_and_deleted_memories_never_returned(resources, catalog):
    live = remember(resources, "u1", "Tom lives in Berlin")
    remember(resources, "u1", "Tom lives in Munich", status=MemoryStatus.EXPIRED, superseded_by=live.id)
    remember(resources, "u1", "Tom lives in Hamburg", status=MemoryStatus.DELETED)
    result = retrieve(resources, catalog, "u1", "Tom lives in Munich Hamburg")
    assert ids(result) == [live.id]


@pytest.mark.parametrize(
    "query",
    ["", "   \n\t ", "x" * 100_000, "🙂\u200b\x00 ̸ ﷽ 𝔘𝔫𝔦", '"*) OR NEAR( AND -', "word " * 20_000, "中" * 50_000],
    ids=["empty", "blank", "huge", "odd", "fts-syntax", "many-words", "huge-cjk"],
)
def test_odd_queries_never_crash(resources, catalog, query):
    empty = retrieve(resources, catalog, "nobody", query)
    assert (empty["results"], empty["pending_messages"], empty["context_text"]) == ([], [], "")
    remember(resources, "u1", "Tom works at Apple")
    result = retrieve(resources, catalog, "u1", query)
    assert len(result["results"]) <= 10
    if not query.strip():
        assert result["results"] == [] and result.context["query_vector"] is None


def test_huge_query_is_truncated_for_search(resources, catalog):
    target = remember(resources, "u1", "Tom works at Apple")
    result = retrieve(resources, catalog, "u1", "Where does Tom work? " + "filler " * 20_000)
    assert len(result.context["query_vector"]) == resources.embedder.dim
    assert ids(result)[0] == target.id
    assert MAX_QUERY_CHARS <= 10_000


def test_format_context_en(resources, catalog, store):
    remember(resources, "u1", "Tom works at Apple", event_time=day(2023, 5, 8))
    remember(
        resources,
        "u1",
        "Tom moved to Cupertino",
        event_time=EventTime(
            start=datetime(2023, 6, 1, tzinfo=UTC), end=datetime(2023, 7, 1, tzinfo=UTC), granularity=Granularity.MONTH
        ),
    )
    store.add_messages([Message(user_id="u1", role=Role.USER, content="Weather is nice today",
                                created_at=datetime(2024, 5, 15, 9, 30, tzinfo=UTC))])  # fmt: skip
    result = retrieve(resources, catalog, "u1", "Where does Tom work at Apple?", memory_types=["observation"])
    lines = result["context_text"].splitlines()
    assert lines[0] == "Relevant memories:"
    assert "- [2023-05-08] Tom works at Apple (observation)" in lines
    assert "- [2023-06] Tom moved to Cupertino (observation)" in lines
    assert lines[-2:] == ["Recent messages not yet consolidated:", "- [2024-05-15 09:30] user: Weather is nice today"]


def test_format_context_zh_in_the_users_zone(store, local_embedder, catalog):
    resources = Resources(store=store, embedder=local_embedder, language="zh", clock=lambda: NOW)
    remember(resources, "u1", "我在苹果公司工作", created_at=datetime(2023, 5, 8, 20, tzinfo=UTC))
    store.add_messages([Message(user_id="u1", content="今天天气很好", created_at=datetime(2024, 5, 15, 1, tzinfo=UTC))])
    result = retrieve(resources, catalog, "u1", "我在哪里工作？", timezone="Asia/Shanghai")
    lines = result["context_text"].splitlines()
    assert lines[0] == "相关记忆："
    assert "- [2023-05-09] 我在苹果公司工作 (observation)" in lines  # 20:00 UTC is the next day in Shanghai
    assert lines[-2:] == ["尚未整理的最近消息：", "- [2024-05-15 09:00] user: 今天天气很好"]


def test_works_without_an_embedder(store, catalog):
    resources = Resources(store=store, clock=lambda: NOW)
    node = MemoryNode(user_id="u1", content="Tom works at Apple", created_at=MONTH_AGO, updated_at=MONTH_AGO)
    store.write_memories([node])
    store.write_memories([MemoryNode(user_id="u1", content="Tom likes tea", created_at=MONTH_AGO,
                                     updated_at=MONTH_AGO)])  # fmt: skip
    result = retrieve(resources, catalog, "u1", "apple")
    assert result.context["query_vector"] is None
    assert ids(result) == [node.id]
    assert 0 < result["results"][0].explain["relevance"] <= 1.0


def test_now_input_and_result_to_dict(resources, catalog):
    node = remember(resources, "u1", "Tom went to Rome", event_time=day(2023, 3, 3))
    result = retrieve(resources, catalog, "u1", "What did Tom do yesterday?", now=datetime(2023, 3, 4, 10, tzinfo=UTC))
    assert result["query_time"].start == datetime(2023, 3, 3, tzinfo=UTC)
    data = result["results"][0].to_dict()
    assert data["id"] == node.id and data["time"] == "2023-03-03T00:00:00+00:00"
    assert data["event_time"]["granularity"] == "day" and set(data["explain"]) >= {"relevance", "time"}
    with pytest.raises(OperationRunError, match="timezone-aware"):
        retrieve(resources, catalog, "u1", "Rome", now=datetime(2023, 3, 4))


# --- fuse_scores: rank score and session lift; the embedded text of a turn --------------------------------


def fuse(store, hits: list[ScoredMessage], top_k: int, **params) -> list[RetrievedItem]:
    """Run the real fuse_scores worker on given message hits (a query with words and a vector)."""
    worker = FuseScores(FuseScores.Params(**params), Resources(store=store, clock=lambda: NOW))
    ctx = Context(operation="retrieve_memory", run_id="t", values={
        "query": "what did she paint", "query_vector": [1.0], "query_time": None, "memory_hits": [],
        "message_hits": hits, "top_k": top_k,
    })  # fmt: skip
    worker.run(ctx)
    return ctx["results"]


def turn(content: str, session: str, rank: int | None, cos: float, text_rank: int | None = None) -> ScoredMessage:
    message = Message(user_id="u1", content=content, session_id=session, created_at=MONTH_AGO)
    return ScoredMessage(message, score=0.0, vector_rank=rank, text_rank=rank if text_rank is None else text_rank,
                         vector_similarity=cos)  # fmt: skip


def test_lone_top_text_hit_outranks_a_middling_hit_of_both_channels(store):
    lone = turn("away from the court, cooking is therapy for me", "s1", None, 0.30, text_rank=1)
    middling = turn("I hate not being on the court", "s2", 20, 0.35)
    assert [i.id for i in fuse(store, [middling, lone], 1, rank_k=10)] == [lone.message.id]
    assert fuse(store, [middling, lone], 1, rank_k=10)[0].explain["relevance"] == pytest.approx(
        0.8 * (0.5 * 0.5 + 0.5 * 0.30)
    )  # rank 1 in one of two channels: rank score 0.5
    # the store's RRF curve (k=60) makes rank 1 and rank 20 nearly equal: the middling hit wins
    assert [i.id for i in fuse(store, [middling, lone], 1, rank_k=60)] == [middling.message.id]


def test_hit_without_ranks_falls_back_to_its_fused_score(store):
    hit = turn("a turn only the time-filtered search found", "s1", None, 0.0, text_rank=None)
    hit.score = 1 / 61  # one channel's top RRF score, of the two channels' best 2 / 61
    [item] = fuse(store, [hit], 1, similarity_weight=0.0)
    assert item.explain["relevance"] == pytest.approx(0.8 * 0.5)


def test_session_boost_lifts_the_session_that_matches_best(store):
    lone = turn("I painted a lake once", "s-b", 1, 0.60)
    ranks = [(2, 0.55), (3, 0.5), (5, 0.45)]
    session = [turn(f"sunset painting, part {n}", "s-a", r, c) for n, (r, c) in enumerate(ranks)]
    other = turn("painting class", "s-c", 4, 0.48)
    hits = [lone, session[0], session[1], other, session[2]]
    plain = fuse(store, hits, 3)
    assert lone.message.id in [i.id for i in plain] and all("session" not in i.explain for i in plain)
    lifted = fuse(store, hits, 3, session_boost=0.2)
    assert [i.id for i in lifted] == [t.message.id for t in session]
    assert all(i.explain["session"] == 0.2 for i in lifted)
    two = fuse(store, hits, 5, session_boost=0.2, session_top=2)
    assert {i.id for i in two if "session" in i.explain} == {t.message.id for t in [*session, lone]}


def test_merge_time_hits_clears_the_ranks_of_time_only_hits():
    open_hit = turn("open search hit", "s1", 1, 0.5)
    open_hit.score = 0.02
    timed = turn("only in that week", "s1", 1, 0.4)
    timed.score = 0.03
    merged = merge_time_hits([open_hit], [timed], key=lambda h: h.message.id)
    assert [h.message.id for h in merged] == [open_hit.message.id, timed.message.id]
    assert (timed.score, timed.vector_rank, timed.text_rank) == (0.02, None, None)
    assert (open_hit.vector_rank, open_hit.text_rank) == (1, 1)


def test_message_embedding_text_names_the_speaker_and_the_day():
    late = datetime(2023, 5, 8, 23, 30, tzinfo=UTC)
    said = Message(user_id="u1", name="Caroline", content="I went to a support group", created_at=late)
    assert message_embedding_text(said) == "Caroline (8 May 2023): I went to a support group"
    assert message_embedding_text(said, ZoneInfo("Asia/Shanghai")).startswith("Caroline (9 May 2023): ")
    anonymous = Message(user_id="u1", role=Role.ASSISTANT, content="Noted", created_at=late)
    assert message_embedding_text(anonymous) == "assistant (8 May 2023): Noted"


def test_embed_messages_embeds_speaker_day_and_content(store, local_embedder):
    said = Message(user_id="u1", name="Caroline", content="I went to a support group",
                   created_at=datetime(2023, 5, 8, 13, tzinfo=UTC))  # fmt: skip
    store.add_messages([said])
    ctx = Context(operation="consolidate_memory", run_id="t", values={"user_id": "u1"})
    EmbedMessages(EmbedMessages.Params(), Resources(store=store, embedder=local_embedder)).run(ctx)
    assert ctx["embedded_messages"] == [said.id]
    for text, close in (("Caroline (8 May 2023): I went to a support group", True), (said.content, False)):
        vector = [float(x) for x in local_embedder.embed([text])[0]]
        [hit] = store.search_messages("u1", SearchQuery(embedding=vector, top_k=1), MessageFilter())
        assert (hit.vector_similarity > 0.999) is close


def test_the_text_channel_run_ahead_changes_no_result(resources, catalog):
    """rank_by_text runs BM25 beside the query embedding; without it the searches run BM25 themselves.
    Both give the same items in the same order with the same scores."""
    from pathlib import Path

    import memscope
    from memscope.engine.operation import parse_operation

    text = (Path(memscope.__file__).parent.parent / "operations" / "retrieve_memory.yaml").read_text(encoding="utf-8")
    assert "rank_by_text" in text
    inline = parse_operation("\n".join(line for line in text.splitlines() if "- rank_by_text" not in line))
    for content in ("Tom works at Apple as a software engineer", "Tom likes hiking in the Alps",
                    "Tom's sister lives in Paris", "I had dinner with Tom at the Apple campus"):  # fmt: skip
        remember(resources, "u1", content)
    resources.store.add_messages([
        Message(user_id="u1", role=Role.USER, content="Tom said the Apple job is great", created_at=MONTH_AGO),
        Message(user_id="u1", role=Role.USER, content="Hiking again next week", created_at=NOW),
    ])  # fmt: skip
    timed = ("hiking last week", "What did Tom say about Apple last month?", "hiking this week", "Tom in April 2024")
    for query in ("Where does Tom work?", "Apple", "", "🙂", *timed):
        ahead = retrieve(resources, catalog, "u1", query, now=NOW)
        assert [s.worker for s in ahead.report.steps][:4] == [
            "embed_query", "rank_by_text", "extract_query_time", "attach_pending_messages"
        ]  # fmt: skip
        assert (ahead.context["query_time"] is not None) == (query in timed), query
        alone = OperationRunner(resources).run(inline, {"user_id": "u1", "query": query, "now": NOW})
        assert [(i.id, round(i.score, 9)) for i in ahead["results"]] == [
            (i.id, round(i.score, 9)) for i in alone["results"]
        ], query



def test_a_networked_store_runs_the_time_filtered_search_beside_the_open_one():
    """Against Elasticsearch the time-filtered search's round trip overlaps the open search's (both wait at
    a barrier that only two searches in flight at once pass); an in-process store runs them in turn on the
    caller's thread. The merge is the same, and the open search's error is the one raised, after the
    other search ended."""
    import threading

    from memscope.retrieval import search_with_period

    def hit(mid: str, score: float) -> ScoredMessage:
        return ScoredMessage(Message(id=mid, user_id="u", role=Role.USER, content=mid), score)

    met = threading.Barrier(2, timeout=10)
    threads: list[int] = []

    def search(query: SearchQuery, f: MessageFilter) -> list[ScoredMessage]:
        threads.append(threading.get_ident())
        if f.time_range is None:
            met.wait()
            return [hit("open-1", 0.9), hit("both", 0.8)]
        met.wait()
        return [hit("both", 0.5), hit("period-1", 0.95)]

    period = TimeRange(start=datetime(2024, 5, 1, tzinfo=UTC), end=datetime(2024, 6, 1, tzinfo=UTC))
    calls = (SearchQuery(text="q"), MessageFilter()), (SearchQuery(text="q", top_k=2), MessageFilter(time_range=period))
    merged = search_with_period(search, *calls, key=lambda h: h.message.id, side_by_side=True)
    assert [h.message.id for h in merged] == ["open-1", "both", "period-1"]  # the period's hit capped below
    assert merged[-1].score == 0.8 and len(set(threads)) == 2

    threads.clear()
    in_turn = threading.Barrier(1)  # in turn, each search passes alone
    met = in_turn
    assert [h.message.id for h in search_with_period(search, *calls, key=lambda h: h.message.id,
                                                       side_by_side=False)] == ["open-1", "both", "period-1"]
    assert threads == [threading.get_ident()] * 2

    started, ended = threading.Event(), threading.Event()

    def failing(query: SearchQuery, f: MessageFilter) -> list[ScoredMessage]:
        if f.time_range is None:
            started.wait(10)  # the helper's search is under way when the open one fails
            raise ValidationError("the open search failed")
        started.set()
        ended.wait(0.2)
        ended.set()
        return []

    with pytest.raises(ValidationError, match="the open search failed"):
        search_with_period(failing, *calls, key=lambda h: h.message.id, side_by_side=True)
    assert ended.is_set()  # the helper's search had ended before the error reached the caller


def test_a_busy_helper_pool_does_not_hold_up_a_retrieval(monkeypatch: pytest.MonkeyPatch):
    """When every helper thread is taken (other retrievals), the time-filtered search runs on the caller's
    thread once the open search is done, instead of waiting in the queue."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import memscope.retrieval as retrieval

    release = threading.Event()
    busy = ThreadPoolExecutor(max_workers=1)
    busy.submit(release.wait, 30)  # the one helper, taken
    monkeypatch.setattr(retrieval, "_period_pool", lambda: busy)
    ran_on: list[int] = []

    def search(query: SearchQuery, f: MessageFilter) -> list[ScoredMessage]:
        ran_on.append(threading.get_ident())
        return [ScoredMessage(Message(id=f"m{len(ran_on)}", user_id="u", role=Role.USER, content="x"), 0.5)]

    period = TimeRange(start=datetime(2024, 5, 1, tzinfo=UTC), end=datetime(2024, 6, 1, tzinfo=UTC))
    calls = (SearchQuery(text="q"), MessageFilter()), (SearchQuery(text="q"), MessageFilter(time_range=period))
    try:
        merged = retrieval.search_with_period(search, *calls, key=lambda h: h.message.id, side_by_side=True)
        assert [h.message.id for h in merged] == ["m1", "m2"] and ran_on == [threading.get_ident()] * 2
    finally:
        release.set()
        busy.shutdown()


def test_per_text_signals_keep_no_long_text_in_their_caches():
    """fuse_scores' word counts and time mentions, and a turn's resolved times, are cached per text; a long
    turn (a pasted document) is worked out anew or cached by its head only, so the caches never hold it
    whole: a process fed many would otherwise keep them all. The answers are the same either way."""
    from memscope.timerules import mentions
    from memscope.workers import fuse_scores

    short = "We met Anna last Friday to plan the trip."
    long = short + " filler words here" * 2000
    at = datetime(2024, 5, 20, 12, tzinfo=UTC)
    for cache in (fuse_scores._content_words_cached, fuse_scores._mentions_time_cached, mentions._resolved):
        cache.cache_clear()
    assert fuse_scores._content_words(long) == fuse_scores._count_content_words(long) > 2000
    assert fuse_scores._mentions_time(long)
    assert fuse_scores._content_words_cached.cache_info().currsize == 0
    assert fuse_scores._mentions_time_cached.cache_info().currsize == 0
    assert fuse_scores._content_words(short) == fuse_scores._count_content_words(short) > 0
    assert fuse_scores._content_words_cached.cache_info().currsize == 1
    times = mentions.mentioned_times("m1", long, at)
    assert times == mentions.mentioned_times("m2", short, at) != ()
    assert mentions.mentioned_times("m1", long + " and a different tail", at) == times
    assert mentions._resolved.cache_info().hits == 1  # keyed by the head the times are read from


def test_format_context_clips_long_and_short_texts_alike():
    """Short texts go through the cache, long ones (past a few times the limit) are clipped anew."""
    from memscope.workers.format_context import FormatContext

    worker = FormatContext(FormatContext.Params(max_item_chars=20), Resources(store=None))  # type: ignore[arg-type]
    short, long = "a  b\n c " * 3, "word " * 1000
    assert worker._clip(short) == worker._clip(short) == "a b c a b c a b c"
    assert worker._clip(long) == "word word word word…" and len(worker._clip(long)) == 20


def test_a_large_sqlite_index_runs_the_time_filtered_search_beside_the_open_one(
    resources, catalog, monkeypatch: pytest.MonkeyPatch
):
    """Over a large memory index most of an SQLite search is outside the GIL, so the time-filtered memory
    search runs on a helper thread beside the open one (at 10k: 0.5 ms less at the median, 100k: 0.7); over
    a small one, in turn on the step's thread. Same hits either way."""
    import threading

    import memscope.stores.sqlite as sqlite_module

    texts = [f"Visited the market on a Friday, note {i}" for i in range(30)]
    vectors = resources.embedder.embed(texts)
    resources.store.write_memories([
        MemoryNode(user_id="u1", content=t, embedding=[float(x) for x in v], event_time=day(2024, 5, 10),
                   created_at=MONTH_AGO, updated_at=MONTH_AGO)
        for t, v in zip(texts, vectors, strict=True)
    ])  # fmt: skip
    store = resources.store
    turns = [Message(user_id="u1", role=Role.USER, content=t, created_at=MONTH_AGO) for t in texts]
    store.add_messages(turns)
    store.set_message_embeddings("u1", {m.id: [float(x) for x in v] for m, v in zip(turns, vectors, strict=True)})
    searched_on: list[str] = []
    search = store.search_memories
    period_started = threading.Event()

    def spy(user_id: str, query: SearchQuery, f: MemoryFilter | None = None) -> list:
        searched_on.append(threading.current_thread().name)
        if f is not None and f.time_range is not None:
            period_started.set()
        elif side_by_side:
            period_started.wait(5)  # else a slow helper thread would leave the period search to this one
        return search(user_id, query, f)

    monkeypatch.setattr(store, "search_memories", spy)
    side_by_side = False
    dim = len(vectors[0])
    assert not store.searches_overlap("memories", "u1", dim)  # nothing cached yet
    small = retrieve(resources, catalog, "u1", "What did I do last Friday?", top_k=5)
    assert len(searched_on) == 2 and len(set(searched_on)) == 1
    assert not store.searches_overlap("memories", "u1", dim)  # cached, but 30 rows

    monkeypatch.setattr(sqlite_module, "_SIDE_BY_SIDE_ROWS", 30)
    assert store.searches_overlap("memories", "u1", dim)
    assert len(store._cache[("messages", "u1", dim)].ids) == 30  # as large, but a period of turns is cheap
    assert not store.searches_overlap("messages", "u1", dim)
    searched_on.clear()
    side_by_side = True
    large = retrieve(resources, catalog, "u1", "What did I do last Friday?", top_k=5)
    assert len(searched_on) == 2 and sum(name.startswith("memscope-period") for name in searched_on) == 1
    assert ids(large) == ids(small)


def test_the_shipped_retrieval_keeps_one_candidate_window(catalog):
    """rank_by_text runs the searches' text channel ahead, so its window must be theirs; and a run without
    the `candidates` input (runtime.run, a custom caller) must use the window the API passes by default."""
    from memscope.config import RetrievalSettings
    from memscope.engine.operation import ParallelGroup

    spec = catalog.get("retrieve_memory")
    steps = [s for item in spec.steps for s in (item.branches if isinstance(item, ParallelGroup) else [item])]
    searches = {"rank_by_text", "search_memories", "search_messages"}
    windows = {s.worker: s.params.candidates for s in steps if s.worker in searches}
    assert set(windows) == searches
    assert set(windows.values()) == {RetrievalSettings().candidates}, windows
