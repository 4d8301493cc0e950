"""`memscope serve` (or `memscope mcp --transport http`) as a real uvicorn process on 127.0.0.1, for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from memscope.server.keys import hash_key

__all__ = ["ADMIN_KEY", "KEYS", "ServerProcess", "free_port", "server_config", "server_keys"]

KEYS = {"acme": "acme-key-0123456789abcdef", "globex": "globex-key-0123456789abcdef"}
ENV_KEY = "initech-key-0123456789abcdef"  # tenant initech, given through MEMSCOPE_API_KEYS in plain text
ADMIN_KEY = "admin-key-0123456789abcdef"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_keys() -> list[dict[str, Any]]:
    """The `server.keys` entries of the test keys: sha256 hashes, never the keys."""
    return [{"sha256": hash_key(k), "tenant": t} for t, k in KEYS.items()] + [
        {"sha256": hash_key(ADMIN_KEY), "admin": True}
    ]


def server_config(tmp_path: Path, model_url: str | None, **server: Any) -> Path:
    """A config file: SQLite in tmp_path, models on the scripted server, two tenants and an admin key (hashed)."""
    cfg: dict[str, Any] = {
        "store": {"path": str(tmp_path / "memscope.db")},
        "jobs": {"sweep_interval_s": 0.5},
        "llm": {"backend": "none"},
        "server": {"keys": server_keys(), **server},
    }
    if model_url is not None:
        cfg["llm"] = {"backend": "openai", "model": "test-model", "api_key": "test", "base_url": model_url}
        cfg["embedding"] = {"backend": "openai", "model": "test-embed", "api_key": "test", "base_url": model_url,
                            "dim": 64}  # fmt: skip
    path = tmp_path / "memscope.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


class ServerProcess:
    """A `memscope` server subprocess; `client(key)` is an httpx client with that key."""

    def __init__(self, config: Path, log: Path, command: tuple[str, ...] = ("serve",)) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "MEMSCOPE_API_KEYS": f"initech={ENV_KEY}", "PYTHONUNBUFFERED": "1"}
        self.log = log
        self._log_file = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "memscope.cli", *command, "--host", "127.0.0.1", "--port", str(self.port),
             "--config", str(config)],
            stdout=self._log_file, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 60.0) -> ServerProcess:
        """Block until /healthz answers (or the process died, with its log in the error)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not answer within {timeout}s:\n{self.output()}")

    def client(self, key: str | None = None) -> httpx.Client:
        """An HTTP client for the server with `Authorization: Bearer key`."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def output(self) -> str:
        """What the server printed so far."""
        self._log_file.flush()
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        """SIGINT (uvicorn's graceful stop), then kill if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()
