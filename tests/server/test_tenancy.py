"""Two tenants' keys against one server: neither can read or write the other's users, whatever user_id it sends."""

from __future__ import annotations

import pytest

from tests.server.test_rest import consolidated
from tests.support.memscope_server import KEYS, ServerProcess
from tests.support.scripted_server import BUILTIN_MODES, ScriptedServer

pytestmark = pytest.mark.integration


def test_a_key_never_reaches_another_tenants_users(server: ServerProcess, model_server: ScriptedServer):
    model_server.default(None, BUILTIN_MODES["consolidation"])
    with server.client(KEYS["acme"]) as acme, server.client(KEYS["globex"]) as globex:
        acme.post("/v1/messages", json={"user_id": "tom", "messages": ["My secret project is called Bluebird"]})
        acme_memories = consolidated(acme, "tom")
        assert acme_memories
        memory_id = acme_memories[0]["id"]
        job_id = acme.get("/v1/jobs", params={"user_id": "tom"}).json()["jobs"][0]["id"]

        for user_id in ("tom", "acme:tom", " tom", "acme:tom:"):  # the same id, and attempts to escape the namespace
            params = {"user_id": user_id}
            assert globex.get("/v1/messages", params=params).json()["messages"] == []
            assert globex.get("/v1/memories", params={**params, "status": ["active", "expired", "deleted"]}).json() == {
                "memories": []
            }
            assert globex.get(f"/v1/memories/{memory_id}", params=params).status_code == 404
            assert globex.get(f"/v1/memories/{memory_id}/history", params=params).json() == []
            patch = globex.patch(f"/v1/memories/{memory_id}", json={**params, "content": "hijacked"})
            assert patch.status_code == 404
            assert globex.delete(f"/v1/memories/{memory_id}", params=params).status_code == 404
            found = globex.post("/v1/retrieve", json={**params, "query": "secret project Bluebird"}).json()
            assert "Bluebird" not in str(found)
            assert globex.get("/v1/users/stats", params=params).json()["total_messages"] == 0
            globex.delete("/v1/users", params=params)

        assert globex.get(f"/v1/jobs/{job_id}").status_code == 404
        assert globex.post(f"/v1/jobs/{job_id}/retry").status_code == 404
        assert all(j["id"] != job_id for j in globex.get("/v1/jobs").json()["jobs"])

        # globex's own "tom" is a different user, and acme's is untouched by everything above
        globex.post("/v1/messages", json={"user_id": "tom", "messages": ["I like tea"]})
        assert [m["content"] for m in globex.get("/v1/messages", params={"user_id": "tom"}).json()["messages"]] == [
            "I like tea"
        ]
        still = acme.get(f"/v1/memories/{memory_id}", params={"user_id": "tom"}).json()
        assert still["status"] == "active" and "Bluebird" in still["content"]
        assert [m["content"] for m in acme.get("/v1/messages", params={"user_id": "tom"}).json()["messages"]] == [
            "My secret project is called Bluebird"
        ]
