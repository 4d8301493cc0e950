"""Runs a loaded operation: steps in order, parallel groups on threads, a RunReport per run."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from memscope.engine.operation import REQUIRED, OperationSpec, ParallelGroup, Step
from memscope.engine.report import RunReport, StepReport
from memscope.engine.worker import Context, Resources, Worker
from memscope.errors import OperationRunError, ValidationError
from memscope.models import new_id
from memscope.stores.base import Fence

__all__ = ["OperationRunner", "RunResult"]

log = logging.getLogger("memscope.engine")
PARALLEL_THREADS = 8  # branch threads shared by all runs; more concurrent branches wait their turn

NO_LLM_NOTICE = (
    "no LLM configured: LLM steps were skipped and pending messages stay pending. "
    "Set OPENAI_API_KEY (with OPENAI_BASE_URL for a compatible server) or DASHSCOPE_API_KEY, "
    "or llm.backend in the config."
)


@dataclass
class RunResult:
    """What a run returns: its declared outputs, the report, and the finished context (for debugging)."""

    outputs: dict[str, Any]
    report: RunReport
    context: Context

    def __getitem__(self, name: str) -> Any:
        """A declared output; a name the operation does not declare is a KeyError listing those it does."""
        try:
            return self.outputs[name]
        except KeyError:
            raise KeyError(
                f"operation {self.report.operation!r} declares no output {name!r}; "
                f"its outputs: {sorted(self.outputs) or 'none'} (add it to the YAML's `outputs:`)"
            ) from None


class OperationRunner:
    """Executes operations against one set of resources; worker instances are reused across runs."""

    def __init__(
        self, resources: Resources, *, threads: int = PARALLEL_THREADS, step_timeout_s: float | None = None
    ) -> None:
        self.resources = resources
        self.step_timeout_s = step_timeout_s  # per step of an inline operation; None: no limit
        self._workers: dict[tuple[int, int, str], Worker] = {}
        self._lock = threading.Lock()
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._on_pool = threading.local()

    def close(self) -> None:
        """Stop the runner's branch threads; an abandoned (hung) step is not waited for."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _branch_pool(self) -> ThreadPoolExecutor:
        """One bounded pool for every run's parallel branches: threads (and their connections) are reused."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="memscope-branch")
            return self._pool

    def run(
        self, spec: OperationSpec, inputs: Mapping[str, Any], *, run_id: str | None = None, fence: Fence | None = None
    ) -> RunResult:
        """Run `spec` with `inputs`; a failing step raises OperationRunError naming it.

        `fence` is the caller's lease on the user: the steps' fenced writes fail once it is lost."""
        values = self._inputs(spec, inputs)
        run_id = run_id or new_id()
        report = RunReport(operation=spec.name, run_id=run_id)
        ctx = Context(operation=spec.name, run_id=run_id, values=values, fence=fence, report=report)
        started = time.perf_counter()
        limit = self.step_timeout_s if spec.mode == "inline" and not getattr(self._on_pool, "active", False) else None
        for index, item in enumerate(spec.steps, start=1):
            if isinstance(item, ParallelGroup):
                report.steps.extend(self._parallel(spec, index, item, ctx, limit))
            elif limit is None:
                report.steps.append(self._step(spec, index, item, ctx))
            else:  # on a branch thread, so a hung worker fails the call instead of blocking it
                future = self._branch_pool().submit(self._branch, spec, index, item, ctx, None)
                report.steps.append(self._within(future, limit, spec, index, item))
        report.wall_ms = (time.perf_counter() - started) * 1000
        report.notices = list(ctx.notices)
        return RunResult({name: ctx[name] for name in spec.outputs}, report, ctx)

    def _inputs(self, spec: OperationSpec, inputs: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(inputs) - set(spec.inputs)
        if unknown:
            raise ValidationError(
                f"operation {spec.name!r} got unknown inputs {sorted(unknown)}; it takes {sorted(spec.inputs)}"
            )
        values: dict[str, Any] = {}
        for name, default in spec.inputs.items():
            if name in inputs:
                values[name] = inputs[name]
            elif default is REQUIRED:
                raise ValidationError(
                    f"operation {spec.name!r} needs input {name!r}; it takes {sorted(spec.inputs)}"
                )
            else:
                values[name] = default
        return values

    def _parallel(
        self, spec: OperationSpec, index: int, group: ParallelGroup, ctx: Context, limit: float | None = None
    ) -> list[StepReport]:
        branches = list(enumerate(group.branches, start=1))
        if getattr(self._on_pool, "active", False):  # a run nested inside a branch: waiting on the pool could deadlock
            return [self._step(spec, index, step, ctx, branch) for branch, step in branches]
        pool = self._branch_pool()
        futures = [pool.submit(self._branch, spec, index, step, ctx, branch) for branch, step in branches]
        if limit is not None:
            for future, (_, step) in zip(futures, branches, strict=True):
                self._within(future, limit, spec, index, step, result=False)
        errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                raise error
        return [f.result() for f in futures]

    @staticmethod
    def _within(
        future: Future[StepReport], limit: float, spec: OperationSpec, index: int, step: Step, *, result: bool = True
    ) -> StepReport:
        """The step's report once it ends; OperationRunError if it runs past `limit` seconds (it is abandoned)."""
        try:
            future.exception(timeout=limit)
        except FutureTimeout:
            future.cancel()
            cause = TimeoutError(
                f"the step ran longer than {limit:g}s (operations.inline_step_timeout_s); it was abandoned"
            )
            raise OperationRunError(spec.name, index, step.worker, cause) from None
        return future.result() if result else StepReport(index=index, worker=step.worker)

    def _branch(
        self, spec: OperationSpec, index: int, step: Step, ctx: Context, branch: int | None
    ) -> StepReport:
        self._on_pool.active = True
        try:
            return self._step(spec, index, step, ctx, branch)
        finally:
            self._on_pool.active = False

    def _worker(self, spec: OperationSpec, index: int, step: Step, branch: int | None) -> Worker:
        key = (id(spec), index * 100 + (branch or 0), step.worker)
        with self._lock:
            instance = self._workers.get(key)
            if instance is None:
                assert step.worker_cls is not None and step.params is not None
                instance = step.worker_cls(step.params, self.resources)
                instance.warm_up()
                self._workers[key] = instance
            return instance

    def _step(
        self, spec: OperationSpec, index: int, step: Step, ctx: Context, branch: int | None = None
    ) -> StepReport:
        report = StepReport(index=index, worker=step.worker, branch=branch)
        started = time.perf_counter()
        meter = self.resources.meter
        try:
            worker = self._worker(spec, index, step, branch)
            if worker.uses_llm and self.resources.llm is None:
                for name, value in worker.empty_outputs().items():
                    ctx[name] = value
                ctx.notice(NO_LLM_NOTICE)
                report.skipped, report.degraded = "no LLM configured", True
            else:
                if meter is not None:
                    meter.start()
                try:
                    worker.run(ctx)
                finally:
                    if meter is not None:
                        usage = meter.stop()
                        report.llm_calls, report.prompt_tokens = usage.calls, usage.prompt_tokens
                        report.completion_tokens = usage.completion_tokens
                        report.llm_retries = usage.retries
                missing = [name for name in worker.declared_writes(worker.params) if name not in ctx]
                if missing:
                    raise RuntimeError(f"worker declares writes {missing} but did not set them")
        except OperationRunError:
            raise
        except Exception as exc:
            raise OperationRunError(spec.name, index, step.worker, exc) from exc
        report.wall_ms = (time.perf_counter() - started) * 1000
        report.written = {name: _count(ctx.get(name)) for name in worker.declared_writes(worker.params)}
        return report


def _count(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, list | tuple | set | dict):
        return len(value)
    return 1
