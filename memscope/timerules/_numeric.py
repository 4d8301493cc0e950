"""Language-neutral numeric dates: 2023-05-08, 2023-05-08T14:30+08:00, 2023/05/08, 2023.05.08,
05/08/2023 and 2023-05.

A slash date with the year last is read in US order (month/day/year). Day-first forms such as
8.5.2023 or 08/05/23 are ambiguous and deliberately not recognised.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

from memscope.models import EventTime, Granularity
from memscope.timerules._calendar import Anchor, Rule, day, month

_ISO = re.compile(
    r"(?<![\d-])(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})"
    r"(?:[T ](?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.\d{1,6})?)?(?P<z>Z|[+-]\d{2}:?\d{2})?)?"
    r"(?!-?\d)"
)
_YMD = re.compile(r"(?<![\d/.])(?P<y>\d{4})(?P<sep>[/.])(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})(?![/.]?\d)")
_US = re.compile(r"(?<![\d/])(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})(?!/?\d)")
_ISO_MONTH = re.compile(r"(?<![\d-])(?P<y>\d{4})-(?P<m>\d{2})(?![\d:]|-\d)")


def _iso(m: re.Match[str], a: Anchor) -> EventTime:
    d = date(int(m["y"]), int(m["m"]), int(m["d"]))
    if m["H"] is None:
        return day(a, d)
    zone = a.zone
    if m["z"]:
        z = m["z"].replace(":", "")
        zone = (
            UTC
            if z == "Z"
            else timezone((1 if z[0] == "+" else -1) * timedelta(hours=int(z[1:3]), minutes=int(z[3:5])))
        )
    moment = datetime(d.year, d.month, d.day, int(m["H"]), int(m["M"]), int(m["S"] or 0), tzinfo=zone)
    moment = moment.astimezone(a.zone)
    return EventTime(start=moment, end=moment, granularity=Granularity.INSTANT)


def _ymd(m: re.Match[str], a: Anchor) -> EventTime:
    return day(a, date(int(m["y"]), int(m["m"]), int(m["d"])))


def _iso_month(m: re.Match[str], a: Anchor) -> EventTime | None:
    mon = int(m["m"])
    return month(a, int(m["y"]), mon) if 1 <= mon <= 12 else None


RULES = (
    Rule(_ISO, _iso),
    Rule(_YMD, _ymd),
    Rule(_US, _ymd),
    Rule(_ISO_MONTH, _iso_month),
)
