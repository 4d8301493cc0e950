"""Create or upgrade the record's tables with the Alembic migrations shipped in the package."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["amigrate", "current_revision", "migrate"]

MIGRATIONS = Path(__file__).with_name("migrations")
_ONE_AT_A_TIME = threading.Lock()  # Alembic's `context` is process-global; across processes a database lock guards


def _config(connection: Connection, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    with _ONE_AT_A_TIME:
        command.upgrade(config, revision)


def migrate(bind: Engine | Connection, revision: str = "head") -> None:
    """Bring the record's tables to `revision`; running it again is a no-op.

    An Engine: in a transaction of its own, committed. A Connection: in the caller's transaction,
    left for the caller to commit (on MySQL/MariaDB, DDL commits by itself).
    """
    if isinstance(bind, Engine):
        with bind.begin() as connection:
            _config(connection, revision)
    else:
        _config(bind, revision)


async def amigrate(bind: AsyncEngine | AsyncConnection, revision: str = "head") -> None:
    """`migrate` for an async engine or connection."""
    if isinstance(bind, AsyncEngine):
        async with bind.begin() as connection:
            await connection.run_sync(_config, revision)
    else:
        await bind.run_sync(_config, revision)


def current_revision(bind: Engine | Connection) -> str | None:
    """The record's migration revision in this database, or None before the first `migrate`."""
    from alembic.migration import MigrationContext

    from memscope.record.tables import VERSION_TABLE

    def read(connection: Connection) -> str | None:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()

    if isinstance(bind, Engine):
        with bind.connect() as connection:
            return read(connection)
    return read(bind)
