"""A real `memscope serve` process per test module, models on the suite's scripted server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.memscope_server import ServerProcess, server_config
from tests.support.scripted_server import ScriptedServer


@pytest.fixture(scope="module")
def server(scripted_server: ScriptedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`memscope serve` on a free port of 127.0.0.1, a SQLite store, keys of tenants acme, globex, initech and admin."""
    tmp = tmp_path_factory.mktemp("server")
    config = server_config(tmp, scripted_server.openai_base_url, max_body_bytes=64 * 1024)
    proc = ServerProcess(config, tmp / "server.log")
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()
