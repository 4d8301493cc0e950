"""The same `memscope serve` in the distributed mode: Elasticsearch store, Celery jobs over Redis, a real worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.jobs.conftest import Processes, namespace, procs, start_model_server, start_worker, write_config  # noqa: F401
from tests.support.es import store_section
from tests.support.memscope_server import KEYS, ServerProcess, server_keys

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(240)
def test_serve_with_elasticsearch_and_a_celery_worker(tmp_path: Path, procs: Processes, namespace: str) -> None:  # noqa: F811
    with store_section("elasticsearch", tmp_path, "server") as store:
        model = start_model_server(procs)
        config = write_config(tmp_path, namespace, model.url, store=store, server={"keys": server_keys()})
        start_worker(procs, "w1", config, namespace)
        server = ServerProcess(config, tmp_path / "server.log").wait_ready()
        try:
            with server.client(KEYS["acme"]) as acme, server.client(KEYS["globex"]) as globex:
                ready = acme.get("/readyz").json()
                assert ready == {"status": "ok", "checks": {"store": "ok", "model": "ok", "redis": "ok"}}
                acme.post("/v1/messages", json={"user_id": "tom", "messages": ["I keep bees in my garden"]})
                done = acme.post("/v1/jobs/consolidate", json={"user_id": "tom", "wait": True, "timeout_s": 120})
                assert done.status_code == 200 and done.json()["state"] == "succeeded", done.text
                memories = acme.get("/v1/memories", params={"user_id": "tom"}).json()["memories"]
                assert any("bees" in m["content"] for m in memories) and memories[0]["user_id"] == "tom"
                assert acme.get(f"/v1/jobs/{done.json()['id']}").json()["user_id"] == "tom"
                assert globex.get(f"/v1/jobs/{done.json()['id']}").status_code == 404
                assert globex.get("/v1/memories", params={"user_id": "tom"}).json()["memories"] == []
        finally:
            server.stop()
