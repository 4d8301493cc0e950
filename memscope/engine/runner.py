"""Runs a loaded operation: steps in order, parallel groups on threads, a RunReport per run."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
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


@dataclass
class _StepWatch:
    """Which step a run handed to a run thread is in, and since when: the caller times each step."""

    state: tuple[int, str, float] = field(default_factory=lambda: (0, "", time.monotonic()))  # one atomic write
    abandoned: bool = False  # set by the caller on timeout: the run thread starts no further step

    def enter(self, index: int, item: Step | ParallelGroup) -> None:
        """Record that step `index` starts now."""
        name = item.worker if isinstance(item, Step) else "+".join(b.worker for b in item.branches)
        self.state = (index, name, time.monotonic())


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
        self._run_threads: ThreadPoolExecutor | None = None
        self._on_pool = threading.local()  # .active: this thread runs a branch or a whole timed run
        self._on_branch = threading.local()  # .active: this thread runs a branch (it must not wait on branches)

    def close(self) -> None:
        """Stop the runner's threads; an abandoned (hung) step is not waited for."""
        with self._lock:
            pools, self._pool, self._run_threads = (self._pool, self._run_threads), None, None
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    def _run_pool(self) -> ThreadPoolExecutor:
        """The threads timed inline runs execute on (one hand-off per run, not per step)."""
        with self._lock:
            if self._run_threads is None:
                self._run_threads = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="memscope-run")
            return self._run_threads

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
        started = ctx.started
        limit = self.step_timeout_s if spec.mode == "inline" and not getattr(self._on_pool, "active", False) else None
        if limit is None:
            self._steps(spec, ctx, report, None)
        else:  # on a run thread, so a hung worker fails the call instead of blocking it
            watch = _StepWatch()
            self._await_run(self._run_pool().submit(self._timed_run, spec, ctx, report, watch), watch, limit, spec)
        report.wall_ms = (time.perf_counter() - started) * 1000
        report.notices = list(ctx.notices)
        return RunResult({name: ctx[name] for name in spec.outputs}, report, ctx)

    def _steps(self, spec: OperationSpec, ctx: Context, report: RunReport, watch: _StepWatch | None) -> None:
        for index, item in enumerate(spec.steps, start=1):
            if watch is not None:
                if watch.abandoned:
                    return
                watch.enter(index, item)
            if isinstance(item, ParallelGroup):
                report.steps.extend(self._parallel(spec, index, item, ctx))
            else:
                report.steps.append(self._step(spec, index, item, ctx))

    def _timed_run(self, spec: OperationSpec, ctx: Context, report: RunReport, watch: _StepWatch) -> None:
        self._on_pool.active = True  # a run nested in one of its steps runs inline, untimed
        try:
            self._steps(spec, ctx, report, watch)
        finally:
            self._on_pool.active = False

    @staticmethod
    def _await_run(future: Future[None], watch: _StepWatch, limit: float, spec: OperationSpec) -> None:
        """Wait for a run thread's run; OperationRunError once one step runs past `limit` seconds (the
        run is abandoned: the step is left to end, no later step starts)."""
        while True:
            index, worker, since = watch.state
            try:
                future.exception(timeout=max(0.0, limit - (time.monotonic() - since)))
                break
            except FutureTimeout:
                if watch.state[2] != since:
                    continue  # the next step started meanwhile: time that one
                watch.abandoned = True
                if future.cancel() or index == 0:
                    cause = TimeoutError(f"no run thread was free for {limit:g}s (operations.inline_step_timeout_s)")
                    first = spec.steps[0]
                    name = first.worker if isinstance(first, Step) else first.branches[0].worker
                    raise OperationRunError(spec.name, 1, name, cause) from None
                cause = TimeoutError(
                    f"the step ran longer than {limit:g}s (operations.inline_step_timeout_s); it was abandoned"
                )
                raise OperationRunError(spec.name, index, worker, cause) from None
        future.result()

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

    def _parallel(self, spec: OperationSpec, index: int, group: ParallelGroup, ctx: Context) -> list[StepReport]:
        branches = list(enumerate(group.branches, start=1))
        if getattr(self._on_branch, "active", False):  # nested in a branch: waiting on the pool could deadlock
            return [self._step(spec, index, step, ctx, branch) for branch, step in branches]
        # Branches that wait outside the GIL (Worker.overlaps) each get a thread, the first one this thread.
        # Python-bound ones run one after another on a single thread: side by side they would only take
        # turns at the GIL and pay the hand-offs (an in-process store's two searches: 0.2-1.2 ms slower).
        overlaps = {branch: self._overlaps(spec, index, step, branch) for branch, step in branches}
        free = [(b, s) for b, s in branches if overlaps[b]]
        bound = [(b, s) for b, s in branches if not overlaps[b]]
        if not free:
            return self._in_turn(spec, index, bound, ctx)
        pool = self._branch_pool()
        futures = [pool.submit(self._in_turn, spec, index, [branch], ctx) for branch in free[1:]]
        if bound:
            futures.append(pool.submit(self._in_turn, spec, index, bound, ctx))
        try:
            reports = self._in_turn(spec, index, free[:1], ctx)
        finally:  # the others end (or fail) before this step does
            errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                raise error
        return sorted(reports + [r for f in futures for r in f.result()], key=lambda r: r.branch or 0)

    def _overlaps(self, spec: OperationSpec, index: int, step: Step, branch: int) -> bool:
        try:
            return self._worker(spec, index, step, branch).overlaps()
        except Exception:  # a worker that cannot be set up fails in _step, which names the step
            return True

    def _in_turn(
        self, spec: OperationSpec, index: int, branches: list[tuple[int, Step]], ctx: Context
    ) -> list[StepReport]:
        """Run these branches of a group one after another on this thread."""
        return [self._branch(spec, index, step, ctx, branch) for branch, step in branches]

    def _branch(
        self, spec: OperationSpec, index: int, step: Step, ctx: Context, branch: int | None
    ) -> StepReport:
        was = getattr(self._on_pool, "active", False), getattr(self._on_branch, "active", False)
        self._on_pool.active = self._on_branch.active = True
        try:
            return self._step(spec, index, step, ctx, branch)
        finally:
            self._on_pool.active, self._on_branch.active = was

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
        report.start_ms = (started - ctx.started) * 1000
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
