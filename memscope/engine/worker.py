"""The Worker base class, its Params model, the run Context and the shared Resources."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict

from memscope.engine.report import RunReport
from memscope.errors import ValidationError
from memscope.models import utcnow

if TYPE_CHECKING:
    from memscope.access import AccessRecorder
    from memscope.config import Settings
    from memscope.llm.base import ChatModel, Embedder, Reranker, UsageMeter
    from memscope.stores.base import Fence, Store

__all__ = ["Context", "Resources", "Worker", "WorkerParams", "scope", "user_zone"]

log = logging.getLogger("memscope.engine")


class WorkerParams(BaseModel):
    """Base of every worker's Params: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class Resources:
    """What workers use, passed in explicitly (no globals): store, models, clock, settings."""

    store: Store
    embedder: Embedder | None = None
    llm: ChatModel | None = None
    reranker: Reranker | None = None
    settings: Settings | None = None
    meter: UsageMeter | None = None
    language: str = "en"
    timezone: str = "UTC"
    clock: Any = utcnow  # () -> aware datetime; tests pass a fixed clock
    access: AccessRecorder | None = None  # writes access counts off the retrieval's path (None: record_access writes)

    def now(self) -> datetime:
        """The current time from the clock."""
        value: datetime = self.clock()
        return value

    def zone(self, name: str | None = None) -> ZoneInfo:
        """The time zone of a user (per call) or the config default; an unknown name is the caller's ValidationError."""
        try:
            return ZoneInfo(name or self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise ValidationError(
                f"unknown time zone {name or self.timezone!r}; give an IANA name such as 'Asia/Shanghai' or 'UTC'"
            ) from exc


@dataclass
class Context:
    """The fields an operation's steps read and write, plus the run's identity."""

    operation: str
    run_id: str
    values: dict[str, Any] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    report: RunReport = field(default_factory=lambda: RunReport(operation="", run_id=""))  # the steps so far
    fence: Fence | None = None  # a background job's lease on the user: its store writes pass it on
    started: float = field(default_factory=time.perf_counter, repr=False)  # the run's start (perf_counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __getitem__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise KeyError(
                f"context field {name!r} is not set in operation {self.operation!r}; "
                f"set fields: {sorted(self.values)}"
            ) from None

    def __setitem__(self, name: str, value: Any) -> None:
        with self._lock:
            self.values[name] = value

    def __contains__(self, name: object) -> bool:
        return name in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def get(self, name: str, default: Any = None) -> Any:
        """A field's value, or `default` when unset."""
        return self.values.get(name, default)

    def notice(self, text: str) -> None:
        """Record a user-facing notice (e.g. a skipped step); also logged once."""
        with self._lock:
            if text not in self.notices:
                self.notices.append(text)
                log.info("%s: %s", self.operation, text)


class Worker:
    """One small unit of work. Subclasses set a docstring, `Params`, `reads`, `writes` and `run`.

    `__init__` is light (params and resources only); heavy set-up goes in `warm_up`, called once.
    A worker that needs an LLM sets `uses_llm = True`; with no LLM configured the runner skips it,
    fills its `writes` with `empty_outputs`, and its StepReport says it degraded the run; a later step
    that must not commit a partial result checks `ctx.report.degraded`.
    """

    name: ClassVar[str] = ""
    reads: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ()
    optional_reads: ClassVar[tuple[str, ...]] = ()  # read if present, never required
    uses_llm: ClassVar[bool] = False
    prompt_languages: ClassVar[tuple[str, ...]] = ()
    # Its time goes to store calls: on an in-process store (SQLite) that is Python work under the GIL.
    store_bound: ClassVar[bool] = False

    class Params(WorkerParams):
        pass

    def __init__(self, params: WorkerParams, resources: Resources) -> None:
        self.params = params
        self.resources = resources

    def overlaps(self) -> bool:
        """True when this step spends its time outside the GIL (a network call, a model's native code), so a
        parallel group runs it on a thread beside the others; False for Python work that would only contend
        for the GIL: the group runs those one after another on its own thread (see OperationRunner)."""
        return not (self.store_bound and getattr(self.resources.store, "in_process", False))

    @classmethod
    def declared_reads(cls, params: WorkerParams) -> tuple[str, ...]:
        """The fields this worker reads with these params (default: `reads`)."""
        return cls.reads

    @classmethod
    def declared_optional_reads(cls, params: WorkerParams) -> tuple[str, ...]:
        """The fields this worker reads when set (default: `optional_reads`); the loader checks their order."""
        return cls.optional_reads

    @classmethod
    def declared_writes(cls, params: WorkerParams) -> tuple[str, ...]:
        """The fields this worker writes with these params (default: `writes`)."""
        return cls.writes

    def warm_up(self) -> None:
        """Heavy set-up (load a model, compile a pattern); called once before the first run."""

    def empty_outputs(self) -> dict[str, Any]:
        """What this worker writes when skipped (default: an empty list per field)."""
        return {name: [] for name in self.declared_writes(self.params)}

    def run(self, ctx: Context) -> None:
        """Read fields from `ctx`, do the work, write fields to `ctx`."""
        raise NotImplementedError

    @classmethod
    def summary(cls) -> str:
        """The first line of the docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


def scope(ctx: Context) -> tuple[str, str | None]:
    """The (user_id, agent_id) an operation runs for; agent None means every agent."""
    return ctx["user_id"], ctx.get("agent_id")


def user_zone(worker: Worker, ctx: Context) -> ZoneInfo:
    """The user's zone for this call (input `timezone`), else the config default."""
    return worker.resources.zone(ctx.get("timezone"))
