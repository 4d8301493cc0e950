"""Fixtures of the store tests: a fake Elasticsearch endpoint for request-body tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.stores.test_es_bodies import FakeES


@pytest.fixture
def fake() -> Iterator[FakeES]:
    """A fake Elasticsearch on 127.0.0.1 that records each request; stopped after the test."""
    server = FakeES().start()
    yield server
    server.stop()
