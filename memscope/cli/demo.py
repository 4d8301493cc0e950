"""`memscope demo`, `memscope chat` and `memscope reembed`: the whole system, end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memscope.cli._app import EXIT_INVALID, ConfigOpt, app, load_or_exit

__all__ = ["chat", "demo", "reembed"]


@app.command()
def demo(
    config: ConfigOpt = None,
    store: Annotated[
        Path | None, typer.Option(help="Keep the demo's store in this file (default: a temp file).")
    ] = None,
) -> None:
    """Run a scripted multi-session conversation through the whole system and show what it remembers."""
    from memscope.demo import run_demo

    settings = load_or_exit(config)
    run_demo(settings, store_path=store)


@app.command()
def chat(
    user: Annotated[str, typer.Option("--user", "-u", help="Whose memory to use.")],
    session: Annotated[str | None, typer.Option(help="Session id (default: a new one).")] = None,
    config: ConfigOpt = None,
) -> None:
    """An interactive chatbot with memory. Commands: /memories, /forget ID, /consolidate, /exit."""
    from memscope.api import MemoryScope
    from memscope.errors import MemscopeError
    from memscope.models import new_id

    settings = load_or_exit(config)
    with MemoryScope(settings) as memory:
        if not memory.runtime.has_llm:
            typer.echo(
                "chat needs an LLM: set OPENAI_API_KEY (with OPENAI_BASE_URL for a compatible server) "
                "or DASHSCOPE_API_KEY, or llm.backend in the config.",
                err=True,
            )
            raise typer.Exit(EXIT_INVALID)
        session_id = session or new_id()
        typer.echo(f"memscope chat as {user!r} (session {session_id}); /exit to leave")
        while True:
            try:
                line = input("you> ").strip()
            except (EOFError, KeyboardInterrupt):
                break
            if not line:
                continue
            if line in ("/exit", "/quit"):
                break
            try:
                if line == "/memories":
                    for node in memory.list_memories(user):
                        typer.echo(f"  {node.id}  [{node.memory_type.value}] {node.content}")
                elif line.startswith("/forget"):
                    target = line.removeprefix("/forget").strip()
                    deleted = memory.delete_memory(user, target) if target else []
                    typer.echo(f"  forgot {len(deleted)} memor{'y' if len(deleted) == 1 else 'ies'}")
                elif line == "/consolidate":
                    record = memory.consolidate(user, wait=True)
                    typer.echo(f"  consolidation {getattr(record, 'state', record)}")
                else:
                    typer.echo(f"bot> {memory.chat(user, line, session_id=session_id)}")
            except MemscopeError as exc:
                typer.echo(f"  error: {exc}", err=True)


@app.command()
def reembed(config: ConfigOpt = None) -> None:
    """Re-embed every message and memory with the configured embedding model (after changing it)."""
    from memscope.errors import MemscopeError
    from memscope.reembed import reembed as run_reembed

    settings = load_or_exit(config)
    try:
        counts = run_reembed(settings, progress=lambda user, n: typer.echo(f"  {n} users done", err=True))
    except MemscopeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"ok: {counts['messages']} messages and {counts['memories']} memories of {counts['users']} users")
