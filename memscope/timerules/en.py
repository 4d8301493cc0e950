"""English time rules: case-insensitive, on word boundaries (so "mayor" is never May).

Conventions (weeks run Monday to Sunday):
- "last Friday": the latest Friday strictly before the anchor day (on a Friday, 7 days earlier).
- "next Friday": Friday of next week (Monday-Sunday weeks, like 下周五); "this Friday": this week's
  Friday; "coming Friday" / "this coming Friday": the first Friday strictly after the anchor day.
- "Friday", "on Friday": the anchor day if it is a Friday, else the latest past one.
- "March", "in March": the latest March not after the anchor month; "last March": strictly before it.
- "May 8" (no year): the latest May 8 on or before the anchor day.
- Bare references lean to the future instead when called with prefer="future".
- Seasons are northern-hemisphere meteorological (spring Mar-May ... winter Dec-Feb), MONTH granularity.
- "a few days ago", "the other day": the 7 days before the anchor day; "recently": the last 30 days.
- Parts of day: morning 05-12, afternoon 12-18, evening 18-24, night 18-06; granularity DAY.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from memscope.models import EventTime
from memscope.timerules import _calendar as cal
from memscope.timerules._calendar import DIGIT, Anchor, Rule

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
_PARTS = {"morning": (5, 12), "afternoon": (12, 18), "evening": (18, 24), "night": (18, 30)}

WD = r"(?P<wd>monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
MON = (
    r"(?P<mon>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
FULL_MON = r"(?P<mon>january|february|march|april|may|june|july|august|september|october|november|december)"
NUM = r"(?P<n>\d{1,3}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|an|a)"
UNIT = r"(?P<unit>day|week|month|year)s?"
SEASON = r"(?P<season>spring|summer|autumn|fall|winter)"
REL = r"(?P<rel>last|previous|this\s+past|this\s+coming|this|current|next|coming)"
DAY_ORD = r"(?P<d>\d{1,2})(?:st|nd|rd|th)?"
YEAR = r"(?P<y>\d{4})"
MODIFIER = r"(?:(?:early|mid|late)[\s-]+)?"

# A day expression may be narrowed by a following part of day: "Friday night", "yesterday morning".
PART_SUFFIX = re.compile(r"\s+(?:in\s+the\s+)?(?P<part>morning|afternoon|evening|night)\b", re.IGNORECASE)


def part_hours(word: str) -> tuple[int, int]:
    """(first hour, end hour) of a part of day named by PART_SUFFIX."""
    return _PARTS[word.lower()]


def _c(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _num(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBERS[word.lower()]


def _rel(word: str) -> int:
    w = " ".join(word.lower().split())
    if w in ("last", "previous", "this past"):
        return -1
    if w in ("next", "coming", "this coming"):
        return 1
    return 0


def _mon(m: re.Match[str]) -> int:
    return _MONTHS.index(next(name for name in _MONTHS if name.startswith(m["mon"].lower()[:3])))


def _wd(m: re.Match[str]) -> int:
    return _WEEKDAYS.index(m["wd"].lower())


_DAY_WORDS = {
    "today": 0, "tomorrow": 1, "yesterday": -1,
    "the day before yesterday": -2, "the day after tomorrow": 2,
}  # fmt: skip


def _day_word(m: re.Match[str], a: Anchor) -> EventTime:
    w = " ".join(m["w"].lower().split())
    today = a.today
    if w in _DAY_WORDS:
        return cal.day(a, today + timedelta(days=_DAY_WORDS[w]))
    if w == "tonight":
        return cal.part_of_day(a, today, _PARTS["evening"])
    if w == "last night":
        return cal.part_of_day(a, today - timedelta(days=1), _PARTS["night"])
    if w.startswith("this "):
        return cal.part_of_day(a, today, _PARTS[w[5:]])
    tomorrow = cal.at(a, today + timedelta(days=1))
    if w == "earlier today":
        return EventTime(start=cal.at(a, today), end=a.now, granularity=cal.DAY)
    return EventTime(start=a.now, end=tomorrow, granularity=cal.DAY)  # later today


def _ago(m: re.Match[str], a: Anchor) -> EventTime:
    n = _num(m["n"]) * (-1 if m["dir"].lower() == "ago" else 1)
    return cal.relative_unit(a, m["unit"].lower(), n)


def _in_n(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.relative_unit(a, m["unit"].lower(), _num(m["n"]))


def _rolling(m: re.Match[str], a: Anchor) -> EventTime:
    n = m.groupdict().get("n")
    return cal.rolling(a, m["unit"].lower(), _num(n) if n else 1)


def _rel_unit(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.relative_unit(a, m["unit"].lower(), _rel(m["rel"]))


def _unit_before_after(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.relative_unit(a, m["unit"].lower(), -2 if m["w"].lower().startswith("before") else 2)


def _earlier_later(m: re.Match[str], a: Anchor) -> EventTime:
    unit = m["unit"].lower()
    whole = cal.relative_unit(a, unit, 0)
    if m["w"].lower() == "earlier":
        return EventTime(start=whole.start, end=max(a.now, whole.start), granularity=whole.granularity)
    return EventTime(start=min(a.now, whole.end), end=whole.end, granularity=whole.granularity)


def _rel_weekday(m: re.Match[str], a: Anchor) -> EventTime:
    rel, wd, today = _rel(m["rel"]), _wd(m), a.today
    if rel < 0:
        return cal.day(a, cal.weekday_last(today, wd))
    if rel > 0 and m["rel"].lower() == "next":  # "next Friday": Friday of next week, as 下周五
        return cal.day(a, cal.monday(today, 1) + timedelta(days=wd))
    if rel > 0:  # "coming Friday", "this coming Friday": the first one after today
        return cal.day(a, cal.weekday_next(today, wd))
    return cal.day(a, cal.monday(today) + timedelta(days=wd))


def _weekday_of_week(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.day(a, cal.monday(a.today, _rel(m["rel"])) + timedelta(days=_wd(m)))


def _bare_weekday(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.day(a, cal.weekday_bare(a, _wd(m)))


def _rel_weekend(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.weekend(a, cal.monday(a.today, _rel(m["rel"])))


def _bare_weekend(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.bare_weekend(a)


def _rel_month_name(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.month_relative(a, _mon(m) + 1, _rel(m["rel"]))


def _bare_month(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.month_relative(a, _mon(m) + 1, None)


def _month_year(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.month(a, int(m["y"]), _mon(m) + 1)


def _month_day(m: re.Match[str], a: Anchor) -> EventTime | None:
    if m["mon"] == "may" and m["y"] is None and m.group(0)[0].isdigit():
        return None  # "3 may be", a modal verb after a number, not 3 May
    if m["y"]:
        return cal.day(a, date(int(m["y"]), _mon(m) + 1, int(m["d"])))
    return cal.month_day_bare(a, _mon(m) + 1, int(m["d"]))


def _year(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.year(a, int(m["y"]))


def _year_before_after(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.year(a, a.today.year + (-2 if m["w"].lower().startswith("before") else 2))


def _rel_season(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.season_relative(a, m["season"].lower(), _rel(m["rel"]))


def _bare_season(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.season_relative(a, m["season"].lower(), None)


def _season_year(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.season(a, m["season"].lower(), int(m["y"]))


def _few(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.few_days_ago(a)


def _past_few(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.rolling(a, "day", cal.FEW_DAYS)


def _recently(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.recently(a)


_DAY_WORD = (
    r"\b(?P<w>the\s+day\s+before\s+yesterday|the\s+day\s+after\s+tomorrow|today|tonight|tomorrow|yesterday"
    r"|this\s+(?:morning|afternoon|evening)|last\s+night|earlier\s+today|later\s+today)\b"
)

# What each rule's matches must hold (see Rule.words), case-folded.
_W_DAY = frozenset({"today", "tonight", "tomorrow", "yesterday", "morning", "afternoon", "evening", "night"})
_W_UNIT = frozenset({"day", "days", "week", "weeks", "month", "months", "year", "years"})
_W_WEEKDAY = frozenset(_WEEKDAYS)
_W_MONTH = frozenset(_MONTHS)
_W_MON = _W_MONTH | {"jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"}
_W_SEASON = frozenset({"spring", "summer", "autumn", "fall", "winter"})
_W_DAYS = frozenset({"day", "days"})

RULES = (
    Rule(_c(_DAY_WORD), _day_word, _W_DAY),
    Rule(_c(rf"\b{NUM}\s+{UNIT}\s+(?P<dir>ago|from\s+now)\b"), _ago, _W_UNIT),
    Rule(_c(rf"\bin\s+{NUM}\s+{UNIT}\b"), _in_n, _W_UNIT),
    Rule(_c(rf"\b(?:past|last|previous)\s+{NUM}\s+{UNIT}\b"), _rolling, _W_UNIT),
    Rule(_c(r"\bpast\s+(?P<unit>day|week|month|year)\b"), _rolling, _W_UNIT),
    Rule(_c(rf"\b{REL}\s+(?P<unit>week|month|year)\b"), _rel_unit, _W_UNIT),
    Rule(_c(r"\bthe\s+(?P<unit>week|month)\s+(?P<w>before\s+last|after\s+next)\b"), _unit_before_after, _W_UNIT),
    Rule(_c(r"\bthe\s+year\s+(?P<w>before\s+last|after\s+next)\b"), _year_before_after, _W_UNIT),
    Rule(_c(r"\b(?P<w>earlier|later)\s+this\s+(?P<unit>week|month|year)\b"), _earlier_later, _W_UNIT),
    Rule(_c(rf"\b{REL}\s+{WD}\b"), _rel_weekday, _W_WEEKDAY),
    Rule(_c(rf"\b(?:on\s+)?{WD}\s+(?:of\s+)?{REL}\s+week\b"), _weekday_of_week, _W_WEEKDAY),
    Rule(_c(rf"\b{REL}\s+week(?:'s)?\s+(?:on\s+)?{WD}\b"), _weekday_of_week, _W_WEEKDAY),
    Rule(_c(rf"\b(?:on\s+)?{WD}\b"), _bare_weekday, _W_WEEKDAY),
    Rule(_c(rf"\b{REL}\s+weekend\b"), _rel_weekend, frozenset({"weekend"})),
    Rule(_c(r"\b(?:on|at|over|during)\s+the\s+weekend\b"), _bare_weekend, frozenset({"weekend"})),
    Rule(_c(rf"\b{REL}\s+{MODIFIER}{FULL_MON}\b"), _rel_month_name, _W_MONTH),
    Rule(_c(rf"\b(?:(?:in|during)\s+{MODIFIER}|(?:early|mid|late)[\s-]+){FULL_MON}\b"), _bare_month, _W_MONTH),
    Rule(_c(rf"\b(?:(?:in|during)\s+)?{MODIFIER}{MON},?\s+(?:of\s+)?{YEAR}\b"), _month_year, _W_MON),
    Rule(_c(rf"\b{MON}\s+{DAY_ORD}(?:,?\s+{YEAR})?\b"), _month_day, _W_MON),
    Rule(_c(rf"\b(?:the\s+)?{DAY_ORD}\s+(?:of\s+)?{MON}(?:,?\s+{YEAR})?\b"), _month_day, _W_MON),
    Rule(_c(r"\b(?:in|during|back\s+in|the\s+year)\s+(?P<y>(?:19|20)\d\d)(?![\d/-]|\.\d)"), _year, frozenset({DIGIT})),
    Rule(_c(rf"\b{REL}\s+{SEASON}\b"), _rel_season, _W_SEASON),
    Rule(_c(rf"\b(?:in|during|over)\s+(?:the\s+)?{SEASON}\b"), _bare_season, _W_SEASON),
    Rule(_c(rf"\b(?:(?:in|during|over)\s+(?:the\s+)?)?{SEASON},?\s+(?:of\s+)?{YEAR}\b"), _season_year, _W_SEASON),
    Rule(_c(r"\b(?:a\s+)?(?:few|couple(?:\s+of)?|several)\s+days\s+ago\b|\bthe\s+other\s+day\b"), _few, _W_DAYS),
    Rule(_c(r"\b(?:the\s+)?(?:past|last)\s+(?:few|couple(?:\s+of)?|several)\s+days\b"), _past_few, _W_DAYS),
    Rule(_c(r"\b(?:recently|lately)\b"), _recently, frozenset({"recently", "lately"})),
)

# Whole-phrase forms too bare to trust inside free text ("2022", "March", "summer", "weekend").
PHRASE_RULES = (
    Rule(_c(r"(?:the\s+year\s+)?(?P<y>\d{4})"), _year),
    Rule(_c(FULL_MON), _bare_month),
    Rule(_c(rf"(?:the\s+)?{SEASON}"), _bare_season),
    Rule(_c(r"(?:the\s+)?weekend"), _bare_weekend),
)
