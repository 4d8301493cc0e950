"""Cheap time signals for retrieval: does a question ask "when", does a turn say when something happened.

`asks_when` and `mentions_time` are a regex search each (microseconds; `mentions_time` only when a time
word or a digit is there), so retrieval may run them on every candidate. `mentioned_times` resolves a
turn's time expressions against the turn's OWN time (its created_at: "yesterday" in a message of 8 May
2023 is 7 May 2023), with the full rules, cached per message, since a message's content and time never
change.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache

from memscope.models import EventTime
from memscope.timerules._calendar import DIGIT, words

__all__ = ["asks_when", "mentioned_times", "mentions_time"]

_WHEN_EN = re.compile(
    r"\b(?:when|what\s+(?:date|day|time|year|month|week|weekend)|which\s+(?:date|day|year|month|week|weekend)"
    r"|how\s+long\s+ago|how\s+long\s+(?:has|have|had|did|was|were)|since\s+when|what\s+period)\b",
    re.IGNORECASE,
)
_WHEN_ZH = re.compile(r"什么时候|甚么时候|何时|哪天|哪一天|几号|几月|哪年|哪一年|多久以前|多久之前|多长时间|哪个月")
_MONTH = (
    r"jan(?:uary)?|feb(?:ruary)?|march|april|may|june|july|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?"
    r"|nov(?:ember)?|dec(?:ember)?"
)
_DAY = r"(?:mon|tues?|wed(?:nes)?|thu(?:rs)?|fri|sat(?:ur)?|sun)(?:day)?"
_UNIT = r"(?:days?|weeks?|weekends?|months?|years?|summer|winter|spring|autumn|fall|night|morning|afternoon|evening)"
_MENTION_EN = re.compile(
    rf"\b(?:yesterday|today|tonight|tomorrow|ago|recently|lately|the\s+other\s+day|earlier\s+this"
    rf"|(?:last|next|this|past|coming|previous)\s+(?:{_UNIT}|{_DAY}|{_MONTH})"
    rf"|(?:in|since|during|back\s+in)\s+(?:(?:early|mid|late)[\s-]+)?(?:{_MONTH}|(?:19|20)\d\d)"
    rf"|{_DAY}|(?:{_MONTH})\s+\d{{1,2}}(?:st|nd|rd|th)?|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTH})"
    rf"|\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}/\d{{1,2}}/\d{{2,4}})\b",
    re.IGNORECASE,
)
_CJK = re.compile(r"[\u3400-\u9fff]")  # every match of _MENTION_ZH holds one of these characters
_MENTION_ZH = re.compile(
    r"昨天|昨日|今天|今日|明天|明日|前天|后天|今晚|昨晚|明晚|去年|今年|明年|前年|最近|近来|几天前|前几天"
    r"|[上下这這本](?:个|個)?(?:周|週|星期|礼拜|月)|周末|週末|[0-9一二三四五六七八九十]{1,3}(?:天|周|个月|年)(?:前|后|以前|之前)"
    r"|[0-9一二三四五六七八九十]{1,3}月(?:[0-9一二三四五六七八九十]{1,3}[日号])?|(?:19|20)\d\d年"
)


_DAY_STEMS = ("mon", "tue", "tues", "wed", "wednes", "thu", "thurs", "fri", "sat", "satur", "sun")
_MONTH_FORMS = (
    "jan", "january", "feb", "february", "march", "april", "may", "june", "july", "aug", "august", "sep", "sept",
    "sepember", "september", "oct", "october", "nov", "november", "dec", "december",
)  # fmt: skip
_UNIT_FORMS = (
    "day", "days", "week", "weeks", "weekend", "weekends", "month", "months", "year", "years",
    "summer", "winter", "spring", "autumn", "fall", "night", "morning", "afternoon", "evening",
)  # fmt: skip
# Every match of _MENTION_EN holds one of these words (case-folded) or a digit: a text with none skips the
# regex, which searched every position of every candidate turn (~30 us a turn against ~6 for this check).
_MENTION_WORDS = frozenset(
    {"yesterday", "today", "tonight", "tomorrow", "ago", "recently", "lately", "other", "earlier", DIGIT}
    | {stem + end for stem in _DAY_STEMS for end in ("", "day")}
    | set(_MONTH_FORMS)
    | set(_UNIT_FORMS)
)


def asks_when(query: str) -> bool:
    """True for a question about when something happened ("When did ...?", "what year", "什么时候")."""
    return bool(_WHEN_EN.search(query) or _WHEN_ZH.search(query))


def mentions_time(text: str) -> bool:
    """True when the text says when something happens ("yesterday", "last Friday", "in May", "上周三")."""
    if _CJK.search(text) and _MENTION_ZH.search(text):
        return True
    return not _MENTION_WORDS.isdisjoint(words(text)) and bool(_MENTION_EN.search(text))


def mentioned_times(message_id: str, text: str, created_at: datetime, zone: str = "UTC") -> tuple[EventTime, ...]:
    """The times a message mentions in its first _HEAD_CHARS characters, resolved against its own created_at
    in `zone` (empty when none)."""
    return _resolved(message_id, text[:_HEAD_CHARS], created_at, zone)


_HEAD_CHARS = 2_000  # the part of a turn read for times, and all the cache below keeps of it


@lru_cache(maxsize=65_536)
def _resolved(message_id: str, head: str, created_at: datetime, zone: str) -> tuple[EventTime, ...]:
    """Cached whether or not the text mentions a time: the same turns come back query after query, and the
    regex alone was 37% of fuse_scores' profile on LoCoMo's time questions."""
    from memscope.timerules import extract_all_times  # the package imports this module's siblings

    if not mentions_time(head):
        return ()
    return tuple(m.time for m in extract_all_times(head, anchor=created_at, tz=zone))
