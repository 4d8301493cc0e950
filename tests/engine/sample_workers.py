"""Small workers used by the engine tests (registered under `t_*` names)."""

from __future__ import annotations

import time

from memscope.engine import Context, Worker, WorkerParams, worker


@worker("t_emit")
class Emit(Worker):
    """Write a list of `count` numbers to `numbers`."""

    writes = ("numbers",)

    class Params(WorkerParams):
        count: int = 3

    def run(self, ctx: Context) -> None:
        ctx["numbers"] = list(range(self.params.count))


@worker("t_double")
class Double(Worker):
    """Double every number into `doubled`."""

    reads = ("numbers",)
    writes = ("doubled",)

    def run(self, ctx: Context) -> None:
        ctx["doubled"] = [n * 2 for n in ctx["numbers"]]


@worker("t_sleep_a")
class SleepA(Worker):
    """Sleep, then write `a`."""

    writes = ("a",)

    class Params(WorkerParams):
        seconds: float = 0.5

    def run(self, ctx: Context) -> None:
        time.sleep(self.params.seconds)
        ctx["a"] = [time.monotonic()]


@worker("t_sleep_b")
class SleepB(SleepA):
    """Sleep, then write `b`."""

    writes = ("b",)

    def run(self, ctx: Context) -> None:
        time.sleep(self.params.seconds)
        ctx["b"] = [time.monotonic()]


@worker("t_also_a")
class AlsoA(Worker):
    """Write `a` too (for the parallel-conflict check)."""

    writes = ("a",)

    def run(self, ctx: Context) -> None:
        ctx["a"] = []


@worker("t_fail")
class Fail(Worker):
    """Raise, to test error wrapping."""

    writes = ("never",)

    def run(self, ctx: Context) -> None:
        raise ZeroDivisionError("boom")


@worker("t_lazy")
class Lazy(Worker):
    """Declares a write it never makes."""

    writes = ("promised",)

    def run(self, ctx: Context) -> None:
        return None


@worker("t_needs_llm")
class NeedsLLM(Worker):
    """Pretends to call the LLM: counts a call on the meter."""

    writes = ("answers",)
    uses_llm = True

    def run(self, ctx: Context) -> None:
        from memscope.llm.base import Usage

        assert self.resources.meter is not None
        self.resources.meter.record(Usage(calls=1, prompt_tokens=11, completion_tokens=5))
        ctx["answers"] = ["yes"]


@worker("t_maybe_doubled")
class MaybeDoubled(Worker):
    """Count `doubled` if a step wrote it (an optional read)."""

    optional_reads = ("doubled",)
    writes = ("count",)

    def run(self, ctx: Context) -> None:
        ctx["count"] = len(ctx.get("doubled") or [])


@worker("t_commit")
class Commit(Worker):
    """Write `committed`: True unless an earlier step degraded the run (read from the run's report)."""

    writes = ("committed",)

    def run(self, ctx: Context) -> None:
        ctx["committed"] = not ctx.report.degraded


@worker("t_thread")
class ThreadName(Worker):
    """Write the name of the thread the step runs on to the field named by `into`."""

    class Params(WorkerParams):
        into: str = "thread_a"

    @classmethod
    def declared_writes(cls, params: WorkerParams) -> tuple[str, ...]:
        """The field `into` names."""
        assert isinstance(params, cls.Params)
        return (params.into,)

    def run(self, ctx: Context) -> None:
        import threading

        ctx[self.params.into] = threading.current_thread().name


@worker("t_store_work")
class StoreWork(Worker):
    """Record (thread name, start, end) in the field named by `into` around a short sleep: a store-bound step."""

    store_bound = True

    class Params(WorkerParams):
        into: str = "work_a"
        seconds: float = 0.1

    @classmethod
    def declared_writes(cls, params: WorkerParams) -> tuple[str, ...]:
        """The field `into` names."""
        assert isinstance(params, cls.Params)
        return (params.into,)

    def run(self, ctx: Context) -> None:
        import threading

        started = time.monotonic()
        time.sleep(self.params.seconds)
        ctx[self.params.into] = (threading.current_thread().name, started, time.monotonic())
