"""format_general_context: what a chatbot should know about the user on any turn, with no query.

    About the user:
    - preferences: diet: vegetarian
    What to keep in mind for this user:
    - Suggest vegetarian restaurants first.
    Recent conversations:
    - [2023-05-09] Tom is planning a trip to Lisbon; Tom prefers trains to planes
    Recent messages not yet consolidated:
    - [2023-05-10 09:30] user: My sister arrives tomorrow

Sections come in that order of priority; with a `max_tokens` input, lines are kept until the budget
is spent. Nothing known gives "".
"""

from __future__ import annotations

from memscope.context_text import fit_sections
from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import user_zone
from memscope.models import MemoryNode, Message
from memscope.profile import Profile

HEADINGS = {
    "en": ("About the user:", "What to keep in mind for this user:", "Recent conversations:",
           "Recent messages not yet consolidated:"),
    "zh": ("关于用户：", "对该用户应注意：", "最近的对话：", "尚未整理的最近消息："),  # noqa: RUF001
}


@worker("format_general_context")
class FormatGeneralContext(Worker):
    """Render profile, beliefs, hottest segments and pending messages as a block for a system prompt."""

    reads = ("profile", "beliefs", "segments", "pending_messages")
    optional_reads = ("timezone", "max_tokens")
    writes = ("context_text",)

    class Params(WorkerParams):
        max_item_chars: int = 300

    params: Params

    def run(self, ctx: Context) -> None:
        zone = user_zone(self, ctx)
        profile: Profile = ctx["profile"]
        beliefs: list[MemoryNode] = ctx["beliefs"]
        segments: list[MemoryNode] = ctx["segments"]
        pending: list[Message] = ctx["pending_messages"]
        about, keep, recent, unconsolidated = HEADINGS.get(self.resources.language, HEADINGS["en"])
        sections = [
            (about, [f"- {e.section}: {e.slot}: {self._clip(e.text)}" for e in profile.entries()]),
            (keep, [f"- {self._clip(b.content)}" for b in beliefs]),
            (recent, [f"- [{s.updated_at.astimezone(zone):%Y-%m-%d}] {self._clip(s.content)}" for s in segments]),
            (unconsolidated, [
                f"- [{m.created_at.astimezone(zone):%Y-%m-%d %H:%M}] {m.role.value}: {self._clip(m.content)}"
                for m in pending
            ]),
        ]
        ctx["context_text"] = fit_sections(sections, ctx.get("max_tokens"))

    def _clip(self, text: str) -> str:
        flat = " ".join(text.split())
        limit = self.params.max_item_chars
        return flat if len(flat) <= limit else flat[: max(limit - 1, 0)].rstrip() + "…"
