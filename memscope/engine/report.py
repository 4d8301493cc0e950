"""RunReport: what each step of an operation run cost and wrote. Cost is never invisible."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RunReport", "StepReport"]


@dataclass
class StepReport:
    """One step: wall time, model calls and tokens, and how many items it wrote per field."""

    index: int
    worker: str
    wall_ms: float = 0.0
    start_ms: float = 0.0  # when it started, after the run started (steps of a group may run side by side)
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_retries: int = 0  # model calls retried after a 429, 5xx or timeout (not counted in llm_calls)
    written: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None  # why the step did not run (e.g. no LLM configured)
    branch: int | None = None  # index inside a parallel group
    degraded: bool = False  # the step was skipped, so the run's result is partial (nothing may be committed)


@dataclass
class RunReport:
    """One operation run: its steps, totals and notices."""

    operation: str
    run_id: str
    steps: list[StepReport] = field(default_factory=list)
    wall_ms: float = 0.0
    notices: list[str] = field(default_factory=list)

    @property
    def degraded(self) -> bool:
        """True when some step degraded (e.g. an LLM step skipped for want of a model)."""
        return any(s.degraded for s in self.steps)

    @property
    def llm_calls(self) -> int:
        """Model calls over all steps."""
        return sum(s.llm_calls for s in self.steps)

    @property
    def llm_retries(self) -> int:
        """Retried model calls over all steps."""
        return sum(s.llm_retries for s in self.steps)

    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens over all steps."""
        return sum(s.prompt_tokens for s in self.steps)

    @property
    def completion_tokens(self) -> int:
        """Completion tokens over all steps."""
        return sum(s.completion_tokens for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with totals."""
        data = asdict(self)
        data.update(
            degraded=self.degraded,
            llm_calls=self.llm_calls,
            llm_retries=self.llm_retries,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
        )
        return data

    def table_rows(self) -> list[tuple[str, ...]]:
        """Rows (step, worker, ms, calls, tokens in/out, written) for a printed table."""
        rows: list[tuple[str, ...]] = []
        for s in self.steps:
            label = f"{s.index}" if s.branch is None else f"{s.index}.{s.branch}"
            written = ", ".join(f"{k}={v}" for k, v in s.written.items()) or (
                f"skipped: {s.skipped}" if s.skipped else ""
            )
            rows.append(
                (
                    label,
                    s.worker,
                    f"{s.wall_ms:.1f}",
                    f"{s.llm_calls} (+{s.llm_retries} retried)" if s.llm_retries else str(s.llm_calls),
                    str(s.prompt_tokens),
                    str(s.completion_tokens),
                    written,
                )
            )
        return rows
