"""Chinese time rules (simplified, plus a few traditional forms), Arabic or Chinese numerals.

Conventions (weeks run Monday to Sunday):
- 上周三 / 下周五 / 这周日: that weekday of last / next / this week (always week-relative, so on a
  Saturday 上周五 is eight days back while English "last Friday" is yesterday).
- A bare 周三 / 星期天: the anchor day if it matches, else the latest past one (prefer="future": next).
- 三月 / 5月 (no year): the latest such month not after the anchor month; 5月8日: the latest such
  day on or before the anchor day. 去年三月 is March of last year.
- 周末 (bare): the current weekend on Saturday/Sunday, else the last one (prefer="future": the coming one).
- 前几天 / 几天前: the 7 days before the anchor day; 最近 / 近来: the last 30 days ("最近的…" is
  skipped because it usually means "nearest").
- 每周一 (every Monday), 一周三次 (three times a week), 这个星期一直 (all this week) are not weekdays.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from memscope.models import EventTime
from memscope.timerules import _calendar as cal
from memscope.timerules._calendar import Anchor, Rule

_DIGITS = {
    "零": 0,
    "\u3007": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_WEEKDAY = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6}
_REL = {"上上": -2, "上": -1, "这": 0, "這": 0, "本": 0, "下": 1, "下下": 2}
_DAY_WORDS = {
    "大前天": -3, "前天": -2, "昨天": -1, "昨日": -1, "今天": 0, "今日": 0,
    "明天": 1, "明日": 1, "后天": 2, "後天": 2, "大后天": 3, "大後天": 3,
}  # fmt: skip
_EVENING = {"今晚": 0, "昨晚": -1, "昨夜": -1, "明晚": 1}
_YEAR_WORDS = {"大前年": -3, "前年": -2, "去年": -1, "今年": 0, "明年": 1, "后年": 2, "後年": 2}
_PARTS = {
    "凌晨": (0, 6), "早上": (5, 12), "早晨": (5, 12), "上午": (5, 12), "中午": (11, 14),
    "下午": (12, 18), "傍晚": (17, 20), "晚上": (18, 24), "夜里": (18, 30), "夜晚": (18, 30),
}  # fmt: skip

NUM = r"(?:\d{1,3}|[零\u3007一二两三四五六七八九十]{1,3})"
REL = r"(?P<rel>上上|上|下下|下|这|這|本)"
WEEK = r"(?:周|週|星期|礼拜|禮拜)"
M_NUM = r"(?:\d{1,2}|[一二三四五六七八九十]{1,3})"  # no 两: 两月 is "two months", not February
MONTH_DAY = rf"(?:(?P<m>{M_NUM})月份?(?:(?P<d>{M_NUM})[日号號])?)"
UNITS = r"(?:(?P<day>天|日)|(?P<week>周|週|个?星期|个?礼拜)|个(?P<month>月)|(?P<year>年))"

# After 星期一 these make a word (一直 "all along", 一起 "together"...), so 一 is no weekday there.
_YI_WORDS = "[直起样樣下共般定切点點些边邊向同致旦]"

# A day expression may be narrowed by a directly following part of day: 昨天晚上, 上周三下午.
PART_SUFFIX = re.compile(r"(?P<part>凌晨|早上|早晨|上午|中午|下午|傍晚|晚上|夜里|夜晚)")


def part_hours(word: str) -> tuple[int, int]:
    """(first hour, end hour) of a part of day named by PART_SUFFIX."""
    return _PARTS[word]


def cn_int(text: str) -> int:
    """An Arabic or Chinese numeral: 12, 十二, 二十三, 两, 二〇二三; ValueError if it is not one."""
    if text.isdigit():
        return int(text)
    try:
        if "十" in text:
            tens, _, ones = text.partition("十")
            return (_DIGITS[tens] if tens else 1) * 10 + (_DIGITS[ones] if ones else 0)
        value = 0
        for ch in text:
            value = value * 10 + _DIGITS[ch]
        return value
    except KeyError as exc:
        raise ValueError(f"not a number: {text!r}") from exc


def _day_word(m: re.Match[str], a: Anchor) -> EventTime:
    word = m.group(0)
    if word in _EVENING:
        return cal.part_of_day(a, a.today + timedelta(days=_EVENING[word]), _PARTS["晚上"])
    if word == "今早":
        return cal.part_of_day(a, a.today, _PARTS["早上"])
    return cal.day(a, a.today + timedelta(days=_DAY_WORDS[word]))


def _rel_week(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.relative_unit(a, "week", _REL[m["rel"]])


def _weekday(m: re.Match[str], a: Anchor) -> EventTime:
    wd = _WEEKDAY[m["wd"]]
    if m["rel"] is None:
        return cal.day(a, cal.weekday_bare(a, wd))
    return cal.day(a, cal.monday(a.today, _REL[m["rel"]]) + timedelta(days=wd))


def _weekend(m: re.Match[str], a: Anchor) -> EventTime:
    if m["rel"] is None:
        return cal.bare_weekend(a)
    return cal.weekend(a, cal.monday(a.today, _REL[m["rel"]]))


def _rel_month(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.relative_unit(a, "month", _REL[m["rel"]])


def _in_year(a: Anchor, y: int, m: re.Match[str]) -> EventTime:
    if m["m"] is None:
        return cal.year(a, y)
    mon = cn_int(m["m"])
    if m["d"] is None:
        return cal.month(a, y, mon)
    return cal.day(a, date(y, mon, cn_int(m["d"])))


def _rel_year(m: re.Match[str], a: Anchor) -> EventTime:
    return _in_year(a, a.today.year + _YEAR_WORDS[m["ry"]], m)


def _this_day_of_year(m: re.Match[str], a: Anchor) -> EventTime:
    """去年的今天: the anchor's month and day in another year (ValueError on a missing Feb 29)."""
    return cal.day(a, a.today.replace(year=a.today.year + _YEAR_WORDS[m["ry"]]))


def _abs_year(m: re.Match[str], a: Anchor) -> EventTime:
    return _in_year(a, cn_int(m["y"]), m)


def _month_day(m: re.Match[str], a: Anchor) -> EventTime | None:
    mon = cn_int(m["m"])
    if not 1 <= mon <= 12:
        return None
    if m["d"] is None:
        return cal.month_relative(a, mon, None)
    return cal.month_day_bare(a, mon, cn_int(m["d"]))


def _ago(m: re.Match[str], a: Anchor) -> EventTime | None:
    unit = "day" if m["day"] else "week" if m["week"] else "month" if m["month"] else "year"
    if m["n"] == "半":  # 半年 is six months, 半个月 fifteen days
        if unit not in ("month", "year"):
            return None
        unit, n = ("month", 6) if unit == "year" else ("day", 15)
    else:
        n = cn_int(m["n"])
    return cal.relative_unit(a, unit, -n if m["dir"] == "前" else n)


def _rolling(m: re.Match[str], a: Anchor) -> EventTime:
    unit = "day" if m["day"] else "week" if m["week"] else "month" if m["month"] else "year"
    return cal.rolling(a, unit, cn_int(m["n"]))


def _few(m: re.Match[str], a: Anchor) -> EventTime:
    if m.group(0) in ("这几天", "這幾天", "最近几天", "最近幾天", "近几天"):
        return cal.rolling(a, "day", cal.FEW_DAYS)
    return cal.few_days_ago(a)


def _recently(m: re.Match[str], a: Anchor) -> EventTime:
    return cal.recently(a)


RULES = (
    Rule(
        re.compile(r"大前天|大后天|大後天|前天|昨天|昨日|今天|今日|明天|明日|后天|後天|今晚|昨晚|昨夜|明晚|今早"),
        _day_word,
    ),
    Rule(re.compile(rf"{REL}个?{WEEK}(?![末围圍边邊期年岁歲到])"), _rel_week),
    Rule(
        re.compile(
            rf"(?:{REL}个?{WEEK}|(?<![\d零\u3007一二两三四五六七八九十几每]){WEEK})(?P<wd>[一二三四五六日天])(?![次回遍])(?!(?<=一){_YI_WORDS})"
        ),
        _weekday,
    ),
    Rule(re.compile(rf"(?:{REL}个?)?(?:周末|週末)"), _weekend),
    Rule(re.compile(rf"{REL}个?月"), _rel_month),
    Rule(re.compile(rf"(?P<ry>大前年|前年|(?<![过過])去年|今年|明年|后年|後年){MONTH_DAY}?"), _rel_year),
    Rule(re.compile(r"(?P<ry>大前年|前年|(?<![过過])去年|明年|后年|後年)的?今天"), _this_day_of_year),
    Rule(re.compile(rf"(?<!\d)(?P<y>\d{{4}}|[零\u3007一二三四五六七八九]{{4}})年{MONTH_DAY}?"), _abs_year),
    Rule(re.compile(rf"(?<![\d零\u3007一二两三四五六七八九十]){MONTH_DAY}"), _month_day),
    Rule(
        re.compile(
            rf"(?<![\d零\u3007一二两三四五六七八九十])(?P<n>{NUM}|半)"
            rf"{UNITS}"
            r"(?:之|以)?(?P<dir>前|后|後)"
        ),
        _ago,
    ),
    Rule(re.compile(rf"(?:最近|过去|過去|近)(?P<n>{NUM}){UNITS}"), _rolling),
    Rule(
        re.compile(r"前几天|几天前|前些天|前些日子|这几天|最近几天|近几天|前幾天|幾天前|這幾天|最近幾天"),
        _few,
    ),
    Rule(re.compile(r"(?:最近|近来|近來|近期)(?!的)"), _recently),
)
