"""Fixtures of the record tests: a fresh database on each SQL server, migrated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from memscope.record import migrate
from tests.support.sql import SERVERS, TestDatabase, fresh_database


@pytest.fixture(params=SERVERS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestDatabase]:
    """An empty database on SQLite, PostgreSQL and MariaDB in turn."""
    with fresh_database(request.param, tmp_path) as db:
        yield db


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[TestDatabase]:
    """An empty PostgreSQL database."""
    with fresh_database("postgresql", tmp_path) as db:
        yield db


@pytest.fixture
def engine(database: TestDatabase) -> Iterator[sa.Engine]:
    """A sync engine on a migrated database of each server."""
    engine = database.engine()
    migrate(engine)
    yield engine
    engine.dispose()
