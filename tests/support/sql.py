"""Throwaway databases on the SQL servers the record tests use: SQLite files, PostgreSQL, MariaDB.

Each test gets a database of its own (`memscope_t_<random>`), dropped afterwards, so runs sharing a
server never see each other's rows. A server that is not configured or refuses is `service_missing`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from tests.support.services import service_missing

__all__ = ["SERVERS", "TestDatabase", "fresh_database"]

SERVERS = ("sqlite", "postgresql", "mariadb")
_ENV = {"postgresql": "MEMSCOPE_PG_URL", "mariadb": "MEMSCOPE_MARIADB_URL"}
_SCRIPT = {"postgresql": "scripts/postgres.sh", "mariadb": "scripts/mariadb.sh"}
_DRIVERS = {
    "sqlite": ("sqlite+pysqlite", "sqlite+aiosqlite"),
    "postgresql": ("postgresql+psycopg", "postgresql+asyncpg"),
    "mariadb": ("mysql+pymysql", "mysql+aiomysql"),
}


@dataclass(frozen=True)
class TestDatabase:
    """A fresh, empty database: its kind and the URLs for the sync and async drivers."""

    __test__ = False  # not a test class
    kind: str
    url: URL
    async_url: URL

    def engine(self, **kwargs: object) -> sa.Engine:
        """A sync engine on this database."""
        return sa.create_engine(self.url, **kwargs)  # type: ignore[arg-type]


def server_url(kind: str) -> URL:
    """The configured server URL, or service_missing saying how to start the server."""
    how = f"bash {_SCRIPT[kind]} start && export {_ENV[kind]}=$(bash {_SCRIPT[kind]} url)"
    raw = os.environ.get(_ENV[kind])
    if not raw:
        service_missing(f"{kind} for the conversation-record tests is not configured ({_ENV[kind]} is unset)", how)
    url = make_url(raw).set(drivername=_DRIVERS[kind][0])
    if kind == "mariadb":
        url = url.update_query_dict({"charset": "utf8mb4"})
    engine = sa.create_engine(url, pool_pre_ping=False)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        service_missing(f"{kind} at {url.render_as_string(hide_password=True)} refused: {exc.orig}", how)
    finally:
        engine.dispose()
    return url


@contextmanager
def fresh_database(kind: str, tmp_path: Path) -> Iterator[TestDatabase]:
    """An empty database of `kind` for one test, dropped afterwards."""
    sync_driver, async_driver = _DRIVERS[kind]
    if kind == "sqlite":
        url = URL.create(sync_driver, database=str(tmp_path / "record.db"))
        yield TestDatabase(kind, url, url.set(drivername=async_driver))
        return
    admin_url = server_url(kind)
    name = f"memscope_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            extra = " CHARACTER SET utf8mb4" if kind == "mariadb" else ""
            conn.execute(sa.text(f"CREATE DATABASE {name}{extra}"))
        url = admin_url.set(database=name)
        try:
            yield TestDatabase(kind, url, url.set(drivername=async_driver))
        finally:
            with admin.connect() as conn:
                force = " WITH (FORCE)" if kind == "postgresql" else ""
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}{force}"))
    finally:
        admin.dispose()
