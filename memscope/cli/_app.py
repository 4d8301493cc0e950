"""The `memscope` Typer app and what every command group shares: exit codes, options, the config loader.

Problems and YAML are printed with plain `typer.echo` so that each stays on one line whatever the
terminal width (rich would wrap and could eat `[...]` as markup). Exit codes: 0 ok, 2 invalid config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memscope.config import Settings, env_config_path, load_settings
from memscope.errors import ConfigError

__all__ = ["EXIT_INVALID", "ConfigOpt", "PathArg", "app", "describe_source", "load_or_exit"]

EXIT_INVALID = 2

app = typer.Typer(
    name="memscope",
    help="Long-term memory for LLM chatbots: check configs, run operations, workers and jobs.",
    no_args_is_help=True,
    add_completion=False,
)
# Import heavy dependencies (numpy, torch, openai, elasticsearch) inside the commands, not here.

PathArg = Annotated[
    Path | None,
    typer.Argument(help="Config file; default: $MEMSCOPE_CONFIG, else the built-in defaults.", show_default=False),
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Config file (for user operations/workers).")]


def load_or_exit(path: Path | None) -> Settings:
    """Load the settings once (the file may be a pipe); on problems print each and exit 2."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(problem)
        count = len(exc.problems)
        typer.echo(f"{count} problem{'s' if count != 1 else ''} found", err=True)
        raise typer.Exit(EXIT_INVALID) from None


def describe_source(path: Path | None) -> str:
    if path is not None:
        return str(path)
    from_env = env_config_path()
    return f"{from_env} (from MEMSCOPE_CONFIG)" if from_env else "built-in defaults (= configs/default.yaml)"
