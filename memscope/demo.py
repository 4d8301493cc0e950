"""`memscope demo`: a scripted multi-session conversation through the whole system, printed as it goes."""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from memscope.api import MemoryScope
from memscope.config import Settings, load_settings
from memscope.engine import RunReport
from memscope.jobs.base import CONSOLIDATE, FINAL_STATES, REFLECT, JobState
from memscope.jobs.local import LocalDispatcher

__all__ = ["SESSIONS", "run_demo"]

USER = "demo-tom"

# (session date, [(role, text)]) — a user who changes jobs, writes fiction, and plans a trip.
SESSIONS: list[tuple[datetime, list[tuple[str, str]]]] = [
    (
        datetime(2023, 1, 10, 9, 30, tzinfo=UTC),
        [
            ("user", "Hi! I'm Tom. I work as a data scientist at Meta in San Francisco."),
            ("assistant", "Nice to meet you, Tom! What do you enjoy outside work?"),
            ("user", "I go rock climbing most weekends, usually at Mission Cliffs."),
        ],
    ),
    (
        datetime(2023, 3, 15, 20, 0, tzinfo=UTC),
        [
            ("user", "Write a short story where I'm a dragon who lives on the moon."),
            ("assistant", "Once upon a time, a dragon named Tom watched the Earth rise..."),
            ("user", "Also, I've started learning PyTorch because I want to move into ML engineering."),
        ],
    ),
    (
        datetime(2023, 6, 2, 18, 15, tzinfo=UTC),
        [
            ("user", "Big news: I left Meta last month and joined Apple as an ML engineer."),
            ("assistant", "Congratulations on the new role!"),
            ("user", "Thanks! I'm flying to Paris next Friday for a conference."),
        ],
    ),
]
QUESTIONS = ["Where do I work now?", "What am I doing next week?", "What do I do for fun?"]  # as Tom asks them
NOW = datetime(2023, 6, 5, 12, 0, tzinfo=UTC)
JOB_WAIT_S = 120.0
BUSINESS = "a personal assistant that plans trips and suggests weekend activities"  # unless configured


def _report_table(title: str, report: RunReport) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("step", "worker", "ms", "llm calls", "tokens in", "tokens out", "wrote"):
        table.add_column(column)
    for row in report.table_rows():
        table.add_row(*row)
    return table


def run_demo(
    config: Settings | str | Path | dict[str, Any] | None = None,
    store_path: Path | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run the demo; returns what it found (for tests). The store is a temporary file unless given."""
    console = console or Console()
    settings = load_settings(config)
    tmp = None
    if store_path is None:
        tmp = tempfile.TemporaryDirectory(prefix="memscope-demo-")
        store_path = Path(tmp.name) / "demo.db"
    settings = _jobs_for_store(settings, store_path, console)
    settings = settings.model_copy(update={"store": settings.store.model_copy(update={"path": store_path})})
    if not settings.business_description:  # so that reflection derives beliefs too
        settings = settings.model_copy(update={"business_description": BUSINESS})
    outcome: dict[str, Any] = {"reports": [], "skipped": False}
    try:
        with MemoryScope(settings, background=False) as memory:
            described = memory.runtime.describe()
            console.print(
                f"[bold]memscope demo[/] store={described['store']} ({store_path}) "
                f"embedding={described['embedding']} llm={described['llm']}"
            )
            memory.delete_user(USER)
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("conversation", total=len(SESSIONS))
                for number, (when, turns) in enumerate(SESSIONS, start=1):
                    messages = [
                        {"role": r, "content": t, "created_at": when.replace(minute=i)}
                        for i, (r, t) in enumerate(turns)
                    ]
                    memory.add_messages(USER, messages, session_id=f"session-{number}")
                    reports = _run_job(memory, CONSOLIDATE, console)
                    outcome["reports"].extend(reports)
                    progress.advance(task)
                    for report in reports:
                        console.print(_report_table(f"session {number}: {report.operation}", report))
            if memory.runtime.has_llm:
                for report in _run_job(memory, REFLECT, console):
                    outcome["reports"].append(report)
                    console.print(_report_table("reflection", report))
            notices = sorted({n for r in outcome["reports"] for n in r.notices})
            if any(r.degraded for r in outcome["reports"]):
                outcome["skipped"] = True
                console.print(
                    "[yellow]No LLM is configured[/]: the steps that need one were skipped, and the "
                    "messages stay pending until one is. Set OPENAI_API_KEY (with OPENAI_BASE_URL for "
                    "Ollama, vLLM or another compatible server) or DASHSCOPE_API_KEY, then run again."
                )
            for notice in notices:
                console.print("  notice: " + escape(notice))
            outcome["memories"] = _print_memories(memory, console)
            outcome["profile"], outcome["beliefs"] = _print_profile(memory, console)
            memory.warm_up()  # the query model and vector libraries load here, not in the first timed question
            outcome["answers"] = _print_retrieval(memory, console)
            stats = memory.stats(USER)
            console.print(f"pending messages: {stats['pending_messages']} of {stats['total_messages']}")
            outcome["stats"] = stats
    finally:
        if tmp is not None:
            tmp.cleanup()
    return outcome


def _jobs_for_store(settings: Settings, store_path: Path, console: Console) -> Settings:
    """Celery workers read the configured store: a demo on another SQLite file runs its jobs in-process."""
    if settings.jobs.backend != "celery" or settings.store.backend != "sqlite":
        return settings
    configured = Path(settings.store.path).expanduser().resolve()
    if Path(store_path).expanduser().resolve() == configured:
        return settings
    console.print(
        f"[yellow]note[/]: jobs.backend is celery, but your workers read the store {configured}, not the demo's"
        f" {store_path}; the demo runs its jobs in this process. To have the workers run them, pass"
        f" --store {configured} (the demo then replaces the user {USER!r} in that store)."
    )
    jobs = settings.jobs.model_copy(update={"backend": "local"})
    return settings.model_copy(update={"jobs": jobs})


def _run_job(memory: MemoryScope, operation: str, console: Console) -> list[RunReport]:
    """Wait for the user's job of `operation` (the one add_messages queued, else a new one) and return each
    step's report. Never a run of its own beside it: two unfenced runs of one batch race and call the model
    twice. A Celery job's step reports stay with its worker, so only its totals are printed."""
    unfinished = [r for r in memory.jobs.status(USER) if r.operation == operation and r.state not in FINAL_STATES]
    job_id = unfinished[0].id if unfinished else memory.jobs.submit(operation, USER)
    record = memory.jobs.wait(job_id, timeout=JOB_WAIT_S)
    local = memory.jobs if isinstance(memory.jobs, LocalDispatcher) else None  # else Celery
    if record.state in (JobState.QUEUED, JobState.RUNNING):
        hint = (
            f" is a worker running on queue {memory.settings.jobs.celery.queue!r}? Start one with `memscope worker`."
            if local is None
            else ""
        )
        console.print(f"{operation} job {record.id} is still {record.state} after {JOB_WAIT_S:.0f}s;{hint}")
    elif record.state is not JobState.SUCCEEDED:
        console.print(f"{operation} job {record.id}: {record.state} {escape(record.error or '')}")
    elif local is None:
        console.print(f"{operation} job {record.id} on a Celery worker: {record.summary}")
    return local.reports(job_id) if local is not None else []


def _print_memories(memory: MemoryScope, console: Console) -> list[Any]:
    nodes = memory.list_memories(USER, statuses=("active", "expired"), limit=100)
    table = Table(title=f"memories of {USER}", title_justify="left")
    for column in ("type", "status", "content", "event time", "superseded by"):
        table.add_column(column)
    for n in nodes:
        when = f"{n.event_time.start:%Y-%m-%d}" if n.event_time else ""
        table.add_row(n.memory_type.value, n.status.value, escape(n.content), when, (n.superseded_by or "")[:8])
    console.print(table if nodes else "no memories yet (consolidation needs an LLM)")
    return nodes


def _print_retrieval(memory: MemoryScope, console: Console) -> dict[str, list[str]]:
    answers: dict[str, list[str]] = {}
    for question in QUESTIONS:
        started = time.perf_counter()
        result = memory.retrieve(USER, question, top_k=3, now=NOW)
        ms = (time.perf_counter() - started) * 1000
        answers[question] = [item.content for item in result.items]
        console.print(f"\n[bold]{question}[/]  ({ms:.1f} ms)")
        for item in result.items:
            console.print(f"  {item.score:.3f}  " + escape(f"[{item.kind}] {item.content}"))
    return answers


def _print_profile(memory: MemoryScope, console: Console) -> tuple[Any, list[Any]]:
    """The profile reflection built, and the beliefs derived for the demo's business."""
    profile = memory.profile(USER)
    table = Table(title=f"profile of {USER}", title_justify="left")
    for column in ("section", "slot", "value", "cites"):
        table.add_column(column)
    for e in profile.entries():
        table.add_row(e.section, escape(e.slot), escape(e.text), str(len(e.source_memory_ids)))
    console.print(table if profile else "no profile yet (reflection builds it; it needs an LLM)")
    beliefs = memory.beliefs(USER)
    console.print(f"\n[bold]beliefs[/] for {escape(memory.settings.business_description or BUSINESS)}:")
    for b in beliefs:
        console.print("  - " + escape(b.content))
    if not beliefs:
        console.print("  none yet (derived during reflection; needs an LLM and business_description)")
    return profile, beliefs
