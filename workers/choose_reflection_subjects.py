"""choose_reflection_subjects: which subjects of the user's life the new observations say something about."""

from __future__ import annotations

from pydantic import BaseModel, Field

from memscope.engine import Context, WorkerParams, worker
from memscope.engine.llm_worker import LLMWorker
from memscope.engine.worker import user_zone
from memscope.models import MemoryNode
from memscope.reflection import memory_line, normalise_key


class SubjectsAnswer(BaseModel):
    """The subjects worth an insight, most new information first."""

    subjects: list[str] = Field(default_factory=list)


@worker("choose_reflection_subjects")
class ChooseReflectionSubjects(LLMWorker):
    """Ask the model which subjects ("career", "hobbies: climbing") the new observations inform.

    Existing insight keys are offered first so a fitting subject reuses its key (the insight is
    updated, not duplicated); a subject matching a key up to case and spacing maps to that key.
    With fewer than `min_observations` unreflected observations it writes [] without a model call.
    """

    reads = ("unreflected", "insights")
    writes = ("subjects",)

    class Params(WorkerParams):
        min_observations: int = Field(1, ge=1)
        max_subjects: int = Field(3, ge=1)

    def run(self, ctx: Context) -> None:
        observations: list[MemoryNode] = ctx["unreflected"]
        if len(observations) < self.params.min_observations:
            ctx["subjects"] = []
            return
        zone = user_zone(self, ctx)
        insights: list[MemoryNode] = [i for i in ctx["insights"] if i.key]
        known = {normalise_key(i.key or ""): i.key or "" for i in insights}
        answer = self.ask(
            SubjectsAnswer,
            max_subjects=self.params.max_subjects,
            insights="\n".join(f"- {i.key}: {i.content}" for i in insights) or self.prompt("none"),
            observations="\n".join(memory_line(str(n), o, zone) for n, o in enumerate(observations, 1)),
        )
        subjects: list[str] = []
        for raw in answer.subjects:
            key = normalise_key(raw)
            key = known.get(key, key)
            if key and key not in subjects:
                subjects.append(key)
        ctx["subjects"] = subjects[: self.params.max_subjects]
