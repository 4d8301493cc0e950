"""The `memscope` command, one module per command group, all on one Typer app (`memscope --help`).

`_app` holds the app, the shared options and the one config loader; `config` (version, config check/show),
`ops` (ops, workers), `demo` (demo, chat, reembed), `es`, `jobs` (worker, beat, jobs status|failed|retry)
and `bench` add their commands to it when imported; `memscope.server.cli` adds serve, mcp and keygen.
"""

from __future__ import annotations

from memscope.cli import bench, config, demo, es, jobs, ops  # noqa: F401  (each registers its commands)
from memscope.cli._app import app
from memscope.cli.config import config_app
from memscope.server.cli import register as _register_server_commands

_register_server_commands(app)  # serve, mcp, keygen, bench serve

__all__ = ["app", "config_app", "main"]


def main() -> None:
    """Entry point of the `memscope` console script."""
    app(prog_name="memscope")
