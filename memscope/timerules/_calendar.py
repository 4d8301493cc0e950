"""Calendar arithmetic shared by the English and Chinese rules: days, ISO weeks, months, seasons.

Weeks run Monday to Sunday (ISO 8601, also the Chinese convention). Ranges are half-open
[start, end) of aware datetimes at local wall-clock times in the anchor's zone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Literal

from memscope.models import EventTime, Granularity

Prefer = Literal["past", "future"]

DAY = Granularity.DAY
WEEK = Granularity.WEEK
MONTH = Granularity.MONTH
YEAR = Granularity.YEAR

# Northern-hemisphere meteorological seasons: the month each begins; each lasts three months.
SEASON_START = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}
FEW_DAYS = 7  # "a few days ago", "前几天": the 7 days before the anchor day
RECENT_DAYS = 30  # "recently", "最近": the 30 days up to and including the anchor day


@dataclass(frozen=True)
class Anchor:
    """The reference moment in the user's zone, and which way a bare "Monday" or "March" leans."""

    now: datetime
    zone: tzinfo
    prefer: Prefer = "past"

    @property
    def today(self) -> date:
        """The anchor's calendar day in the user's zone."""
        return self.now.date()


Handler = Callable[[re.Match[str], Anchor], EventTime | None]


DIGIT = "#"  # in a text's `words`: the text has a digit
_TOKENS = re.compile(r"[^\W_]+")
_DIGIT = re.compile(r"\d")


def words(text: str) -> frozenset[str]:
    """The text's case-folded words, and DIGIT when it has a digit: what `Rule.words` is checked against."""
    found = set(_TOKENS.findall(text.casefold()))
    if _DIGIT.search(text):
        found.add(DIGIT)
    return frozenset(found)


@dataclass(frozen=True)
class Rule:
    """One precompiled pattern and the function turning its match into an event time.

    `words`: every match holds one of these (case-folded, or DIGIT for a digit), so a text with none of
    them skips the rule (a regex search per rule per text was most of a turn's 0.3 ms); empty: always run.
    """

    pattern: re.Pattern[str]
    handler: Handler
    words: frozenset[str] = frozenset()

    def may_match(self, text_words: frozenset[str]) -> bool:
        """False when the text (given as `words(text)`) cannot hold a match."""
        return not self.words or not self.words.isdisjoint(text_words)


def at(a: Anchor, d: date, hour: int = 0) -> datetime:
    """Local wall-clock `hour` hours after midnight starting day `d` (hour 24 is the next midnight)."""
    return datetime(d.year, d.month, d.day, tzinfo=a.zone) + timedelta(hours=hour)


def span(a: Anchor, first: date, stop: date, gran: Granularity, h0: int = 0, h1: int = 0) -> EventTime:
    """[first + h0 hours, stop + h1 hours) in the anchor's zone."""
    return EventTime(start=at(a, first, h0), end=at(a, stop, h1), granularity=gran)


def day(a: Anchor, d: date) -> EventTime:
    """The whole local day `d`."""
    return span(a, d, d + timedelta(days=1), DAY)


def part_of_day(a: Anchor, d: date, hours: tuple[int, int]) -> EventTime:
    """A part of day `d` given as (first hour, end hour); an end past 24 runs into the next day."""
    return span(a, d, d, DAY, hours[0], hours[1])


def monday(d: date, weeks: int = 0) -> date:
    """The Monday of `d`'s ISO week, shifted by `weeks` weeks."""
    return d - timedelta(days=d.weekday()) + timedelta(weeks=weeks)


def week(a: Anchor, d: date) -> EventTime:
    """The Monday-to-Sunday week containing `d`."""
    first = monday(d)
    return span(a, first, first + timedelta(days=7), WEEK)


def weekend(a: Anchor, week_monday: date) -> EventTime:
    """Saturday 00:00 to Monday 00:00 of the week starting `week_monday` (granularity WEEK)."""
    return span(a, week_monday + timedelta(days=5), week_monday + timedelta(days=7), WEEK)


def bare_weekend(a: Anchor) -> EventTime:
    """The bare weekend: the current one on Saturday/Sunday, else the last one (past) or the coming one."""
    today = a.today
    if today.weekday() >= 5 or a.prefer == "future":
        return weekend(a, monday(today))
    return weekend(a, monday(today, -1))


def shift_month(year: int, month: int, k: int) -> tuple[int, int]:
    """(year, month) moved by `k` months."""
    idx = year * 12 + month - 1 + k
    return idx // 12, idx % 12 + 1


def add_months(d: date, k: int) -> date:
    """`d` moved by `k` months, the day clamped to the target month's length."""
    y, m = shift_month(d.year, d.month, k)
    ny, nm = shift_month(y, m, 1)
    last = (date(ny, nm, 1) - timedelta(days=1)).day
    return date(y, m, min(d.day, last))


def month(a: Anchor, y: int, m: int) -> EventTime:
    """The whole calendar month."""
    ny, nm = shift_month(y, m, 1)
    return span(a, date(y, m, 1), date(ny, nm, 1), MONTH)


def year(a: Anchor, y: int) -> EventTime:
    """The whole calendar year."""
    return span(a, date(y, 1, 1), date(y + 1, 1, 1), YEAR)


def relative_unit(a: Anchor, unit: str, k: int) -> EventTime:
    """The calendar day/week/month/year `k` units from the anchor's (k=-1: last week, 0: this week)."""
    today = a.today
    if unit == "day":
        return day(a, today + timedelta(days=k))
    if unit == "week":
        return week(a, today + timedelta(weeks=k))
    if unit == "month":
        return month(a, *shift_month(today.year, today.month, k))
    return year(a, today.year + k)


def rolling(a: Anchor, unit: str, n: int) -> EventTime:
    """The last `n` units up to and including the anchor day ("the past 3 days")."""
    today = a.today
    if unit == "day":
        first = today - timedelta(days=n)
    elif unit == "week":
        first = today - timedelta(weeks=n)
    else:
        first = add_months(today, -n * (12 if unit == "year" else 1))
    gran = {"day": DAY, "week": WEEK, "month": MONTH, "year": YEAR}[unit]
    return span(a, first, today + timedelta(days=1), gran)


def few_days_ago(a: Anchor) -> EventTime:
    """The FEW_DAYS days before the anchor day, the anchor day excluded."""
    return span(a, a.today - timedelta(days=FEW_DAYS), a.today, WEEK)


def recently(a: Anchor) -> EventTime:
    """The RECENT_DAYS days up to and including the anchor day."""
    return span(a, a.today - timedelta(days=RECENT_DAYS), a.today + timedelta(days=1), MONTH)


def weekday_last(today: date, wd: int) -> date:
    """The latest weekday `wd` (0=Monday) strictly before `today`."""
    return today - timedelta(days=(today.weekday() - wd) % 7 or 7)


def weekday_next(today: date, wd: int) -> date:
    """The first weekday `wd` strictly after `today`."""
    return today + timedelta(days=(wd - today.weekday()) % 7 or 7)


def weekday_bare(a: Anchor, wd: int) -> date:
    """A bare weekday: today if it matches, else the latest past one (or the next, prefer='future')."""
    today = a.today
    if a.prefer == "future":
        return today + timedelta(days=(wd - today.weekday()) % 7)
    return today - timedelta(days=(today.weekday() - wd) % 7)


def month_relative(a: Anchor, m: int, rel: int | None) -> EventTime:
    """Month `m` by relation: -1 latest strictly before the anchor month, 0 this year's, +1 next after.

    None is a bare month name: the latest not after the anchor month (or the first not before it).
    """
    today = a.today
    if rel is None:
        rel = 1 if a.prefer == "future" else -1
        before, after = m <= today.month, m >= today.month
    else:
        before, after = m < today.month, m > today.month
    if rel < 0:
        return month(a, today.year if before else today.year - 1, m)
    if rel > 0:
        return month(a, today.year if after else today.year + 1, m)
    return month(a, today.year, m)


def month_day_bare(a: Anchor, m: int, d: int) -> EventTime | None:
    """A date with no year: the latest on or before the anchor day (or the first on or after it)."""
    today = a.today
    future = a.prefer == "future"
    for i in range(9):  # Feb 29 may need up to 8 years to find a leap year
        try:
            candidate = date(today.year + (i if future else -i), m, d)
        except ValueError:
            continue
        if (candidate >= today) if future else (candidate <= today):
            return day(a, candidate)
    return None


def season(a: Anchor, name: str, start_year: int) -> EventTime:
    """The season beginning in `start_year` (winter Y runs from December Y to the end of February Y+1)."""
    sm = SEASON_START[name]
    ey, em = shift_month(start_year, sm, 3)
    return span(a, date(start_year, sm, 1), date(ey, em, 1), MONTH)


def season_relative(a: Anchor, name: str, rel: int | None) -> EventTime:
    """last: latest ended by the anchor day; this: this year's (winter in Jan/Feb: the current one);
    next: first starting after the anchor day; None (bare): latest started (or first not yet ended)."""
    today = a.today
    options = [season(a, name, y) for y in range(today.year - 2, today.year + 2)]
    now = at(a, today)
    if rel is None:
        if a.prefer == "future":
            return next(s for s in options if s.end > now)
        return [s for s in options if s.start <= now][-1]
    if rel < 0:
        return [s for s in options if s.end <= now][-1]
    if rel > 0:
        return next(s for s in options if s.start > now)
    this_year = today.year - 1 if name == "winter" and today.month <= 2 else today.year
    return season(a, name, this_year)
