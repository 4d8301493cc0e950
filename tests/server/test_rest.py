"""The REST API through a real uvicorn process: messages, retrieval, memories, history, jobs, errors."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.support.memscope_server import ADMIN_KEY, KEYS, ServerProcess
from tests.support.scripted_server import BUILTIN_MODES, ScriptedServer

pytestmark = pytest.mark.integration
ACME = KEYS["acme"]


def consolidated(client: httpx.Client, user_id: str) -> list[dict[str, Any]]:
    """Consolidate the user's pending messages (waiting for the job) and return the active memories."""
    r = client.post("/v1/jobs/consolidate", json={"user_id": user_id, "wait": True, "timeout_s": 60})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "succeeded"
    return client.get("/v1/memories", params={"user_id": user_id}).json()["memories"]


def test_messages_retrieve_memories_history_and_delete(server: ServerProcess, model_server: ScriptedServer):
    model_server.default(None, BUILTIN_MODES["consolidation"])
    with server.client(ACME) as c:
        r = c.post("/v1/messages", json={"user_id": "tom", "session_id": "s1",
                                         "messages": ["I adopted a grey cat called Miso",
                                                      {"role": "assistant", "content": "Lovely name!"}]})  # fmt: skip
        assert r.status_code == 201, r.text
        stored = r.json()["messages"]
        assert [m["user_id"] for m in stored] == ["tom", "tom"]  # the tenant prefix never comes back
        found = c.post("/v1/retrieve", json={"user_id": "tom", "query": "what is my cat called?"}).json()
        assert "Miso" in found["context"]  # read-your-writes before any consolidation
        assert found["report"]["operation"] == "retrieve_memory"

        memories = consolidated(c, "tom")
        assert any("Miso" in m["content"] for m in memories)
        assert c.get("/v1/messages/pending", params={"user_id": "tom"}).json()["messages"] == []
        node = next(m for m in memories if "Miso" in m["content"] and m["memory_type"] == "observation")
        assert node["source_message_ids"] and node["user_id"] == "tom"

        changed = c.patch(f"/v1/memories/{node['id']}", json={"user_id": "tom", "content": "Tom's cat is Miso"})
        assert changed.status_code == 200 and changed.json()["content"] == "Tom's cat is Miso"
        assert c.delete(f"/v1/memories/{node['id']}", params={"user_id": "tom"}).json()["deleted"] == [node["id"]]
        kinds = [e["kind"] for e in c.get(f"/v1/memories/{node['id']}/history", params={"user_id": "tom"}).json()]
        assert kinds == ["add", "update", "delete"]
        events = c.get(f"/v1/memories/{node['id']}/history", params={"user_id": "tom"}).json()
        assert all(e["user_id"] == "tom" and (e["after"] or {}).get("user_id", "tom") == "tom" for e in events)

        added = c.post("/v1/memories", json={"user_id": "tom", "content": "Prefers tea to coffee"}).json()
        assert c.get(f"/v1/memories/{added['id']}", params={"user_id": "tom"}).json()["memory_type"] == "customized"
        stats = c.get("/v1/users/stats", params={"user_id": "tom"}).json()
        assert stats["total_messages"] == 2 and stats["pending_messages"] == 0
        jobs = c.get("/v1/jobs", params={"user_id": "tom"}).json()["jobs"]
        assert {j["user_id"] for j in jobs} == {"tom"}
        ran = next(j for j in jobs if j["summary"].get("llm_calls", 0) >= 1)
        assert c.get(f"/v1/jobs/{ran['id']}").json()["state"] == "succeeded"
        assert c.delete("/v1/users", params={"user_id": "tom"}).json()["records"] > 0
        assert c.get("/v1/messages", params={"user_id": "tom"}).json()["messages"] == []


def test_errors_are_json_with_code_message_fix(server: ServerProcess):
    with server.client() as anonymous:
        r = anonymous.get("/v1/memories", params={"user_id": "tom"})
        assert r.status_code == 401 and set(r.json()) == {"code", "message", "fix"}
    with server.client("not-a-key") as c:
        assert c.get("/v1/memories", params={"user_id": "tom"}).json()["code"] == "unauthorized"
    with server.client(ACME) as c:
        bad = c.post("/v1/messages", json={"user_id": "tom", "messages": [{"role": "user", "content": "x", "oops": 1}]})
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_request" and "oops" in bad.json()["message"]
        hidden = c.post("/v1/messages", json={"user_id": "to\u200bm", "messages": ["hi"]})
        assert hidden.status_code == 422 and hidden.json()["code"] == "invalid_input"
        assert "acme" not in hidden.text  # the tenant prefix is not in the message either
        missing = c.get("/v1/memories/0190aaaa-0000-7000-8000-000000000000", params={"user_id": "tom"})
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
        big = c.post("/v1/messages", json={"user_id": "tom", "messages": ["x" * 70_000]})
        assert big.status_code == 413 and big.json()["code"] == "too_large"
        assert c.get("/v1/messages", params={"user_id": "tom"}).json()["messages"] == []  # nothing stored
        assert c.get("/v1/profile", params={"user_id": "tom"}).json()["facts"] == []  # none until reflection
        entry = {"user_id": "tom", "content": "Works as a nurse", "memory_type": "profile", "key": "facts: job"}
        assert c.post("/v1/memories", json=entry).status_code == 201
        profile = c.get("/v1/profile", params={"user_id": "tom"}).json()
        assert profile["user_id"] == "tom" and [e["text"] for e in profile["facts"]] == ["Works as a nurse"]
        assert c.get("/v1/beliefs", params={"user_id": "tom"}).json() == []
        assert c.get("/nowhere").json()["code"] == "not_found"
    assert "Traceback" not in server.output()
    assert ACME not in server.output()


def test_health_readiness_and_openapi(server: ServerProcess):
    with server.client() as c:
        assert c.get("/healthz").json() == {"status": "ok", "checks": {}}
        ready = c.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"store": "ok", "model": "ok"}
        spec = c.get("/openapi.json").json()
        assert {"/v1/messages", "/v1/retrieve", "/v1/memories/{memory_id}/history", "/v1/jobs/{job_id}/retry"} <= set(
            spec["paths"]
        )
        docs = c.get("/docs")
        assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text
        assert "cdn" not in docs.text.lower()  # works offline: Swagger UI comes from this install
        assert c.get("/docs-assets/swagger-ui-bundle.js").status_code == 200


def test_admin_key_sees_tenant_users_under_their_stored_ids(server: ServerProcess):
    with server.client(ACME) as acme, server.client(ADMIN_KEY) as admin:
        acme.post("/v1/messages", json={"user_id": "zoe", "messages": ["I play the cello"]})
        seen = admin.get("/v1/messages", params={"user_id": "acme:zoe"}).json()["messages"]
        assert [m["content"] for m in seen] == ["I play the cello"]
        assert seen[0]["user_id"] == "acme:zoe"


def test_env_key_and_wait_for_slow_jobs(server: ServerProcess, model_server: ScriptedServer):
    from tests.support.memscope_server import ENV_KEY

    model_server.default(None, BUILTIN_MODES["consolidation"])
    with server.client(ENV_KEY) as c:
        c.post("/v1/messages", json={"user_id": "ivy", "messages": ["I moved to Porto"]})
        queued = c.post("/v1/jobs/consolidate", json={"user_id": "ivy"})
        assert queued.status_code == 202
        deadline = time.monotonic() + 30
        while c.get(f"/v1/jobs/{queued.json()['job_id']}").json()["state"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert c.get("/v1/memories", params={"user_id": "ivy"}).json()["memories"]
