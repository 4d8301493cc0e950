"""CLI commands of the server extra: `memscope serve`, `memscope mcp`, `memscope keygen`, `memscope bench serve`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

EXIT_INVALID = 2
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Config file; default: $MEMSCOPE_CONFIG.", show_default=False)
]


def _settings(config: Path | None):  # type: ignore[no-untyped-def]
    from memscope.config import load_settings
    from memscope.errors import ConfigError

    try:
        return load_settings(config)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(problem, err=True)
        raise typer.Exit(EXIT_INVALID) from None


def _server_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import mcp  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        from memscope.extras import install_hint

        typer.echo(f"the server needs the `server` extra ({exc.name} is missing): {install_hint('server')}", err=True)
        raise typer.Exit(EXIT_INVALID) from None


def _keys(settings, no_auth: bool, host: str):  # type: ignore[no-untyped-def]
    from memscope.errors import ConfigError
    from memscope.server.app import is_loopback
    from memscope.server.keys import KEYS_ENV, KeyRing

    try:
        keys = KeyRing.from_settings(settings.server)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(problem, err=True)
        raise typer.Exit(EXIT_INVALID) from None
    if no_auth:
        if not is_loopback(host):
            typer.echo(f"--no-auth is allowed on a loopback address only, not {host}", err=True)
            raise typer.Exit(EXIT_INVALID)
        return None
    if not len(keys):
        typer.echo(f"no API keys: add `server.keys` to the config or set {KEYS_ENV} (`memscope keygen --tenant "
                   "NAME` makes one), or pass --no-auth on 127.0.0.1", err=True)  # fmt: skip
        raise typer.Exit(EXIT_INVALID)
    return keys


def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default: server.host, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: server.port, 8420).")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="No API keys (loopback only): all calls admin.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Serve the REST API (/v1, /docs, /openapi.json), MCP over HTTP (/mcp/) and the memory browser (/ui)."""
    _server_extra()
    import uvicorn

    from memscope.api import MemoryScope
    from memscope.errors import MemscopeError
    from memscope.server.app import create_app

    settings = _settings(config)
    host = host or settings.server.host
    port = port or settings.server.port
    keys = _keys(settings, no_auth, host)
    try:
        memory = MemoryScope(settings)
        memory.warm_up()  # the model loads before the first request, not in it
    except MemscopeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    app = create_app(memory, keys)
    typer.echo(f"memscope serving on http://{host}:{port} (docs at /docs, browser at /ui, MCP at /mcp/)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)


def mcp(
    transport: Annotated[str, typer.Option(help="stdio or http (streamable HTTP at /mcp/).")] = "stdio",
    tenant: Annotated[str | None, typer.Option(help="stdio: act in this tenant's namespace (default: admin).")] = None,
    host: Annotated[str | None, typer.Option(help="http: address to bind (default: server.host).")] = None,
    port: Annotated[int | None, typer.Option(help="http: port (default: server.port).")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="http: no API keys (loopback only).")] = False,
    config: ConfigOpt = None,
) -> None:
    """An MCP server over stdio (for a local agent host) or streamable HTTP (with API keys)."""
    _server_extra()
    from memscope.api import MemoryScope
    from memscope.config import TENANT_NAME
    from memscope.server.keys import Principal

    settings = _settings(config)
    if transport not in ("stdio", "http"):
        typer.echo(f"--transport must be stdio or http, got {transport!r}", err=True)
        raise typer.Exit(EXIT_INVALID)
    if tenant is not None and not TENANT_NAME.fullmatch(tenant):
        typer.echo("--tenant must be lowercase letters, digits, '_' or '-'", err=True)
        raise typer.Exit(EXIT_INVALID)
    if transport == "stdio":
        import logging

        from memscope.server.mcp import build_mcp

        logging.basicConfig(stream=sys.stderr, level=logging.WARNING)  # stdout carries the protocol
        with MemoryScope(settings) as memory:
            build_mcp(lambda: memory, None, Principal(tenant)).run("stdio")
        return
    import uvicorn

    from memscope.server.app import create_app

    host = host or settings.server.host
    keys = _keys(settings, no_auth, host)
    app = create_app(MemoryScope(settings), keys, ui=False)
    uvicorn.run(app, host=host, port=port or settings.server.port, log_level="info", server_header=False)


def keygen(
    tenant: Annotated[str | None, typer.Option(help="Bind the key to this tenant namespace.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="An admin key (every user, ids as stored).")] = False,
) -> None:
    """Make a new API key: prints the key once, and the config entry that holds only its sha256."""
    from memscope.config import TENANT_NAME
    from memscope.server.keys import hash_key, new_key

    if admin == (tenant is not None) or (tenant is not None and not TENANT_NAME.fullmatch(tenant)):
        typer.echo("give --tenant NAME (lowercase letters, digits, '_' or '-') or --admin", err=True)
        raise typer.Exit(EXIT_INVALID)
    key = new_key()
    scope = "admin: true" if admin else f"tenant: {tenant}"
    typer.echo(f"key (shown once; give it to the client): {key}")
    typer.echo("config (server.keys):")
    typer.echo(f"  - {{sha256: {hash_key(key)}, {scope}}}")


def bench_serve(
    requests: Annotated[int, typer.Option(help="Timed calls per (mode, operation, clients) cell.")] = 320,
    clients: Annotated[list[int] | None, typer.Option("--clients", help="Concurrent clients (repeatable).")] = None,
    prefill: Annotated[int, typer.Option(help="Messages of the user that retrieve searches.")] = 500,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of a table.")] = False,
) -> None:
    """Retrieve and add over HTTP (a real `memscope serve`) at 1, 8 and 32 clients, beside the in-process API."""
    import importlib

    _server_extra()
    if str(Path.cwd()) not in sys.path and (Path.cwd() / "benchmarks" / "serve.py").exists():
        sys.path.insert(0, str(Path.cwd()))
    try:
        bench = importlib.import_module("benchmarks.serve")
    except ModuleNotFoundError:
        typer.echo("`memscope bench serve` needs the benchmarks/ folder: run it from a memscope source checkout",
                   err=True)  # fmt: skip
        raise typer.Exit(EXIT_INVALID) from None
    bench.report(bench.run_serve_bench(requests, tuple(clients or (1, 8, 32)), prefill), json_out)


def register(app: typer.Typer) -> None:
    """Add the server commands to the `memscope` command (and `bench serve` to its bench group)."""
    app.command("serve")(serve)
    app.command("mcp")(mcp)
    app.command("keygen")(keygen)
    for group in app.registered_groups:
        if group.name == "bench" and group.typer_instance is not None:
            group.typer_instance.command("serve")(bench_serve)
