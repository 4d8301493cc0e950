"""Shared fixtures: the scripted model server and an environment isolated from the developer's."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.scripted_server import ScriptedServer

_ISOLATED_VARS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DASHSCOPE_API_KEY", "MEMSCOPE_CONFIG")


@pytest.fixture(scope="session", autouse=True)
def model_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One MEMSCOPE_CACHE_DIR for the session (set before any module fixture loads a model): the local
    model's ONNX graphs are built once per session, and never in the developer's ~/.cache."""
    folder = tmp_path_factory.mktemp("memscope_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEMSCOPE_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory,
                  model_cache_dir: Path) -> Path:  # fmt: skip
    """No cloud keys or user config leak into a test; hubs are offline; MEMSCOPE_HOME is a fresh tmp dir."""
    for name in _ISOLATED_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    home = tmp_path_factory.mktemp("memscope_home")
    monkeypatch.setenv("MEMSCOPE_HOME", str(home))
    monkeypatch.setenv("MEMSCOPE_CACHE_DIR", str(model_cache_dir))
    return home


@pytest.fixture(scope="session")
def scripted_server() -> Iterator[ScriptedServer]:
    """One scripted OpenAI/DashScope server on 127.0.0.1 for the whole session."""
    server = ScriptedServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def model_server(scripted_server: ScriptedServer) -> Iterator[ScriptedServer]:
    """The scripted server, reset before and after the test (no scripts, defaults or requests)."""
    scripted_server.reset()
    yield scripted_server
    scripted_server.reset()


def _allowed_host(host: str) -> bool:
    extra = {h.strip() for h in os.environ.get("MEMSCOPE_TEST_ALLOWED_HOSTS", "").split(",") if h.strip()}
    return host in extra or host in ("localhost", "::1") or host.startswith("127.")


@pytest.fixture(autouse=True)
def _network_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail fast, naming the address, if a test tries to reach anything but this machine."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            host = str(address[0])
            if not _allowed_host(host):
                raise ConnectionRefusedError(
                    f"test tried to reach {host}:{address[1]}; tests may only talk to 127.0.0.1 "
                    "(start the scripted model server and point base_url at it)"
                )

    def connect(sock: socket.socket, address: object) -> None:
        check(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: object) -> int:
        check(sock, address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
