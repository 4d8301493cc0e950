"""`memscope ops list|show|validate` and `memscope workers list`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from memscope.cli._app import EXIT_INVALID, ConfigOpt, app, load_or_exit
from memscope.errors import ConfigError

__all__ = ["ops_app", "workers_app"]

ops_app = typer.Typer(help="List, show and validate operations.", no_args_is_help=True)
workers_app = typer.Typer(help="List the registered workers.", no_args_is_help=True)
app.add_typer(ops_app, name="ops")
app.add_typer(workers_app, name="workers")


def _catalog(config: Path | None):  # type: ignore[no-untyped-def]
    from memscope.engine import OperationCatalog
    from memscope.errors import OperationLoadError

    settings = load_or_exit(config)
    try:
        return OperationCatalog(paths=settings.operations.paths, worker_modules=settings.workers.modules)
    except (OperationLoadError, ConfigError) as exc:
        for problem in exc.problems:
            typer.echo(problem)
        raise typer.Exit(EXIT_INVALID) from None


@ops_app.command("list")
def ops_list(config: ConfigOpt = None) -> None:
    """Name, mode and description of every operation (built-in and the config's folders)."""
    catalog = _catalog(config)
    width = max(len(n) for n in catalog.names())
    for name in catalog.names():
        spec = catalog.get(name)
        origin = "" if spec.builtin else f"  [{spec.source}]"
        typer.echo(f"{name:<{width}}  {spec.mode:<6}  {spec.description}{origin}")


@ops_app.command("show")
def ops_show(name: str, config: ConfigOpt = None) -> None:
    """An operation's inputs and steps, with each worker's params and the fields it reads and writes."""
    from memscope.engine import ParallelGroup

    catalog = _catalog(config)
    try:
        spec = catalog.get(name)
    except KeyError as exc:
        typer.echo(str(exc.args[0]), err=True)
        raise typer.Exit(EXIT_INVALID) from None
    typer.echo(f"{spec.name} ({spec.mode}) from {spec.source}\n  {spec.description}")
    typer.echo("inputs: " + ", ".join(k if spec.is_required(k) else f"{k}={v!r}" for k, v in spec.inputs.items()))
    for index, item in enumerate(spec.steps, start=1):
        steps = item.branches if isinstance(item, ParallelGroup) else [item]
        if isinstance(item, ParallelGroup):
            typer.echo(f"{index}. parallel:")
        for step in steps:
            assert step.worker_cls is not None and step.params is not None
            indent = "     - " if isinstance(item, ParallelGroup) else f"{index}. "
            params = step.params.model_dump()
            reads = ", ".join(step.worker_cls.declared_reads(step.params)) or "-"
            writes = ", ".join(step.worker_cls.declared_writes(step.params)) or "-"
            typer.echo(f"{indent}{step.worker} {params}  reads: {reads}  writes: {writes}")


@ops_app.command("validate")
def ops_validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="Operation files; default: built-ins.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Validate operation files; each problem on its own line as FILE:LINE:COL: message (exit 2 if any)."""
    from memscope.engine import builtin_operation_files, load_operation
    from memscope.engine.catalog import output_problems
    from memscope.engine.registry import load_worker_modules
    from memscope.errors import OperationLoadError

    settings = load_or_exit(config) if config else None
    if settings:
        load_worker_modules(settings.workers.modules)
    files = list(paths or builtin_operation_files())
    problems: list[str] = []
    for file in files:
        try:
            problems.extend(output_problems(load_operation(file)))
        except OperationLoadError as exc:
            problems.extend(exc.problems)
    for problem in problems:
        typer.echo(problem)
    if problems:
        typer.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found", err=True)
        raise typer.Exit(EXIT_INVALID)
    typer.echo(f"ok: {len(files)} operation file{'s' if len(files) != 1 else ''} valid")


@workers_app.command("list")
def workers_list(
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Every registered worker: name, what it does, whether it calls an LLM, its prompt languages."""
    import json

    from memscope.engine import registered_workers
    from memscope.engine.registry import load_worker_modules

    if config:
        load_worker_modules(load_or_exit(config).workers.modules)
    rows: list[dict[str, Any]] = [
        {
            "name": name,
            "description": cls.summary(),
            "uses_llm": cls.uses_llm,
            "prompt_languages": list(cls.prompt_languages),
            "reads": list(cls.reads),
            "writes": list(cls.writes),
        }
        for name, cls in registered_workers().items()
    ]
    if json_out:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        llm = "llm" if r["uses_llm"] else "   "
        langs = ",".join(r["prompt_languages"]) or "-"
        typer.echo(f"{r['name']:<{width}}  {llm}  {langs:<5}  {r['description']}")
    typer.echo(f"{len(rows)} workers")
