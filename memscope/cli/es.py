"""`memscope es init|migrate`: the Elasticsearch indices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from memscope.cli._app import EXIT_INVALID, ConfigOpt, app, load_or_exit

__all__ = ["es_app"]

es_app = typer.Typer(help="Create and migrate the Elasticsearch indices.", no_args_is_help=True)
app.add_typer(es_app, name="es")


def _es_store(config: Path | None):  # type: ignore[no-untyped-def]
    from memscope.runtime import open_store

    settings = load_or_exit(config)
    if settings.store.backend != "elasticsearch":
        typer.echo("the config's store.backend is not elasticsearch; use configs/distributed.yaml", err=True)
        raise typer.Exit(EXIT_INVALID)
    return open_store(settings)


@es_app.command("init")
def es_init(config: ConfigOpt = None) -> None:
    """Put the index templates, create the indices and aliases, fill fields older messages lack (idempotent)."""
    from memscope.errors import MemscopeError

    store = _es_store(config)
    try:
        store.init_indices()
        features = store.features()
        filled = store.backfill_replied_to()
    except MemscopeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    analysis = "analysis-common: stemming and CJK bigrams" if features.analysis_common else "server core only"
    server = ".".join(map(str, features.version))
    typer.echo(f"ok: indices and aliases {store.index_prefix}-* ready on Elasticsearch {server} ({analysis})")
    if filled:
        typer.echo(f"filled replied_to (the turn replied to, for BM25) on {filled} message(s) stored before it")


@es_app.command("migrate")
def es_migrate(
    version: Annotated[int, typer.Argument(help="The new template version.")],
    delete_old: Annotated[bool, typer.Option(help="Delete the old indices after the alias moved.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Copy into a new template version and move the aliases atomically (stop writers first; resumable)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from memscope.errors import MemscopeError

    store = _es_store(config)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=Console(stderr=True)
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(kind: str, done: int, total: int) -> None:
            if kind not in tasks:
                tasks[kind] = bar.add_task(kind, total=total)
            bar.update(tasks[kind], completed=done, total=max(total, done))

        try:
            moved = store.migrate(version, delete_old=delete_old, progress=progress)
        except MemscopeError as exc:
            typer.echo(f"error: {exc} (run the same command again to resume)", err=True)
            raise typer.Exit(1) from None
    for kind, old, new in moved:
        typer.echo(f"{kind}: {old} -> {new}")
    if not moved:
        typer.echo(f"nothing to do: every index is at version {version} or later")
