"""The live Elasticsearch server of the tests (MEMSCOPE_ES_URL, started by scripts/elasticsearch.sh)."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.services import service_missing

__all__ = ["EsNode", "es_prefix", "es_url", "fresh_prefix"]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "elasticsearch.sh"
START = "bash scripts/elasticsearch.sh start && export MEMSCOPE_ES_URL=$(bash scripts/elasticsearch.sh url)"


def es_url() -> str:
    """The URL of a live server; skips (locally) or fails (in CI) when none is set or answering."""
    url = os.environ.get("MEMSCOPE_ES_URL", "")
    if not url:
        service_missing("MEMSCOPE_ES_URL is not set: these tests need a live Elasticsearch", START)
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/_cluster/health", timeout=5) as resp:
            json.load(resp)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        service_missing(f"Elasticsearch at MEMSCOPE_ES_URL does not answer ({exc})", START)
    return url


def fresh_prefix(what: str = "test") -> str:
    """A fresh index prefix, so tests never see each other's documents."""
    return f"memscope-{what}-{uuid.uuid4().hex[:12]}"


@contextmanager
def es_prefix(what: str = "test") -> Iterator[tuple[str, str]]:
    """(url, fresh prefix); every index and template of the prefix is deleted afterwards."""
    from memscope.stores.elasticsearch import ElasticsearchStore

    url, prefix = es_url(), fresh_prefix(what)
    try:
        yield url, prefix
    finally:
        with ElasticsearchStore(url, index_prefix=prefix) as store:
            store.delete_indices()


@contextmanager
def store_section(backend: str, folder: Path, what: str = "test") -> Iterator[dict[str, object]]:
    """A test config's `store:` section: a SQLite file in `folder`, or fresh indices on the live
    Elasticsearch ("elasticsearch"), deleted afterwards."""
    if backend == "sqlite":
        yield {"path": str(folder / "memscope.db")}
        return
    with es_prefix(what) as (url, prefix):
        yield {"backend": "elasticsearch", "elasticsearch": {"url": url, "index_prefix": prefix, "refresh": "true"}}


class EsNode:
    """A private Elasticsearch node on its own port, started and stopped with scripts/elasticsearch.sh.

    For fault tests that stop the server: the shared one (MEMSCOPE_ES_URL) is never touched.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def _script(self, command: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "MEMSCOPE_ES_PORT": str(self.port)}
        return subprocess.run(
            ["bash", str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=300, check=False
        )

    def start(self) -> EsNode:
        """Start (or find running) the node; skip or fail like any missing service when it cannot."""
        done = self._script("start")
        if done.returncode != 0:
            service_missing(f"a private Elasticsearch node on port {self.port} did not start: {done.stderr[-600:]}",
                            START)
        return self

    def stop(self, purge: bool = False) -> None:
        """Stop the node and wait until it is gone; `purge` also deletes its data and logs."""
        done = self._script("purge" if purge else "stop")
        assert done.returncode == 0, done.stderr
