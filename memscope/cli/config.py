"""`memscope version` and `memscope config check|show`."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml

from memscope import __version__
from memscope.cli._app import EXIT_INVALID, PathArg, app, describe_source, load_or_exit
from memscope.config import Settings, config_line, env_config_path, settings_to_dict
from memscope.errors import ConfigError

__all__ = ["config_app", "summary"]

config_app = typer.Typer(help="Check and show the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@app.command()
def version() -> None:
    """Print memscope's version."""
    typer.echo(f"memscope {__version__}")


@config_app.command("check")
def config_check(path: PathArg = None) -> None:
    """Validate a config file; print every problem as FILE:LINE: key: message (exit 2 if any)."""
    settings = load_or_exit(path)
    problems = _startup_problems(settings, path)
    if problems:  # valid YAML that start-up would still refuse: a worker module or an operations folder
        for problem in problems:
            typer.echo(problem)
        typer.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found", err=True)
        raise typer.Exit(EXIT_INVALID)
    typer.echo(f"ok: {describe_source(path)}")
    typer.echo(summary(settings))


def _startup_problems(settings: Settings, path: Path | None) -> list[str]:
    """What loading the operations and worker modules would refuse, each as FILE:LINE: message."""
    from memscope.engine import OperationCatalog
    from memscope.errors import OperationLoadError

    try:
        OperationCatalog(paths=settings.operations.paths, worker_modules=settings.workers.modules)
    except (OperationLoadError, ConfigError) as exc:
        source = path or env_config_path()
        line = config_line(source, ("workers", "modules")) if source else None
        where = f"{source}:{line}: " if line else (f"{source}: " if source else "")
        return [where + p if p.startswith("workers.modules") else p for p in exc.problems]
    return []


@config_app.command("show")
def config_show(path: PathArg = None) -> None:
    """Print the resolved settings as YAML (defaults filled in, ${VAR} resolved, secrets masked)."""
    settings = load_or_exit(path)
    typer.echo(f"# resolved from {describe_source(path)}")
    typer.echo(yaml.safe_dump(settings_to_dict(settings), sort_keys=False, allow_unicode=True), nl=False)


def summary(settings: Settings) -> str:
    """A few lines naming the chosen backends, for people checking a config."""
    data = settings_to_dict(settings)  # masked: URLs may carry passwords
    store = settings.store
    where = store.path if store.backend == "sqlite" else data["store"]["elasticsearch"]["url"]
    jobs = settings.jobs
    local = jobs.backend == "local"
    runner = f"{jobs.local.threads} threads" if local else data["jobs"]["celery"]["broker_url"]
    models = [
        f"embedding: {settings.embedding.backend}" + _model(settings.embedding.model),
        f"llm: {settings.llm.backend}" + _model(settings.llm.model),
        f"rerank: {settings.rerank.backend}",
    ]
    return "\n".join(
        [
            f"  store: {store.backend} ({where})",
            f"  jobs: {jobs.backend} ({runner})",
            "  " + ", ".join(models),
            f"  language: {settings.language}, timezone: {settings.timezone}",
        ]
    )


def _model(name: str | None) -> str:
    return f" ({name})" if name else ""
