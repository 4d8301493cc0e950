"""CLI commands of the distributed mode: `memscope worker`, `memscope beat`, `memscope jobs status|failed|retry`.

Options after `--` go to Celery unchanged, e.g. `memscope worker -- --hostname w1@%h --pool solo`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from memscope.cli._app import app, load_or_exit

__all__ = ["jobs_app", "register"]

EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Config file; default: $MEMSCOPE_CONFIG.", show_default=False)
]
LogLevel = Annotated[str, typer.Option("--loglevel", "-l", help="DEBUG, INFO, WARNING or ERROR.")]

jobs_app = typer.Typer(help="Inspect background jobs (queued, running, failed per user).", no_args_is_help=True)


def _settings(config: Path | None):  # type: ignore[no-untyped-def]
    """Load the settings; a given file is also exported as MEMSCOPE_CONFIG for Celery's child processes."""
    from memscope.config import CONFIG_ENV

    if config is not None:
        os.environ[CONFIG_ENV] = str(config)
    settings = load_or_exit(None)
    if settings.jobs.backend != "celery":
        typer.echo("note: jobs.backend is 'local' in this config; set it to 'celery' so apps queue work here",
                   err=True)
    return settings


def worker(
    ctx: typer.Context,
    concurrency: Annotated[int | None, typer.Option(help="Worker processes (default: CPU count).")] = None,
    queues: Annotated[str | None, typer.Option(help="Comma-separated queues (default: jobs.celery.queue).")] = None,
    loglevel: LogLevel = "INFO",
    config: ConfigOpt = None,
) -> None:
    """Start a Celery worker that runs consolidation and reflection jobs."""
    settings = _settings(config)
    from memscope.jobs.celery_app import get_app

    argv = ["worker", f"--loglevel={loglevel}", f"--queues={queues or settings.jobs.celery.queue}"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    get_app().worker_main([*argv, *ctx.args])


def beat(
    ctx: typer.Context,
    loglevel: LogLevel = "INFO",
    schedule: Annotated[
        Path | None, typer.Option(help="Beat's state file (default: $MEMSCOPE_HOME/celerybeat-schedule).")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Start Celery beat: the sweep of pending messages and the reflection schedule."""
    _settings(config)
    from memscope.jobs.celery_app import get_app

    if schedule is None:
        home = Path(os.environ.get("MEMSCOPE_HOME") or "~/.memscope").expanduser()
        home.mkdir(parents=True, exist_ok=True)
        schedule = home / "celerybeat-schedule"
    code = get_app().start(["beat", f"--loglevel={loglevel}", f"--schedule={schedule}", *ctx.args])
    raise typer.Exit(code or 0)


@jobs_app.command("status")
def status(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user's jobs.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job records as JSON.")] = False,
    limit: Annotated[int, typer.Option(help="How many recent jobs to read.")] = 200,
    config: ConfigOpt = None,
) -> None:
    """Recent jobs per user: queued, running, succeeded, failed, and the latest error."""
    settings = _settings(config)
    if settings.jobs.backend != "celery":
        typer.echo("local jobs live in the process that runs them: see MemoryScope.jobs.status()", err=True)
        raise typer.Exit(1)
    import redis

    from memscope.jobs.celery_app import key_namespace
    from memscope.jobs.celery_dispatch import redis_client
    from memscope.jobs.status_book import JobBook

    client = redis_client(settings.jobs.celery.broker_url)
    try:
        records = JobBook(client, key_namespace(settings)).recent(user, limit=limit)
    except redis.RedisError as exc:
        typer.echo(f"cannot read job records from Redis: {exc}; check jobs.celery.broker_url", err=True)
        raise typer.Exit(1) from None
    finally:
        client.close()
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in records], ensure_ascii=False, indent=2))
        return
    if not records:
        typer.echo("no jobs recorded" + (f" for {user!r}" if user else ""))
        return
    by_user: dict[str, Counter[str]] = {}
    last_error: dict[str, str] = {}
    for record in records:  # newest first
        by_user.setdefault(record.user_id, Counter())[record.state.value] += 1
        if record.state.value in ("failed", "lost") and record.error and record.user_id not in last_error:
            last_error[record.user_id] = record.error
    typer.echo(f"{'user':<24} {'queued':>6} {'running':>7} {'ok':>5} {'failed':>6} {'lost':>5}  last error")
    for user_id, counts in by_user.items():
        error = last_error.get(user_id, "")  # in full: its end names the root cause
        typer.echo(
            f"{user_id[:24]:<24} {counts['queued']:>6} {counts['running']:>7} {counts['succeeded']:>5} "
            f"{counts['failed']:>6} {counts['lost']:>5}  {error}"
        )


@contextmanager
def _celery_dispatcher(config: Path | None) -> Iterator[Any]:
    """A dispatcher of the configured Celery deployment (exit 1 with the reason when there is none)."""
    settings = _settings(config)
    if settings.jobs.backend != "celery":
        typer.echo("local jobs live in the process that runs them: see MemoryScope.jobs.status()", err=True)
        raise typer.Exit(1)
    from memscope.errors import MemscopeError
    from memscope.jobs.celery_dispatch import CeleryDispatcher
    from memscope.runtime import Runtime

    try:
        runtime = Runtime(settings, llm=None)
    except MemscopeError as exc:
        typer.echo(f"cannot open the configured store: {exc}", err=True)
        raise typer.Exit(1) from None
    dispatcher = CeleryDispatcher(runtime)
    try:
        yield dispatcher
    except MemscopeError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    finally:
        dispatcher.close()
        runtime.close()


@jobs_app.command("failed")
def failed(
    as_json: Annotated[bool, typer.Option("--json", help="Print the job records as JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Failed jobs (poison jobs stopped after jobs.celery.max_attempts among them), newest first."""
    with _celery_dispatcher(config) as dispatcher:
        records = dispatcher.failed()
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in records], ensure_ascii=False, indent=2))
        return
    if not records:
        typer.echo("no failed jobs")
        return
    for record in records:
        when = record.finished_at.isoformat(timespec="seconds") if record.finished_at else "?"
        typer.echo(f"{record.id}  {when}  {record.operation}  {record.user_id}  {record.error}")


@jobs_app.command("retry")
def retry(
    job_id: Annotated[str | None, typer.Argument(help="The failed job to run again.")] = None,
    all_failed: Annotated[bool, typer.Option("--all", help="Run every failed job again.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Queue failed jobs again (a poison job too, once its cause is fixed); prints the new job ids."""
    if (job_id is None) == (not all_failed):
        typer.echo("give a job id or --all (not both)", err=True)
        raise typer.Exit(2)
    with _celery_dispatcher(config) as dispatcher:
        ids = [r.id for r in dispatcher.failed()] if all_failed else [str(job_id)]
        seen: set[tuple[str, str, str | None]] = set()
        for old in ids:
            record = dispatcher.book.get(old)
            work = (record.operation, record.user_id, record.agent_id) if record else None
            if work is not None and work in seen:
                continue  # one new job per piece of work
            new = dispatcher.retry(old)
            if work is not None:
                seen.add(work)
            typer.echo(f"{old} -> {new}")


def register(app: typer.Typer) -> None:
    """Add `worker`, `beat` and the `jobs` group to the memscope command."""
    app.command("worker", context_settings=EXTRA)(worker)
    app.command("beat", context_settings=EXTRA)(beat)
    app.add_typer(jobs_app, name="jobs")


register(app)
