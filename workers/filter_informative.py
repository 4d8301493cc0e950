"""filter_informative: score each pending user message 0-3 for long-term value; keep the informative ones."""

from __future__ import annotations

import logging

from pydantic import BaseModel, Field

from memscope.engine import Context, WorkerParams, worker
from memscope.engine.llm_worker import LLMWorker
from memscope.engine.worker import user_zone
from memscope.errors import ModelOutputError
from memscope.models import Message, Role
from memscope.observations import format_messages

log = logging.getLogger("memscope.workers")

CONVERSATION_ROLES = (Role.USER, Role.ASSISTANT)  # system and tool turns are not shown


class MessageScore(BaseModel):
    """The model's score of one user message."""

    index: int
    score: int = Field(ge=0, le=3)
    reason: str = ""


class FilterAnswer(BaseModel):
    """Scores of the user messages, by their number in the conversation."""

    scores: list[MessageScore] = Field(default_factory=list)


@worker("filter_informative")
class FilterInformative(LLMWorker):
    """Score each pending user message 0-3 for long-term value about the user; keep the informative ones.

    Assistant turns are shown as context only, never scored. A user message the model leaves
    unscored counts as 0 (it stays in the message log, searchable, but yields no observation); an
    answer that scores none of them is asked again once, then fails the step (messages stay pending).
    """

    reads = ("messages",)
    writes = ("informative_messages",)

    class Params(WorkerParams):
        keep_scores: list[int] = [2, 3]

    params: Params

    def run(self, ctx: Context) -> None:
        shown: list[Message] = [m for m in ctx["messages"] if m.role in CONVERSATION_ROLES]
        user_numbers = [n for n, m in enumerate(shown, start=1) if m.role is Role.USER]
        if not user_numbers:
            ctx["informative_messages"] = []
            return
        values = {"conversation": format_messages(shown, user_zone(self, ctx)),
                  "user_indices": ", ".join(map(str, user_numbers))}  # fmt: skip
        scores = self._scores(self.ask(FilterAnswer, **values), user_numbers)
        if not scores:  # an answer that scores none of the messages is the model's error, not "nothing said"
            log.warning("filter_informative: no user message of %s was scored; asking once more", user_numbers)
            scores = self._scores(self.ask(FilterAnswer, **values), user_numbers)
        if not scores:
            raise ModelOutputError(
                f"the model's filter_informative answer scored none of the {len(user_numbers)} user messages"
                " (twice); the messages stay pending and the job can be retried"
            )
        unscored = [n for n in user_numbers if n not in scores]
        if unscored:
            log.info("filter_informative: the model left user messages %s unscored; counted as 0", unscored)
        keep = set(self.params.keep_scores)
        ctx["informative_messages"] = [shown[n - 1] for n in user_numbers if scores.get(n, 0) in keep]

    @staticmethod
    def _scores(answer: FilterAnswer, user_numbers: list[int]) -> dict[int, int]:
        """Scores by message number; assistant turns and unknown numbers are ignored."""
        return {item.index: item.score for item in answer.scores if item.index in user_numbers}
