"""memscope.timerules: English and Chinese time expressions resolved by rules against an anchor and zone."""

# ruff: noqa: RUF001  (realistic Chinese sentences use full-width punctuation)

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from memscope.errors import ValidationError
from memscope.models import Granularity
from memscope.timerules import TimeMatch, en, extract_all_times, extract_time, resolve_time_phrase
from memscope.timerules._calendar import DIGIT, words

pytestmark = pytest.mark.unit

SH, NY = ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York")
G = Granularity
# name -> (anchor, zone name). SH is Wednesday 2023-05-10 14:00 in Shanghai.
ANCHORS = {
    "SH": (datetime(2023, 5, 10, 14, 0, tzinfo=SH), "Asia/Shanghai"),
    "SH_FROM_UTC": (datetime(2023, 5, 10, 6, 0, tzinfo=UTC), "Asia/Shanghai"),  # the same instant as SH
    "NY_FRI": (datetime(2023, 5, 12, 9, 0, tzinfo=NY), "America/New_York"),  # a Friday
    "UTC_SUN": (datetime(2023, 5, 14, 20, 0, tzinfo=UTC), "UTC"),  # a Sunday
    "UTC_JAN": (datetime(2024, 1, 15, 10, 0, tzinfo=UTC), "UTC"),  # a Monday in a leap year's winter
}


def local(text: str, zone: str) -> datetime:
    """'2023-05-05' or '2023-05-05 18:00' as an aware datetime in `zone`."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


# (sentence, anchor, phrase found, start, end, granularity)
ENGLISH = [
    ("what did I do last Friday?", "SH", "last Friday", "2023-05-05", "2023-05-06", G.DAY),
    ("are we meeting next Friday?", "SH", "next Friday", "2023-05-19", "2023-05-20", G.DAY),
    ("are we meeting this coming Friday?", "SH", "this coming Friday", "2023-05-12", "2023-05-13", G.DAY),
    ("what's planned for this Friday", "SH", "this Friday", "2023-05-12", "2023-05-13", G.DAY),
    ("I went hiking on Monday", "SH", "on Monday", "2023-05-08", "2023-05-09", G.DAY),
    ("What did I eat today?", "SH", "today", "2023-05-10", "2023-05-11", G.DAY),
    ("any plans tonight?", "SH", "tonight", "2023-05-10 18:00", "2023-05-11", G.DAY),
    ("I jogged this morning", "SH", "this morning", "2023-05-10 05:00", "2023-05-10 12:00", G.DAY),
    ("she called this afternoon", "SH", "this afternoon", "2023-05-10 12:00", "2023-05-10 18:00", G.DAY),
    ("we eat out this evening", "SH", "this evening", "2023-05-10 18:00", "2023-05-11", G.DAY),
    ("Yesterday I bought a bike", "SH_FROM_UTC", "Yesterday", "2023-05-09", "2023-05-10", G.DAY),
    ("I saw Tom the day before yesterday", "SH", "the day before yesterday", "2023-05-08", "2023-05-09", G.DAY),
    ("remind me tomorrow", "SH", "tomorrow", "2023-05-11", "2023-05-12", G.DAY),
    ("the day after tomorrow is my birthday", "SH", "the day after tomorrow", "2023-05-12", "2023-05-13", G.DAY),
    ("I started the course 3 days ago", "SH", "3 days ago", "2023-05-07", "2023-05-08", G.DAY),
    ("we moved two weeks ago", "SH", "two weeks ago", "2023-04-24", "2023-05-01", G.WEEK),
    ("I quit a month ago", "SH", "a month ago", "2023-04-01", "2023-05-01", G.MONTH),
    ("I graduated five years ago", "SH", "five years ago", "2018-01-01", "2019-01-01", G.YEAR),
    ("that was twelve years ago", "SH", "twelve years ago", "2011-01-01", "2012-01-01", G.YEAR),
    ("the parcel arrives in 3 days", "SH", "in 3 days", "2023-05-13", "2023-05-14", G.DAY),
    ("I fly out in two weeks", "SH", "in two weeks", "2023-05-22", "2023-05-29", G.WEEK),
    ("what did I read last week?", "SH", "last week", "2023-05-01", "2023-05-08", G.WEEK),
    ("I am busy this week", "SH_FROM_UTC", "this week", "2023-05-08", "2023-05-15", G.WEEK),
    ("Next week I start a new job", "SH", "Next week", "2023-05-15", "2023-05-22", G.WEEK),
    ("I paid rent last month", "SH", "last month", "2023-04-01", "2023-05-01", G.MONTH),
    ("this month has been quiet", "SH", "this month", "2023-05-01", "2023-06-01", G.MONTH),
    ("next month we travel", "SH", "next month", "2023-06-01", "2023-07-01", G.MONTH),
    ("I moved here last year", "SH", "last year", "2022-01-01", "2023-01-01", G.YEAR),
    ("this year I ran a marathon", "SH", "this year", "2023-01-01", "2024-01-01", G.YEAR),
    ("next year I'll retire", "SH", "next year", "2024-01-01", "2025-01-01", G.YEAR),
    ("the year before last we lived in Paris", "SH", "the year before last", "2021-01-01", "2022-01-01", G.YEAR),
    ("what did I do last weekend?", "SH", "last weekend", "2023-05-06", "2023-05-08", G.WEEK),
    ("any plans this weekend", "SH", "this weekend", "2023-05-13", "2023-05-15", G.WEEK),
    ("next weekend is booked", "SH", "next weekend", "2023-05-20", "2023-05-22", G.WEEK),
    ("I went skiing in March", "SH", "in March", "2023-03-01", "2023-04-01", G.MONTH),
    ("I was in Oslo in June", "SH", "in June", "2022-06-01", "2022-07-01", G.MONTH),
    ("last March I changed jobs", "SH", "last March", "2023-03-01", "2023-04-01", G.MONTH),
    ("we marry next March", "SH", "next March", "2024-03-01", "2024-04-01", G.MONTH),
    ("I started in March 2023", "SH", "in March 2023", "2023-03-01", "2023-04-01", G.MONTH),
    ("the concert on May 8 was loud", "SH", "May 8", "2023-05-08", "2023-05-09", G.DAY),
    ("she was born on 8 May, 2023", "SH", "8 May, 2023", "2023-05-08", "2023-05-09", G.DAY),
    ("the launch was May 8th, 2023", "SH", "May 8th, 2023", "2023-05-08", "2023-05-09", G.DAY),
    ("what happened in 2022?", "SH", "in 2022", "2022-01-01", "2023-01-01", G.YEAR),
    ("the meeting on 2023-05-08", "SH", "2023-05-08", "2023-05-08", "2023-05-09", G.DAY),
    ("invoice dated 2023/05/08", "SH", "2023/05/08", "2023-05-08", "2023-05-09", G.DAY),
    ("check-in on 05/08/2023", "SH", "05/08/2023", "2023-05-08", "2023-05-09", G.DAY),
    ("earlier this week I was sick", "SH", "earlier this week", "2023-05-08", "2023-05-10 14:00", G.WEEK),
    ("last summer we went to Spain", "SH", "last summer", "2022-06-01", "2022-09-01", G.MONTH),
    ("last winter was cold", "SH", "last winter", "2022-12-01", "2023-03-01", G.MONTH),
    ("this autumn I'll plant bulbs", "SH", "this autumn", "2023-09-01", "2023-12-01", G.MONTH),
    ("last fall I read a lot", "SH", "last fall", "2022-09-01", "2022-12-01", G.MONTH),
    ("last spring I had hay fever", "SH", "last spring", "2022-03-01", "2022-06-01", G.MONTH),
    ("in the summer of 2021 we met", "SH", "in the summer of 2021", "2021-06-01", "2021-09-01", G.MONTH),
    ("what have I been reading recently?", "SH", "recently", "2023-04-10", "2023-05-11", G.MONTH),
    ("Lately I sleep badly", "SH", "Lately", "2023-04-10", "2023-05-11", G.MONTH),
    ("I met her a few days ago", "SH", "a few days ago", "2023-05-03", "2023-05-10", G.WEEK),
    ("Friday night we danced", "SH", "Friday night", "2023-05-05 18:00", "2023-05-06 06:00", G.DAY),
    ("yesterday afternoon it rained", "SH", "yesterday afternoon", "2023-05-09 12:00", "2023-05-09 18:00", G.DAY),
    ("last night I dreamt", "SH", "last night", "2023-05-09 18:00", "2023-05-10 06:00", G.DAY),
    ("what did I eat in the past 3 days", "SH", "past 3 days", "2023-05-07", "2023-05-11", G.DAY),
    ("we party on December 25", "SH", "December 25", "2022-12-25", "2022-12-26", G.DAY),
    ("in early March we planted", "SH", "in early March", "2023-03-01", "2023-04-01", G.MONTH),
    ("Friday of last week", "SH", "Friday of last week", "2023-05-05", "2023-05-06", G.DAY),
    (
        "the parcel came at 2023-05-08T09:30:00Z",
        "SH",
        "2023-05-08T09:30:00Z",
        "2023-05-08 17:30",
        "2023-05-08 17:30",
        G.INSTANT,
    ),
    ("what did I do last Friday", "NY_FRI", "last Friday", "2023-05-05", "2023-05-06", G.DAY),
    ("see you next Friday", "NY_FRI", "next Friday", "2023-05-19", "2023-05-20", G.DAY),
    ("this Friday is payday", "NY_FRI", "this Friday", "2023-05-12", "2023-05-13", G.DAY),
    ("I swim on Friday", "NY_FRI", "on Friday", "2023-05-12", "2023-05-13", G.DAY),
    ("any plans this weekend", "UTC_SUN", "this weekend", "2023-05-13", "2023-05-15", G.WEEK),
    ("what did I do over the weekend", "UTC_SUN", "over the weekend", "2023-05-13", "2023-05-15", G.WEEK),
    ("last weekend was long", "UTC_SUN", "last weekend", "2023-05-06", "2023-05-08", G.WEEK),
    ("dentist next Monday", "UTC_SUN", "next Monday", "2023-05-15", "2023-05-16", G.DAY),
    ("last winter was mild", "UTC_JAN", "last winter", "2022-12-01", "2023-03-01", G.MONTH),
    ("this winter is harsh", "UTC_JAN", "this winter", "2023-12-01", "2024-03-01", G.MONTH),
    ("I was ill in December", "UTC_JAN", "in December", "2023-12-01", "2024-01-01", G.MONTH),
    ("I changed phones a month ago", "UTC_JAN", "a month ago", "2023-12-01", "2024-01-01", G.MONTH),
    ("two weeks ago I flew home", "UTC_JAN", "two weeks ago", "2024-01-01", "2024-01-08", G.WEEK),
    ("my birthday is Feb 29", "UTC_JAN", "Feb 29", "2020-02-29", "2020-03-01", G.DAY),
]

CHINESE = [
    ("我上周三去了哪里？", "SH", "上周三", "2023-05-03", "2023-05-04", G.DAY),
    ("下周五开会", "SH", "下周五", "2023-05-19", "2023-05-20", G.DAY),
    ("这周日去爬山吧", "SH", "这周日", "2023-05-14", "2023-05-15", G.DAY),
    ("星期天我在家", "SH", "星期天", "2023-05-07", "2023-05-08", G.DAY),
    ("我周日去了超市", "SH", "周日", "2023-05-07", "2023-05-08", G.DAY),
    ("礼拜天去教堂", "SH", "礼拜天", "2023-05-07", "2023-05-08", G.DAY),
    ("今天吃了什么？", "SH", "今天", "2023-05-10", "2023-05-11", G.DAY),
    ("昨天去了公园", "SH_FROM_UTC", "昨天", "2023-05-09", "2023-05-10", G.DAY),
    ("前天下雨了", "SH", "前天", "2023-05-08", "2023-05-09", G.DAY),
    ("明天要上班", "SH", "明天", "2023-05-11", "2023-05-12", G.DAY),
    ("后天出发去成都", "SH", "后天", "2023-05-12", "2023-05-13", G.DAY),
    ("大前天买了书", "SH", "大前天", "2023-05-07", "2023-05-08", G.DAY),
    ("上周我很忙", "SH", "上周", "2023-05-01", "2023-05-08", G.WEEK),
    ("上星期看了电影", "SH", "上星期", "2023-05-01", "2023-05-08", G.WEEK),
    ("上个星期去了北京", "SH", "上个星期", "2023-05-01", "2023-05-08", G.WEEK),
    ("上礼拜见了老王", "SH", "上礼拜", "2023-05-01", "2023-05-08", G.WEEK),
    ("本周有考试", "SH", "本周", "2023-05-08", "2023-05-15", G.WEEK),
    ("这周很累", "SH", "这周", "2023-05-08", "2023-05-15", G.WEEK),
    ("这个星期一直下雨", "SH", "这个星期", "2023-05-08", "2023-05-15", G.WEEK),
    ("下周要出差", "SH", "下周", "2023-05-15", "2023-05-22", G.WEEK),
    ("上个月去了上海", "SH", "上个月", "2023-04-01", "2023-05-01", G.MONTH),
    ("这个月花了很多钱", "SH", "这个月", "2023-05-01", "2023-06-01", G.MONTH),
    ("本月工资还没发", "SH", "本月", "2023-05-01", "2023-06-01", G.MONTH),
    ("下个月搬家", "SH", "下个月", "2023-06-01", "2023-07-01", G.MONTH),
    ("去年我在深圳工作", "SH", "去年", "2022-01-01", "2023-01-01", G.YEAR),
    ("今年学了吉他", "SH", "今年", "2023-01-01", "2024-01-01", G.YEAR),
    ("明年结婚", "SH", "明年", "2024-01-01", "2025-01-01", G.YEAR),
    ("前年去过日本", "SH", "前年", "2021-01-01", "2022-01-01", G.YEAR),
    ("3天前感冒了", "SH", "3天前", "2023-05-07", "2023-05-08", G.DAY),
    ("我三天前见了她", "SH", "三天前", "2023-05-07", "2023-05-08", G.DAY),
    ("两周前开始健身", "SH", "两周前", "2023-04-24", "2023-05-01", G.WEEK),
    ("三个月前换了工作", "SH", "三个月前", "2023-02-01", "2023-03-01", G.MONTH),
    ("一年前毕业了", "SH", "一年前", "2022-01-01", "2023-01-01", G.YEAR),
    ("十天前丢了钱包", "SH", "十天前", "2023-04-30", "2023-05-01", G.DAY),
    ("三月去了杭州", "SH", "三月", "2023-03-01", "2023-04-01", G.MONTH),
    ("我去年三月在哪里？", "SH", "去年三月", "2022-03-01", "2022-04-01", G.MONTH),
    ("我2023年5月8日生病了", "SH", "2023年5月8日", "2023-05-08", "2023-05-09", G.DAY),
    ("5月8日那天很热", "SH", "5月8日", "2023-05-08", "2023-05-09", G.DAY),
    ("我5月很忙", "SH", "5月", "2023-05-01", "2023-06-01", G.MONTH),
    ("最近在看什么书？", "SH", "最近", "2023-04-10", "2023-05-11", G.MONTH),
    ("上周末去了海边", "SH", "上周末", "2023-05-06", "2023-05-08", G.WEEK),
    ("周末做了什么？", "SH", "周末", "2023-05-06", "2023-05-08", G.WEEK),
    ("昨天晚上看了电影", "SH", "昨天晚上", "2023-05-09 18:00", "2023-05-10", G.DAY),
    ("今晚吃火锅", "SH", "今晚", "2023-05-10 18:00", "2023-05-11", G.DAY),
    ("上周三下午开会了", "SH", "上周三下午", "2023-05-03 12:00", "2023-05-03 18:00", G.DAY),
    ("前几天见了朋友", "SH", "前几天", "2023-05-03", "2023-05-10", G.WEEK),
    ("十二月去了哈尔滨", "SH", "十二月", "2022-12-01", "2023-01-01", G.MONTH),
    ("12月25号是圣诞节", "SH", "12月25号", "2022-12-25", "2022-12-26", G.DAY),
    ("我二〇二二年在读书", "SH", "二〇二二年", "2022-01-01", "2023-01-01", G.YEAR),
    ("最近三天吃了什么", "SH", "最近三天", "2023-05-07", "2023-05-11", G.DAY),
    ("两个星期前见过", "SH", "两个星期前", "2023-04-24", "2023-05-01", G.WEEK),
    ("上上周去了医院", "SH", "上上周", "2023-04-24", "2023-05-01", G.WEEK),
    ("这周末有空吗", "UTC_SUN", "这周末", "2023-05-13", "2023-05-15", G.WEEK),
    ("上周五加班了", "UTC_SUN", "上周五", "2023-05-05", "2023-05-06", G.DAY),
    ("去年十二月很冷", "UTC_JAN", "去年十二月", "2023-12-01", "2024-01-01", G.MONTH),
    ("去年的今天我在做什么", "SH", "去年的今天", "2022-05-10", "2022-05-11", G.DAY),
]


def _check(found: TimeMatch | None, text: str, key: str, phrase: str, start: str, end: str, gran: Granularity) -> None:
    zone = ANCHORS[key][1]
    assert found is not None, f"no time found in {text!r}"
    assert found.phrase == phrase
    assert text[found.span[0] : found.span[1]] == phrase
    assert (found.time.start, found.time.end, found.time.granularity) == (
        local(start, zone),
        local(end, zone),
        gran,
    )
    assert found.time.start.utcoffset() == local(start, zone).utcoffset()  # returned in the user's zone


@pytest.mark.parametrize(("text", "key", "phrase", "start", "end", "gran"), ENGLISH, ids=[r[0] for r in ENGLISH])
def test_english_sentences(text: str, key: str, phrase: str, start: str, end: str, gran: Granularity) -> None:
    anchor, zone = ANCHORS[key]
    found = extract_time(text, anchor, zone)
    _check(found, text, key, phrase, start, end, gran)
    assert found is not None and found.language == "en"


@pytest.mark.parametrize(("text", "key", "phrase", "start", "end", "gran"), CHINESE, ids=[r[0] for r in CHINESE])
def test_chinese_sentences(text: str, key: str, phrase: str, start: str, end: str, gran: Granularity) -> None:
    anchor, zone = ANCHORS[key]
    found = extract_time(text, anchor, zone)
    _check(found, text, key, phrase, start, end, gran)
    assert found is not None and found.language == "zh"


def test_tables_are_large_enough() -> None:
    assert len(ENGLISH) >= 50 and len(CHINESE) >= 25


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of France?",
        "The mayor gave a speech.",  # "may" inside a word
        "Chapter 3 may be skipped.",  # a modal verb after a number, not 3 May
        "I may come along",
        "We march together for peace",
        "看一下周围有什么",  # 下周 inside 一下周围
        "最近的超市在哪里？",  # 最近的: nearest, not recently
        "我一周三次去健身房",  # three times a week, not Wednesday
        "每周一开例会",  # every Monday: habitual, not one day
        "the score was 2022 to 3",
        "version 1.2.3 is out",
    ],
)
def test_no_time_gives_none(text: str) -> None:
    anchor, zone = ANCHORS["SH"]
    assert extract_time(text, anchor, zone) is None
    assert extract_all_times(text, anchor, zone) == []


def test_day_boundary_follows_the_user_zone() -> None:
    anchor = datetime(2023, 5, 10, 1, 0, tzinfo=UTC)  # still 2023-05-09 (21:00) in New York
    found = extract_time("what did I do yesterday?", anchor, "America/New_York")
    assert found is not None
    assert (found.time.start, found.time.end) == (
        local("2023-05-08", "America/New_York"),
        local("2023-05-09", "America/New_York"),
    )
    in_utc = extract_time("what did I do yesterday?", anchor, "UTC")
    assert in_utc is not None and in_utc.time.start == datetime(2023, 5, 9, tzinfo=UTC)


def test_results_in_different_zones_compare_as_instants() -> None:
    anchor = datetime(2023, 5, 10, 6, 0, tzinfo=UTC)
    shanghai = resolve_time_phrase("today", anchor, SH)
    assert shanghai is not None
    assert shanghai.start == datetime(2023, 5, 9, 16, 0, tzinfo=UTC)
    assert shanghai.end == datetime(2023, 5, 10, 16, 0, tzinfo=UTC)
    fixed = resolve_time_phrase("today", anchor, timezone(timedelta(hours=8)))  # any tzinfo is accepted
    assert fixed is not None and (fixed.start, fixed.end) == (shanghai.start, shanghai.end)


def test_a_day_across_a_dst_change_is_23_hours() -> None:
    anchor = datetime(2023, 3, 13, 12, 0, tzinfo=NY)  # clocks went forward on 2023-03-12
    found = resolve_time_phrase("yesterday", anchor, "America/New_York")
    assert found is not None
    assert found.start == datetime(2023, 3, 12, 5, 0, tzinfo=UTC)
    assert found.end == datetime(2023, 3, 13, 4, 0, tzinfo=UTC)


def test_naive_anchor_is_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        extract_time("yesterday", datetime(2023, 5, 10, 14, 0), "UTC")
    with pytest.raises(ValidationError, match="timezone-aware"):
        resolve_time_phrase("yesterday", datetime(2023, 5, 10, 14, 0))


def test_bad_arguments_say_what_to_fix() -> None:
    anchor = ANCHORS["SH"][0]
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        extract_time("yesterday", anchor, "Mars/Olympus")
    with pytest.raises(ValidationError, match="anchor must be a datetime"):
        extract_time("yesterday", date(2023, 5, 10), "UTC")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="text must be a string"):
        extract_time(None, anchor)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="prefer"):
        extract_time("yesterday", anchor, prefer="sideways")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "😀🎉🙂" * 100,
        "lorem ipsum dolor sit amet, " * 400,
        "1" * 10_000,
        "1/" * 5_000,
        "2023-" * 2_000,
        "in " * 3_400,
        "last " * 2_000,
        "May " * 2_500,
        "3 days " * 1_500,
        "上" * 10_000,
        "一二三四五六七八九十" * 1_000,
        "\x00\n\t" * 3_000,
    ],
    ids=lambda t: f"{t[:8]!r}x{len(t)}",
)
def test_odd_input_runs(text: str) -> None:
    anchor, zone = ANCHORS["SH"]
    found = extract_all_times(text, anchor, zone)
    assert all(isinstance(m, TimeMatch) for m in found)
    assert resolve_time_phrase(text, anchor, zone) is None or len(found) > 0


def test_ten_thousand_characters_of_dense_times() -> None:
    anchor, zone = ANCHORS["SH"]
    text = "the 1st of May, 2023 last friday 上周三 3天前 " * 250
    found = extract_all_times(text, anchor, zone)
    assert len(found) == 1000
    assert [m.phrase for m in found[:4]] == ["the 1st of May, 2023", "last friday", "上周三", "3天前"]


def test_all_times_in_order_and_longest_wins() -> None:
    anchor, zone = ANCHORS["SH"]
    text = "I moved last March, started work on May 8th, 2023; 上周三我见了他. The day before yesterday too."
    found = extract_all_times(text, anchor, zone)
    assert [(m.phrase, m.language) for m in found] == [
        ("last March", "en"),
        ("May 8th, 2023", "en"),
        ("上周三", "zh"),
        ("The day before yesterday", "en"),
    ]
    assert all(text[m.span[0] : m.span[1]] == m.phrase for m in found)
    assert extract_time(text, anchor, zone) == found[0]


# (phrase, anchor, start, end, granularity): one of each kind through resolve_time_phrase
PHRASES = [
    ("next Friday", "SH", "2023-05-19", "2023-05-20", G.DAY),
    ("next Friday evening", "SH", "2023-05-19 18:00", "2023-05-20", G.DAY),
    ("coming Friday", "SH", "2023-05-12", "2023-05-13", G.DAY),
    ("last March", "SH", "2023-03-01", "2023-04-01", G.MONTH),
    ("2023-05-08", "SH", "2023-05-08", "2023-05-09", G.DAY),
    ("2023-05", "SH", "2023-05-01", "2023-06-01", G.MONTH),
    ("2023.05.08", "SH", "2023-05-08", "2023-05-09", G.DAY),
    ("2023-05-08 09:30", "SH", "2023-05-08 09:30", "2023-05-08 09:30", G.INSTANT),
    ("上周三", "SH", "2023-05-03", "2023-05-04", G.DAY),
    ("2022", "SH", "2022-01-01", "2023-01-01", G.YEAR),
    ("March", "SH", "2023-03-01", "2023-04-01", G.MONTH),
    ("summer", "SH", "2022-06-01", "2022-09-01", G.MONTH),
    ("the weekend", "SH", "2023-05-06", "2023-05-08", G.WEEK),
    ("yesterday", "SH", "2023-05-09", "2023-05-10", G.DAY),
    ("3 days ago", "SH", "2023-05-07", "2023-05-08", G.DAY),
    ("a week from now", "SH", "2023-05-15", "2023-05-22", G.WEEK),
    ("three months ago", "SH", "2023-02-01", "2023-03-01", G.MONTH),
    ("三个月前", "SH", "2023-02-01", "2023-03-01", G.MONTH),
    ("半年前", "SH", "2022-11-01", "2022-12-01", G.MONTH),
    ("May 8th, 2023.", "SH", "2023-05-08", "2023-05-09", G.DAY),
    ("March of 2021", "SH", "2021-03-01", "2021-04-01", G.MONTH),
    ("Friday", "SH", "2023-05-05", "2023-05-06", G.DAY),
    ("Wednesday", "SH", "2023-05-10", "2023-05-11", G.DAY),
    ("next week Tuesday", "SH", "2023-05-16", "2023-05-17", G.DAY),
    ("last weekend", "SH", "2023-05-06", "2023-05-08", G.WEEK),
    ("the week before last", "SH", "2023-04-24", "2023-05-01", G.WEEK),
    ("the month after next", "SH", "2023-07-01", "2023-08-01", G.MONTH),
    ("later this month", "SH", "2023-05-10 14:00", "2023-06-01", G.MONTH),
    ("recently", "SH", "2023-04-10", "2023-05-11", G.MONTH),
    ("the other day", "SH", "2023-05-03", "2023-05-10", G.WEEK),
    ("最近", "SH", "2023-04-10", "2023-05-11", G.MONTH),
    ("今年3月", "SH", "2023-03-01", "2023-04-01", G.MONTH),
    ("2023年5月", "SH", "2023-05-01", "2023-06-01", G.MONTH),
    ("三天后", "SH", "2023-05-13", "2023-05-14", G.DAY),
    ("winter 2022", "SH", "2022-12-01", "2023-03-01", G.MONTH),
]


@pytest.mark.parametrize(("phrase", "key", "start", "end", "gran"), PHRASES, ids=[p[0] for p in PHRASES])
def test_resolve_each_phrase_kind(phrase: str, key: str, start: str, end: str, gran: Granularity) -> None:
    anchor, zone = ANCHORS[key]
    got = resolve_time_phrase(phrase, anchor, zone)
    assert got is not None
    assert (got.start, got.end, got.granularity) == (local(start, zone), local(end, zone), gran)


@pytest.mark.parametrize("phrase", ["", "   ", "whenever", "🙂", "at some point", "2023-02-30", "13月"])
def test_resolve_unknown_phrase_is_none(phrase: str) -> None:
    anchor, zone = ANCHORS["SH"]
    assert resolve_time_phrase(phrase, anchor, zone) is None


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("on Monday", "2023-05-15", "2023-05-16"),
        ("in June", "2023-06-01", "2023-07-01"),
        ("May 8", "2024-05-08", "2024-05-09"),
        ("December 25", "2023-12-25", "2023-12-26"),
        ("in the summer", "2023-06-01", "2023-09-01"),
        ("周末", "2023-05-13", "2023-05-15"),
        ("星期一", "2023-05-15", "2023-05-16"),
        ("Wednesday", "2023-05-10", "2023-05-11"),
    ],
)
def test_prefer_future_for_bare_references(text: str, start: str, end: str) -> None:
    anchor, zone = ANCHORS["SH"]
    got = resolve_time_phrase(text, anchor, zone, prefer="future")
    assert got is not None and (got.start, got.end) == (local(start, zone), local(end, zone))


def test_weekday_conventions_hold_for_every_anchor_day() -> None:
    for zone in ("Asia/Shanghai", "America/New_York"):
        for offset in range(0, 730, 3):
            anchor = datetime(2023, 1, 1, 12, 0, tzinfo=ZoneInfo(zone)) + timedelta(days=offset)
            today = anchor.date()
            days = {}
            phrases = (
                "last Friday",
                "next Friday",
                "coming Friday",
                "this Friday",
                "Friday",
                "上周五",
                "下周五",
                "这周五",
            )
            for phrase in phrases:
                got = resolve_time_phrase(phrase, anchor, zone)
                assert got is not None and got.granularity == G.DAY
                assert got.start.weekday() == 4 and got.end == local(str(got.start.date() + timedelta(days=1)), zone)
                days[phrase] = got.start.date()
            assert 1 <= (today - days["last Friday"]).days <= 7
            assert 1 <= (days["coming Friday"] - today).days <= 7
            assert days["next Friday"] == days["下周五"]
            assert 0 <= (today - days["Friday"]).days <= 6
            week = today.isocalendar()[:2]
            assert days["this Friday"] == days["这周五"] and days["这周五"].isocalendar()[:2] == week
            assert (days["上周五"] - days["这周五"]).days == -7 and (days["下周五"] - days["这周五"]).days == 7


def test_every_rule_gives_an_ordered_range_all_year() -> None:
    phrases = [
        "last summer", "this winter", "next spring", "in the fall", "last March", "next December",
        "May 31", "Feb 29", "a month ago", "in 11 months", "last weekend", "earlier this week",
        "later this year", "recently", "去年三月", "上周末", "5月31日", "半个月前", "最近", "周末",
    ]  # fmt: skip
    for offset in range(0, 366, 5):
        anchor = datetime(2024, 1, 1, 0, 30, tzinfo=NY) + timedelta(days=offset)
        for phrase in phrases:
            got = resolve_time_phrase(phrase, anchor, "America/New_York")
            assert got is not None, (phrase, anchor)
            assert got.start <= got.end, (phrase, anchor)


def test_every_phrase_a_rule_matches_holds_one_of_the_rules_words() -> None:
    """A text with none of a rule's `words` skips that rule (most turns name no time): every phrase any
    rule matches in the sentence tables holds one of its words, and each rule matches one of them."""
    matched: set[int] = set()
    more = [
        "what did I do in the past week?", "how was the past few days", "the week before last",
        "SUNDAY of next week", "back in 2019", "on Sept. 3rd, 2021", "the 8th of Jan", "two YEARS ago",
    ]  # fmt: skip
    for text in [row[0] for row in ENGLISH + PHRASES] + more:
        for number, rule in enumerate(en.RULES):
            assert rule.words, rule.pattern.pattern  # each English rule is gated
            for m in rule.pattern.finditer(text):
                matched.add(number)
                assert rule.may_match(words(m.group(0))), (rule.pattern.pattern, m.group(0))
    assert matched == set(range(len(en.RULES))), "a rule matches no sentence here: add one"
    assert not any(rule.may_match(words("I sat down with Sam for lunch")) for rule in en.RULES)
    assert words("Im Jahr 2019") >= {"jahr", DIGIT} and DIGIT not in words("no digits")
