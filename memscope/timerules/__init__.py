"""Rule-based time understanding for English and Chinese: no LLM, stdlib only, regexes compiled at import.

`extract_time` finds a time expression in a query or message ("what did I do last Friday?",
"我上周三去了哪里?") and `resolve_time_phrase` turns one phrase an LLM extracted ("next Friday")
into an `EventTime`. Relative phrases resolve against `anchor` (the message's own time) after it is
converted into the user's zone `tz`; the returned datetimes are aware in that zone and a day is
[00:00, next 00:00) local time. Conventions for each language are in `en.py` and `zh.py`; numeric
dates (ISO 2023-05-08, 2023/05/08, US 05/08/2023) in `_numeric.py`.

Where expressions overlap, the longest wins ("the day before yesterday" over "yesterday").
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from memscope.errors import ValidationError
from memscope.models import EventTime, Granularity
from memscope.timerules import _numeric, en, zh
from memscope.timerules._calendar import DIGIT, Anchor, Prefer, Rule, at, part_of_day, words

__all__ = ["TimeMatch", "extract_all_times", "extract_query_time", "extract_time", "resolve_time_phrase"]

_FAR = timedelta(days=400)  # a second anchor: a phrase that resolves the same from both is absolute
_MONTH = timedelta(days=31)
_VAGUE = re.compile(r"recently|lately|最近|近来", re.IGNORECASE)

_CJK = re.compile(r"[\u3400-\u9fff]")
_PartHours = Callable[[str], tuple[int, int]]
# (language, rules, a quick gate the text must pass (None: each rule's words), part-of-day suffix, its hours)
_RULE_SETS: tuple[tuple[str, tuple[Rule, ...], re.Pattern[str] | None, re.Pattern[str], _PartHours], ...] = (
    ("en", en.RULES, None, en.PART_SUFFIX, en.part_hours),
    ("zh", zh.RULES, _CJK, zh.PART_SUFFIX, zh.part_hours),
)


@dataclass(frozen=True)
class TimeMatch:
    """A time expression found in text: the matched phrase, its [start, end) span in the text,
    the resolved time, and the language of the rule ("en" or "zh"; numeric dates follow the text)."""

    phrase: str
    span: tuple[int, int]
    time: EventTime
    language: str


def _zone(tz: str | tzinfo) -> tzinfo:
    if isinstance(tz, tzinfo):
        return tz
    if not isinstance(tz, str):
        raise ValidationError(f"tz must be an IANA zone name or a tzinfo, got {type(tz).__name__}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"unknown time zone {tz!r}; give an IANA name such as 'Asia/Shanghai' or 'UTC'") from exc


def _anchor(anchor: datetime, tz: str | tzinfo, prefer: Prefer) -> Anchor:
    if not isinstance(anchor, datetime):
        raise ValidationError(f"anchor must be a datetime, got {type(anchor).__name__}")
    if anchor.tzinfo is None or anchor.utcoffset() is None:
        raise ValidationError("anchor must be timezone-aware (give a tzinfo, e.g. datetime.now(UTC))")
    if prefer not in ("past", "future"):
        raise ValidationError(f"prefer must be 'past' or 'future', got {prefer!r}")
    zone = _zone(tz)
    return Anchor(now=anchor.astimezone(zone), zone=zone, prefer=prefer)


def _check_text(text: str, what: str) -> str:
    if not isinstance(text, str):
        raise ValidationError(f"{what} must be a string, got {type(text).__name__}")
    return text


def _apply(rule: Rule, m: re.Match[str], a: Anchor) -> EventTime | None:
    try:
        return rule.handler(m, a)
    except (ValueError, OverflowError):  # a date outside the calendar: 2023-02-30, year 0, year 10000
        return None


def _narrow(
    text: str, end: int, time: EventTime, a: Anchor, suffix: re.Pattern[str], hours: _PartHours
) -> tuple[int, EventTime]:
    """Narrow a whole-day result by a part of day right after it ("Friday night", "昨天下午")."""
    day_ = time.start.date()
    if time.granularity != Granularity.DAY or time.start != at(a, day_) or time.end != at(a, day_, 24):
        return end, time
    m = suffix.match(text, end)
    if m is None:
        return end, time
    return m.end(), part_of_day(a, day_, hours(m["part"]))


def _candidates(text: str, a: Anchor) -> list[TimeMatch]:
    found: list[TimeMatch] = []
    present = words(text)
    for lang, rules, gate, suffix, hours in _RULE_SETS:
        if gate is not None and not gate.search(text):
            continue
        for rule in rules:
            if not rule.may_match(present):
                continue
            for m in rule.pattern.finditer(text):
                time = _apply(rule, m, a)
                if time is not None:
                    end, time = _narrow(text, m.end(), time, a, suffix, hours)
                    found.append(TimeMatch(text[m.start() : end], (m.start(), end), time, lang))
    if DIGIT in present:
        lang = "zh" if _CJK.search(text) else "en"
        for rule in _numeric.RULES:
            for m in rule.pattern.finditer(text):
                time = _apply(rule, m, a)
                if time is not None:
                    found.append(TimeMatch(m.group(0), m.span(), time, lang))
    return found


def extract_all_times(
    text: str, anchor: datetime, tz: str | tzinfo = "UTC", *, prefer: Prefer = "past"
) -> list[TimeMatch]:
    """Every non-overlapping time expression in `text`, resolved, in text order (the longest wins overlaps).

    `prefer` sets which way bare references lean ("Monday", "March", "May 8", "周末"): "past"
    (the latest on or before the anchor, the default) or "future" (the first on or after it).
    """
    text = _check_text(text, "text")
    a = _anchor(anchor, tz, prefer)
    if not text:
        return []
    chosen: list[TimeMatch] = []  # kept sorted by start; never overlapping, so also sorted by end
    starts: list[int] = []
    for cand in sorted(_candidates(text, a), key=lambda c: (c.span[0] - c.span[1], c.span[0])):
        start, end = cand.span
        i = bisect.bisect_right(starts, start)
        if (i == 0 or chosen[i - 1].span[1] <= start) and (i == len(chosen) or end <= chosen[i].span[0]):
            chosen.insert(i, cand)
            starts.insert(i, start)
    return chosen


def extract_time(text: str, anchor: datetime, tz: str | tzinfo = "UTC", *, prefer: Prefer = "past") -> TimeMatch | None:
    """The first time expression in `text` (a query or a message), resolved; None if there is none."""
    found = extract_all_times(text, anchor, tz, prefer=prefer)
    return found[0] if found else None


def resolve_time_phrase(
    phrase: str, anchor: datetime, tz: str | tzinfo = "UTC", *, prefer: Prefer = "past"
) -> EventTime | None:
    """Resolve one time phrase ("next Friday", "last March", "2023-05-08", "上周三") against `anchor`
    in zone `tz`; None if it is not understood. Bare "2022", "March", "summer" are accepted here,
    where the whole phrase is known to be a time, though not inside free text."""
    phrase = _check_text(phrase, "phrase")
    a = _anchor(anchor, tz, prefer)
    stripped = phrase.strip().rstrip(".")
    for rule in en.PHRASE_RULES:
        m = rule.pattern.fullmatch(stripped)
        if m is not None:
            return _apply(rule, m, a)
    found = extract_time(stripped, anchor, tz, prefer=prefer)
    return found.time if found else None


def _definite(text: str, anchor: datetime, tz: str | tzinfo) -> list[TimeMatch]:
    return [f for f in extract_all_times(text, anchor, tz) if not _VAGUE.fullmatch(f.phrase.strip())]


def extract_query_time(text: str, anchor: datetime, tz: str | tzinfo = "UTC") -> EventTime | None:
    """The time a question asks about: its first time expression, except that when it also names a
    date ("What did Joanna finish last Friday, on 23 January 2022?"), relative phrases are resolved
    against that date, not against now, and the answer spans both (the named date alone if that would
    cover more than a month).

    A phrase is absolute when it resolves the same from two anchors far apart. "Recently" and
    "lately" (最近, 近来) are left out: in a question they say little about when ("What movie has Nate
    recently seen?" asks about a film seen long before the question), and as a 30-day window they
    would outweigh what the question is about.
    """
    found = _definite(text, anchor, tz)
    if len(found) < 2:
        return found[0].time if found else None
    later = _definite(text, anchor + _FAR, tz)
    fixed = [f for f, g in zip(found, later, strict=False) if f.span == g.span and f.time == g.time]
    if not fixed:
        return found[0].time
    named = fixed[0].time
    mid = named.start + (named.effective_end() - named.start) / 2
    again = _definite(text, mid, tz)
    start = min(m.time.start for m in again)
    end = max(m.time.effective_end() for m in again)
    if end - start > _MONTH:
        return named
    return EventTime(start=start, end=end, granularity=named.granularity)
