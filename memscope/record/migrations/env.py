"""Alembic environment of the conversation record: its own version table, a lock so two runs take turns."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, text

from memscope.record.tables import VERSION_TABLE, Base

LOCK_KEY = 7_261_531_093  # pg_advisory_xact_lock key; MySQL/MariaDB use the named lock below
LOCK_NAME = "memscope_record_migrate"


def run(connection: Connection) -> None:
    """Run the migrations on `connection`, holding a database lock so concurrent runs do not race."""
    dialect = connection.dialect.name
    context.configure(connection=connection, target_metadata=Base.metadata, version_table=VERSION_TABLE)
    if dialect in ("mysql", "mariadb"):  # DDL commits at once there, so the lock is the session's
        got = connection.execute(text("SELECT GET_LOCK(:name, 120)"), {"name": LOCK_NAME}).scalar()
        if got != 1:
            raise RuntimeError("another memscope record migration held the lock for 120 s; try again")
    try:
        with context.begin_transaction():
            if dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            context.run_migrations()
    finally:
        if dialect in ("mysql", "mariadb"):
            connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": LOCK_NAME})


given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:  # the `alembic` command line: alembic -c .../alembic.ini -x url=postgresql+psycopg://... upgrade head
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database: alembic -c memscope/record/migrations/alembic.ini -x url=URL upgrade head")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            run(conn)
    finally:
        engine.dispose()
