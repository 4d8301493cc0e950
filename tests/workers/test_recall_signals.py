"""Issue 16's retrieval signals: turn order, "when" questions, time mentions, overridden turns, and a
question's relative times anchored on the date it names. Real SQLite, the real local embedder."""


from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from memscope.engine import Context, OperationCatalog, OperationRunner, Resources, RunResult
from memscope.llm.base import UsageMeter
from memscope.llm.local_embedding import LocalEmbedder
from memscope.models import Message, Role
from memscope.retrieval import RetrievedItem, content_spans, message_embedding_text
from memscope.stores.base import ScoredMessage, SearchQuery
from memscope.stores.sqlite import SqliteStore
from memscope.timerules import extract_query_time
from memscope.timerules import mentions as mentions_regex
from memscope.timerules._calendar import words
from memscope.timerules.mentions import asks_when, mentioned_times, mentions_time
from memscope.turn_signals import asks_now, overridden_turns
from memscope.workers.embed_messages import EmbedMessages
from memscope.workers.embed_query import EmbedQuery
from memscope.workers.fuse_scores import FuseScores
from tests.support.embedders import RecordingEmbedder

pytestmark = pytest.mark.integration

NOW = datetime(2023, 9, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def local_embedder() -> LocalEmbedder:
    embedder = LocalEmbedder()
    embedder.warm_up()
    return embedder


@pytest.fixture
def resources(tmp_path, local_embedder) -> Iterator[Resources]:
    with SqliteStore(tmp_path / "m.db") as store:
        yield Resources(store=store, embedder=local_embedder, meter=UsageMeter(), clock=lambda: NOW)


def add_session(
    resources: Resources, session: str, start: datetime, turns: list[tuple[str, str]], assistant: str = "",
) -> list[Message]:
    """Store a session's turns (speaker, text), a minute apart, and embed them as consolidation would; the
    `assistant` speaker's turns have the assistant role."""
    messages = [
        Message(user_id="u1", session_id=session, role=Role.ASSISTANT if who == assistant else Role.USER,
                name=who, content=text, created_at=start + timedelta(minutes=n))
        for n, (who, text) in enumerate(turns)
    ]  # fmt: skip
    resources.store.add_messages(messages)
    ctx = Context(operation="consolidate_memory", run_id="t", values={"user_id": "u1"})
    EmbedMessages(EmbedMessages.Params(), resources).run(ctx)
    return messages


def retrieve(resources: Resources, query: str, **inputs: object) -> RunResult:
    spec = OperationCatalog().get("retrieve_memory")
    return OperationRunner(resources).run(spec, {"user_id": "u1", "query": query, "now": NOW, **inputs})


def contents(result: RunResult) -> list[str]:
    return [item.content for item in result["results"]]


# -- cheap signals ---------------------------------------------------------------------------------


def test_asks_when_and_asks_now():
    assert asks_when("When did Caroline go to the support group?")
    assert asks_when("What year did Tom move?") and asks_when("她什么时候去的北京")
    assert not asks_when("What does Melanie paint?") and not asks_when("Whenever is fine")
    assert asks_now("Where do I work now?") and asks_now("我现在住哪里") and asks_now("What's my current job?")
    assert not asks_now("Where did I work in 2019?")


def test_mentions_time_in_any_phrasing():
    for text in ("I went yesterday", "two weeks ago we met", "last Friday", "Next month I'm off", "back in May",
                 "the other day", "in 2022", "on 8 May", "May 8th", "上周三去了北京", "去年夏天", "三天前"):
        assert mentions_time(text), text
    for text in ("I love painting", "What's up?", "Mayor Smith spoke", "我喜欢猫"):
        assert not mentions_time(text), text


def test_the_mention_regex_runs_only_on_texts_with_a_time_word_and_misses_none():
    """`mentions_time` skips its regex unless the text holds one of `_MENTION_WORDS` or a digit: every form
    the regex knows (each alternative, any case) holds one, and the check alone turns most chat away."""
    forms = [
        "I went yesterday", "TODAY", "tonight", "Tomorrow", "long ago", "recently", "Lately", "the other day",
        "earlier this week", "last summer", "next Weekends", "this coming evening", "past months", "previous year",
        "coming Thurs", "on Wed", "Satur", "SUNDAY", "since mid-Sept", "back in late sepember", "during 1999",
        "in 2022", "Aug 3rd", "May 8", "the 8th of December", "12 Jan", "2023-05-08", "3/4/2021", "last night",
    ]  # fmt: skip
    for text in forms:
        match = mentions_regex._MENTION_EN.search(text)
        assert match is not None, text
        assert not mentions_regex._MENTION_WORDS.isdisjoint(words(match.group(0))), match.group(0)
        assert mentions_time(text), text
    chat = ["I love painting", "Thanks, that means a lot!", "What are you up to?", "Good luck with the move"]
    assert all(mentions_regex._MENTION_WORDS.isdisjoint(words(text)) for text in chat)


def test_mentioned_times_resolve_against_the_message_time():
    said = datetime(2023, 5, 8, 13, 0, tzinfo=UTC)
    [yesterday] = mentioned_times("m1", "I went to a support group yesterday", said)
    assert yesterday.start == datetime(2023, 5, 7, tzinfo=UTC)
    [last_week] = mentioned_times("m2", "We went camping last week", said, "Asia/Shanghai")
    assert last_week.start.date().isoformat() == "2023-05-01"  # Monday of the week before, Shanghai time
    assert mentioned_times("m3", "I love painting", said) == ()


def day(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)


def test_query_relative_phrases_anchor_on_the_date_it_names():
    span = extract_query_time("What did Joanna finish last Friday, on 23 January 2022?", NOW)
    assert span is not None and (span.start, span.end) == (day(2022, 1, 21), day(2022, 1, 24))
    between = extract_query_time("Where was John between August 11 and August 15, 2023?", day(2024, 3, 1))
    assert between is not None and between.start == datetime(2023, 8, 11, tzinfo=UTC)
    week = extract_query_time("What did I do last week?", NOW)
    assert week is not None and week.start == datetime(2023, 8, 21, tzinfo=UTC)
    wide = extract_query_time("What did I do in May 2022 and last week?", NOW)  # more than a month: the named date
    assert wide is not None and (wide.start, wide.end) == (day(2022, 5, 1), day(2022, 6, 1))


def test_overridden_turns_need_the_same_speaker_a_shared_name_and_a_change_word():
    def turn(n: int, text: str, name: str = "Tom") -> RetrievedItem:
        m = Message(user_id="u1", name=name, content=text, created_at=NOW + timedelta(days=n))
        return RetrievedItem.from_message(m, 0.0)

    meta = turn(0, "I work as a data scientist at Meta in San Francisco.")
    apple = turn(5, "Big news: I left Meta last month and joined Apple.")
    other = turn(6, "Ann left Meta too.", name="Ann")
    hobby = turn(7, "I still love climbing at Mission Cliffs.")
    assert overridden_turns([apple, meta, other, hobby]) == {meta.id: apple.id}
    assert overridden_turns([meta, other, hobby]) == {}


# -- in the operation ------------------------------------------------------------------------------


def test_the_embedded_text_carries_the_turn_it_replies_to(resources):
    question, answer = add_session(
        resources, "s1", NOW - timedelta(days=3), [("Melanie", "What do you do for fun?"), ("Caroline", "I paint.")]
    )
    expected = message_embedding_text(answer, None, question)
    assert expected.endswith("(replying to Melanie: What do you do for fun?)")
    vector = [float(x) for x in resources.embedder.embed([expected])[0]]
    [hit] = resources.store.search_messages("u1", SearchQuery(embedding=vector, top_k=1))
    assert hit.message.id == answer.id and hit.vector_similarity > 0.999


def test_a_specific_match_outranks_recent_chatter(resources):
    add_session(resources, "s1", NOW - timedelta(days=200), [
        ("Tom", "Hi, I'm Tom, a data scientist."),
        ("Ava", "Nice to meet you, Tom! What do you enjoy outside work?"),
        ("Tom", "I go rock climbing most weekends, usually at Mission Cliffs."),
    ])  # fmt: skip
    add_session(resources, "s2", NOW - timedelta(days=2), [
        ("Tom", "I'm flying to Paris next Friday for a conference."),
        ("Ava", "Congratulations on the trip!"),
        ("Tom", "Thanks! Big week ahead."),
    ])  # fmt: skip
    assert "rock climbing" in contents(retrieve(resources, "What do I do for fun?", top_k=3))[0]


def test_now_questions_rank_an_overridden_turn_below_the_turn_that_changed_it(resources):
    add_session(resources, "s1", NOW - timedelta(days=150), [("Tom", "I work as a data scientist at Meta.")])
    add_session(resources, "s2", NOW - timedelta(days=5), [("Tom", "I left Meta and joined Apple as an ML engineer.")])
    found = contents(retrieve(resources, "Where do I work now?", top_k=2))
    assert "Apple" in found[0] and "at Meta" in found[1]
    history = contents(retrieve(resources, "Where did I work as a data scientist?", top_k=2))
    assert "at Meta" in history[0]  # not a question about now: the older turn is not pushed down


def test_the_turn_that_overrides_the_matching_one_answers_a_question_about_now(resources):
    """Only the old turn says "work"; the later turn that overrides it states the current job and takes its
    match, above the climbing turn that matches through the question it answers ("... outside work?")."""
    add_session(resources, "s1", NOW - timedelta(days=150), [
        ("Tom", "Hi! I'm Tom. I work as a data scientist at Meta in San Francisco."),
        ("Ava", "Nice to meet you, Tom! What do you enjoy outside work?"),
        ("Tom", "I go rock climbing most weekends, usually at Mission Cliffs."),
    ], assistant="Ava")  # fmt: skip
    add_session(resources, "s2", NOW - timedelta(days=5), [
        ("Tom", "Big news: I left Meta last month and joined Apple as an ML engineer."),
        ("Ava", "Congratulations on the new role!"),
        ("Tom", "Thanks! I'm flying to Paris next Friday for a conference."),
    ], assistant="Ava")  # fmt: skip
    first = retrieve(resources, "Where do I work now?", top_k=3)["results"][0]
    assert "Apple" in first.content and first.explain["supersedes"] > 0
    history = retrieve(resources, "Where did I work as a data scientist?", top_k=3)["results"]
    assert "at Meta" in history[0].content and all("supersedes" not in i.explain for i in history)


def test_when_questions_favour_the_turn_that_dates_the_event(resources):
    add_session(resources, "s1", NOW - timedelta(days=40), [
        ("Caroline", "Support groups have helped me a lot over the years."),
        ("Caroline", "I went to an LGBTQ support group yesterday and it was powerful."),
        ("Caroline", "The support group people are so kind."),
    ])  # fmt: skip
    result = retrieve(resources, "When did Caroline go to the LGBTQ support group?", top_k=3)
    first = result["results"][0]
    assert "yesterday" in first.content and first.explain.get("when", 0) > 0


def test_a_question_turn_lends_relevance_to_its_answer(resources):
    """Only a question lends to the turn after it; any hit lends `neighbour_before` to the turn before."""
    at = NOW - timedelta(days=10)
    before, question, answer, statement, after = (
        Message(user_id="u1", session_id="s1", content=text, created_at=at + timedelta(minutes=n))
        for n, text in enumerate(["Hi!", "What instrument are you learning?", "The clarinet!", "I love it.", "Bye"])
    )
    hits = [ScoredMessage(question, 0.0, 1, 1, 0.9), ScoredMessage(statement, 0.0, 2, 2, 0.8)]
    neighbours = {question.id: [before, answer], statement.id: [answer, after]}

    def fused(**params: float) -> dict[str, RetrievedItem]:
        worker = FuseScores(FuseScores.Params(**params), resources)
        ctx = Context(operation="retrieve_memory", run_id="t", values={
            "query": "which instrument", "query_vector": [1.0], "query_time": None, "memory_hits": [],
            "message_hits": hits, "message_neighbours": neighbours, "top_k": 10,
        })  # fmt: skip
        worker.run(ctx)
        return {i.id: i for i in ctx["results"]}

    lent = fused(neighbour_after=0.7, neighbour_before=0.3)
    assert lent[answer.id].explain["neighbour"] == pytest.approx(0.7 * lent[question.id].explain["relevance"] / 0.8)
    assert lent[before.id].explain["neighbour"] > 0 and after.id not in lent  # a statement lends nothing after
    assert answer.id not in fused()  # weights 0 (the default): neighbours lend nothing


# -- the query vector ------------------------------------------------------------------------------


def embedded_query(resources: Resources, query: str) -> np.ndarray:
    ctx = Context(operation="retrieve_memory", run_id="t", values={"query": query})
    EmbedQuery(EmbedQuery.Params(blend_keywords=True), resources).run(ctx)
    return np.array(ctx["query_vector"])


def test_the_query_vector_blends_in_its_content_words_from_the_questions_own_pass(resources, local_embedder):
    question = "When did Caroline go to the support group?"
    rows = local_embedder.embed_query_focused(question, content_spans(question))
    assert rows.shape == (2, 384)
    blended = rows.mean(axis=0) / np.linalg.norm(rows.mean(axis=0))
    vector = embedded_query(resources, question)
    np.testing.assert_allclose(vector, blended, atol=1e-6)
    assert float(vector @ local_embedder.embed_query([question])[0]) < 0.995  # the content words moved it
    only_content = "Caroline support group"  # nothing to drop: the question alone
    np.testing.assert_allclose(embedded_query(resources, only_content), local_embedder.embed_query([only_content])[0],
                               atol=1e-6)  # fmt: skip


def test_an_embedder_without_a_pooling_pass_gets_the_question_and_its_content_words_in_one_batch(tmp_path):
    embedder = RecordingEmbedder()
    with SqliteStore(tmp_path / "m.db") as store:
        plain = Resources(store=store, embedder=embedder, meter=UsageMeter(), clock=lambda: NOW)
        vector = embedded_query(plain, "When did Caroline go to the support group?")
    assert embedder.sent == [["When did Caroline go to the support group?", "Caroline go support group"]]
    np.testing.assert_allclose(vector, [2**-0.5, 2**-0.5], atol=1e-6)


def test_time_share_is_the_part_of_a_span_inside_the_asked_period():
    """fuse_scores' time share on epoch seconds: what TimeRange arithmetic gave, half-open, an instant 1 µs."""
    from memscope.models import TimeRange
    from memscope.workers.fuse_scores import _seconds, _share

    def share(start: datetime, end: datetime, q_start: datetime, q_end: datetime) -> float:
        return _share(_seconds(TimeRange(start=start, end=end)), _seconds(TimeRange(start=q_start, end=q_end)))

    may, june, july = (datetime(2023, m, 1, tzinfo=UTC) for m in (5, 6, 7))
    day = timedelta(days=1)
    assert share(june + 9 * day, june + 10 * day, june, july) == 1.0  # a day inside the month asked about
    assert share(june, july, june + 9 * day, june + 10 * day) == pytest.approx(1 / 30)  # a month, a day asked
    assert share(may + 16 * day, june + 15 * day, june, july) == pytest.approx(0.5)  # 15 of its 30 days in June
    assert share(june, june, june, july) == 1.0  # an instant at the start is inside
    assert share(july, july, june, july) == 0.0  # the end is not (half-open)
    assert share(june, july, july, july) == 0.0 and share(june, july, june, june) == pytest.approx(1e-6 / 2.592e6)
