"""format_context: the retrieval as a compact text block for a chatbot's system prompt (en or zh).

    Relevant memories:
    - [2023-05-08] Tom works at Apple (observation)
    - [2023-05-09 14:02] user: I just moved to Berlin (message)
    Recent messages not yet consolidated:
    - [2023-05-10 09:30] user: My sister arrives tomorrow

Dates are shown in the user's zone, as precisely as the memory's event time is known (2023,
2023-05, 2023-05-08). Pending messages already listed as results are not repeated. No results
and no pending messages give "". Beliefs (when the run loaded them) come first; with a `max_tokens`
input, lines are kept in that order until the budget is spent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from memscope.context_text import fit_sections
from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import user_zone
from memscope.models import Granularity, Message
from memscope.retrieval import RetrievedItem

HEADINGS = {
    "en": ("Relevant memories:", "Recent messages not yet consolidated:"),
    "zh": ("相关记忆：", "尚未整理的最近消息："),  # noqa: RUF001 (Chinese punctuation)
}
BELIEFS_HEADING = {"en": "What to keep in mind for this user:", "zh": "对该用户应注意："}  # noqa: RUF001
_LINES_KEPT = 4096  # clipped texts and date stamps cached
_CACHED_CHARS_PER_LIMIT = 4  # longer texts are clipped anew each time (they are rare)
_DATE_FORMATS = {Granularity.YEAR: "%Y", Granularity.MONTH: "%Y-%m", Granularity.INSTANT: "%Y-%m-%d %H:%M"}


@worker("format_context")
class FormatContext(Worker):
    """Render results and pending messages as dated lines under headings, for a system prompt."""

    reads = ("results", "pending_messages")
    optional_reads = ("timezone", "beliefs", "max_tokens")
    writes = ("context_text",)

    class Params(WorkerParams):
        max_item_chars: int = 500  # longer contents are cut with an ellipsis

    params: Params

    def run(self, ctx: Context) -> None:
        zone = user_zone(self, ctx)
        results: Sequence[RetrievedItem] = ctx["results"]
        shown = {i.id for i in results if i.kind == "message"}
        pending = [m for m in ctx["pending_messages"] if m.id not in shown]
        language = self.resources.language
        memories_heading, pending_heading = HEADINGS.get(language, HEADINGS["en"])
        beliefs = [f"- {b.content}" for b in ctx.get("beliefs") or []]
        sections = [
            (BELIEFS_HEADING.get(language, BELIEFS_HEADING["en"]), beliefs),
            (memories_heading, [self._item_line(i, zone) for i in results]),
            (pending_heading, [self._message_line(m, zone) for m in pending]),
        ]
        ctx["context_text"] = fit_sections(sections, ctx.get("max_tokens"))

    def _item_line(self, item: RetrievedItem, zone: ZoneInfo) -> str:
        if item.kind == "message":
            stamp = _stamp(item.time, zone, Granularity.INSTANT)
            return f"- [{stamp}] {_speaker(item.role, item.name)}: {self._clip(item.content)} (message)"
        granularity = item.event_time.granularity if item.event_time is not None else Granularity.DAY
        return f"- [{_stamp(item.time, zone, granularity)}] {self._clip(item.content)} ({item.memory_type})"

    def _message_line(self, message: Message, zone: ZoneInfo) -> str:
        stamp = _stamp(message.created_at, zone, Granularity.INSTANT)
        return f"- [{stamp}] {_speaker(message.role.value, message.name)}: {self._clip(message.content)}"

    def _clip(self, text: str) -> str:
        limit = self.params.max_item_chars
        # cached up to a few times the limit, so the cache holds megabytes, not 4096 messages of 100k characters
        return _clip_cached(text, limit) if len(text) <= _CACHED_CHARS_PER_LIMIT * limit else _clip(text, limit)


def _clip(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(limit - 1, 0)].rstrip() + "…"


# Cached: the same turns and dates come back query after query (the pending turns in every retrieval).
_clip_cached = lru_cache(maxsize=_LINES_KEPT)(_clip)


@lru_cache(maxsize=_LINES_KEPT)
def _stamp(value: datetime, zone: ZoneInfo, granularity: Granularity) -> str:
    return value.astimezone(zone).strftime(_DATE_FORMATS.get(granularity, "%Y-%m-%d"))


def _speaker(role: str | None, name: str | None) -> str:
    role = role or "user"
    return f"{role} ({name})" if name else role
