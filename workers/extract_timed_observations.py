"""extract_timed_observations: events and plans the user ties to a time, dated by rules, never by guess.

The model returns each observation with the time phrase exactly as said ("next Friday") and the
message it came from; `memscope.timerules.resolve_time_phrase` resolves the phrase against that
message's own time in the user's zone. Only when the rules cannot is the model's ISO date used
(resolved by the same rules); with neither, the observation is kept without an event time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_validator

from memscope.engine import Context, WorkerParams, worker
from memscope.engine.llm_worker import LLMWorker
from memscope.engine.worker import user_zone
from memscope.models import EventTime, Granularity, MemoryNode
from memscope.observations import (
    clamp_importance,
    conversation_values,
    observation_node,
    pick_sources,
)
from memscope.timerules import resolve_time_phrase


class TimedObservation(BaseModel):
    """One time-bound observation as the model states it."""

    content: str
    time_phrase: str = ""
    source: int = 0
    future: bool = False  # planned or expected after the message: bare "Friday" leans forward
    date: str | None = None  # ISO fallback (YYYY-MM-DD, YYYY-MM or YYYY) when the phrase is vague
    importance: float = 0.5
    keywords: list[str] = Field(default_factory=list)

    _clamp = field_validator("importance", mode="before")(clamp_importance)


class TimedAnswer(BaseModel):
    """The time-bound observations found in the marked messages."""

    observations: list[TimedObservation] = Field(default_factory=list)


_ZH_WEEKDAYS = "一二三四五六日"
_LP, _RP = "\uff08", "\uff09"  # full-width parentheses for Chinese text


def describe_time(when: EventTime, zone: ZoneInfo, language: str = "en") -> str:
    """A readable event time for a memory's text: "on 2023-05-12 (Friday)", "in May 2023", "2023年5月"."""
    start = when.start.astimezone(zone)
    last = (when.effective_end() - timedelta(microseconds=1)).astimezone(zone)
    zh = language == "zh"
    if when.granularity is Granularity.INSTANT:
        return f"{start:%Y-%m-%d %H:%M}" if zh else f"on {start:%Y-%m-%d} at {start:%H:%M}"
    if start.date() == last.date():
        weekday = f"{_LP}周{_ZH_WEEKDAYS[start.weekday()]}{_RP}" if zh else f" ({start:%A})"
        return f"{start:%Y-%m-%d}{weekday}" if zh else f"on {start:%Y-%m-%d}{weekday}"
    whole_years = (start.month, start.day, last.month, last.day) == (1, 1, 12, 31)
    if when.granularity is Granularity.YEAR and whole_years and start.year == last.year:
        return f"{start.year}年" if zh else f"in {start.year}"
    one_month = start.day == 1 and (start.year, start.month) == (last.year, last.month)
    if when.granularity is Granularity.MONTH and one_month:
        return f"{start.year}年{start.month}月" if zh else f"in {start:%B %Y}"
    if when.granularity is Granularity.WEEK and (last.date() - start.date()).days == 6 and start.weekday() == 0:
        return f"{start:%Y-%m-%d} 那一周" if zh else f"in the week of {start:%Y-%m-%d}"
    return f"{start:%Y-%m-%d} 至 {last:%Y-%m-%d}" if zh else f"between {start:%Y-%m-%d} and {last:%Y-%m-%d}"


def dated_content(
    content: str, phrase: str, when: EventTime | None, said: datetime, zone: ZoneInfo, language: str = "en"
) -> str:
    """The content with the time phrase replaced by (or followed by) its resolved date; never a guess."""
    content = content.strip().rstrip(".。")
    zh = language == "zh"
    if when is None:
        if not phrase:
            return content
        day = f"{said.astimezone(zone):%Y-%m-%d}"
        return f"{content}{_LP}{day} 时说“{phrase}”{_RP}" if zh else f'{content} (said on {day}: "{phrase}")'
    readable = describe_time(when, zone, language)
    if f"{when.start.astimezone(zone):%Y-%m-%d}" in content:
        return content
    at = content.lower().find(phrase.lower()) if phrase else -1
    if at >= 0:
        return f"{content[:at]}{readable}{content[at + len(phrase) :]}"
    return f"{content}{_LP}{readable}{_RP}" if zh else f"{content} {readable}"


def _squash(text: str) -> str:
    return " ".join(text.lower().split())


@worker("extract_timed_observations")
class ExtractTimedObservations(LLMWorker):
    """Extract events and plans tied to a time; resolve each time phrase by rules into an event time."""

    reads = ("user_id", "messages", "informative_messages")
    writes = ("timed_observations",)

    class Params(WorkerParams):
        max_observations: int = 20

    params: Params

    def run(self, ctx: Context) -> None:
        if not ctx["informative_messages"]:
            ctx["timed_observations"] = []
            return
        shown, values = conversation_values(self, ctx)
        answer = self.ask(TimedAnswer, max_observations=self.params.max_observations, **values)
        zone, informative = user_zone(self, ctx), {m.id for m in ctx["informative_messages"]}
        said_texts = " ".join(_squash(m.content) for m in shown if m.id in informative)
        nodes: dict[str, MemoryNode] = {}
        for item in answer.observations[: self.params.max_observations]:
            if not item.content.strip():
                continue
            sources = pick_sources(shown, [item.source], informative)
            said = sources[-1].created_at
            phrase = item.time_phrase.strip()
            if phrase and _squash(phrase) not in said_texts:
                phrase = ""  # not what the user said: the model computed or invented it
            prefer: Literal["past", "future"] = "future" if item.future else "past"
            when = resolve_time_phrase(phrase, said, zone, prefer=prefer) if phrase else None
            if when is None and item.date:
                when = resolve_time_phrase(item.date.strip(), said, zone, prefer=prefer)
            content = dated_content(item.content, phrase, when, said, zone, self.resources.language)
            keywords = [k.strip() for k in item.keywords if k.strip()]
            metadata: dict[str, object] = {"keywords": keywords, "time_phrase": phrase}
            node = observation_node(ctx, sources, content, item.importance, metadata, event_time=when)
            nodes.setdefault(node.id, node)
        ctx["timed_observations"] = list(nodes.values())
