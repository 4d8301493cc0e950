"""The README's FastAPI example, run as written, on SQLite and PostgreSQL, with the scripted model server."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from memscope.record import MessageRow
from tests.support.scripted_server import BUILTIN_MODES, ScriptedServer
from tests.support.sql import fresh_database

pytestmark = pytest.mark.integration
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_app() -> str:
    found = re.search(r"```python\n(# chat_app\.py[^\n]*\n.*?)```", README.read_text(), re.S)
    assert found, "README.md has no `# chat_app.py` block"
    return found.group(1)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_readme_fastapi_app_runs_as_written(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_server: ScriptedServer
):
    (tmp_path / "chat_app.py").write_text(readme_app())
    model_server.script("", "Try the Musée d'Orsay.")
    model_server.default(None, BUILTIN_MODES["consolidation"])  # memory's own background calls
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("OPENAI_BASE_URL", model_server.openai_base_url)
    with fresh_database(kind, tmp_path) as database:
        monkeypatch.setenv("DATABASE_URL", database.url.render_as_string(hide_password=False))
        spec = importlib.util.spec_from_file_location("chat_app", tmp_path / "chat_app.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, "chat_app", module)
        spec.loader.exec_module(module)
        try:
            with TestClient(module.app) as client:
                conversation = client.post("/users/tom/conversations").json()["id"]
                reply = client.post(f"/conversations/{conversation}/messages", json={"text": "A museum in Paris?"})
                assert reply.status_code == 200, reply.text
                assert reply.json() == {"answer": "Try the Musée d'Orsay.", "model": "gpt-4o-mini", "tokens": 4}
                missing = client.post("/conversations/nope/messages", json={"text": "hi"})
                assert missing.status_code == 404 and "no conversation 'nope'" in missing.json()["detail"]
            sent = next(r for r in model_server.requests_to("/chat/completions") if not r.tag).json["messages"]
            assert [m["role"] for m in sent] == ["system", "system", "user"]
            with module.engine.connect() as conn:
                rows = conn.execute(sa.select(MessageRow.role, MessageRow.model).order_by(MessageRow.position)).all()
            assert [tuple(r) for r in rows] == [("system", None), ("user", None), ("assistant", "gpt-4o-mini")]
            stored = module.memory.list_messages("tom", session_id=conversation, agent_id="helper")
            assert [m.content for m in stored] == ["A museum in Paris?", "Try the Musée d'Orsay."]
        finally:
            module.memory.close()
            module.engine.dispose()
