"""The conversation record's latency per database: commit a new conversation, load one, record a turn.

    python -m benchmarks.record --database sqlite --database postgresql --database mariadb --turns 100

Each database is a fresh one, dropped afterwards: a SQLite file, or `memscope_b_<random>` on the
servers named by MEMSCOPE_PG_URL and MEMSCOPE_MARIADB_URL (`scripts/postgres.sh url`,
`scripts/mariadb.sh url`). Rows:
- commit: `Recorder.new` + a user and an assistant turn + `commit` (one transaction, a new conversation);
- load: `Recorder.from_conversation` of a conversation of `--turns` turns;
- turn: load that conversation, add a user and an assistant turn, commit (it grows by 2 per sample).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session as DBSession

from benchmarks._common import emit, summarize

__all__ = ["run_record_bench"]

_DRIVERS = {"sqlite": "sqlite+pysqlite", "postgresql": "postgresql+psycopg", "mariadb": "mysql+pymysql"}
_ENV = {"postgresql": "MEMSCOPE_PG_URL", "mariadb": "MEMSCOPE_MARIADB_URL"}


@contextmanager
def fresh_database(kind: str) -> Iterator[URL]:
    """A new empty database of `kind`, dropped afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield URL.create(_DRIVERS[kind], database=str(Path(folder) / "record.db"))
        return
    raw = os.environ.get(_ENV[kind])
    if not raw:
        raise SystemExit(f"{_ENV[kind]} is not set: start the server with scripts/ and export its url")
    server = make_url(raw).set(drivername=_DRIVERS[kind])
    if kind == "mariadb":
        server = server.update_query_dict({"charset": "utf8mb4"})
    name = f"memscope_b_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
        try:
            yield server.set(database=name)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
    finally:
        admin.dispose()


def _sample(fn: Any, count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def run_record_bench(kind: str, turns: int, samples: int) -> list[dict[str, Any]]:
    """Latency summaries (ms) of commit, load and turn on one fresh database of `kind`."""
    from memscope.record import Recorder, migrate

    text = "I moved to Lisbon last spring and I am learning Portuguese on weekday evenings. " * 3
    with fresh_database(kind) as url:
        engine = sa.create_engine(url)
        try:
            migrate(engine)

            def commit_new() -> None:
                with DBSession(engine) as db:
                    rec = Recorder.new("bench-user", title="bench")
                    rec.add_prompt(text)
                    rec.add_response(text, model="bench-model", prompt_tokens=60, completion_tokens=60)
                    rec.commit(db)

            big = Recorder.new("bench-user", title="long")
            for i in range(turns // 2):
                big.add_prompt(f"{i}: {text}")
                big.add_response(text, model="bench-model", latency_ms=100.0)
            with DBSession(engine) as db:
                big.commit(db)

            def load() -> None:
                with DBSession(engine) as db:
                    Recorder.from_conversation(db, big.conversation_id)

            def turn() -> None:
                with DBSession(engine) as db:
                    rec = Recorder.from_conversation(db, big.conversation_id)
                    rec.add_prompt(text)
                    rec.add_response(text, model="bench-model")
                    rec.commit(db)

            rows = []
            for what, fn in (("commit", commit_new), (f"load {turns} turns", load), (f"turn on {turns}+", turn)):
                fn()  # warm: connection pool, statement caches
                rows.append({"database": kind, "what": what, **summarize(_sample(fn, samples)).to_dict()})
            return rows
        finally:
            engine.dispose()


def main(argv: list[str] | None = None) -> None:
    """Print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", action="append", choices=sorted(_DRIVERS), help="repeatable; default sqlite")
    parser.add_argument("--turns", type=int, default=100, help="turns in the conversation that is loaded")
    parser.add_argument("--samples", type=int, default=200, help="timed calls per row")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = [r for kind in args.database or ["sqlite"] for r in run_record_bench(kind, args.turns, args.samples)]
    emit(
        f"conversation record latency ({args.samples} samples per row)",
        ["database", "what", "p50 ms", "p95 ms", "p99 ms", "max ms"],
        [[r["database"], r["what"], r["p50"], r["p95"], r["p99"], r["max"]] for r in rows],
        rows,
        args.json,
    )


if __name__ == "__main__":
    main()
