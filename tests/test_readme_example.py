"""The README's customisation example, run as written: its three files are taken from README.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from memscope import MemoryScope
from tests.support.scripted_server import BUILTIN_MODES, ScriptedServer

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]


def readme_files() -> dict[str, str]:
    """Code blocks of the README whose first line is a `# path` comment, by path."""
    blocks = re.findall(r"```(?:yaml|python)\n# (\S+)[^\n]*\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    return {path: body for path, body in blocks}


def test_readme_customisation_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_server: ScriptedServer
):
    files = readme_files()
    assert {"my_ops/consolidate_memory.yaml", "my_workers.py", "memscope.yaml"} <= set(files)
    for path, body in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(body)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))

    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{tmp_path}:{REPO}", "HOME": str(tmp_path)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "memscope.cli",
            "ops",
            "validate",
            "my_ops/consolidate_memory.yaml",
            "--config",
            "memscope.yaml",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    model_server.default(None, BUILTIN_MODES["consolidation"])
    config = (
        (tmp_path / "memscope.yaml").read_text()
        + f"""
store: {{path: {tmp_path / "m.db"}}}
llm: {{backend: openai, model: m, api_key: k, base_url: "{model_server.openai_base_url}"}}
embedding: {{backend: openai, model: e, api_key: k, base_url: "{model_server.openai_base_url}", dim: 64}}
"""
    )
    (tmp_path / "memscope.yaml").write_text(config)
    with MemoryScope("memscope.yaml", background=False) as memory:
        assert "overrides built-in" in memory.runtime.catalog.get("consolidate_memory").notes[0]
        memory.add_messages("tom", "I work as a data scientist in San Francisco")
        memory.consolidate("tom", wait=True)
        [node] = memory.list_memories("tom")
        assert node.content.endswith("!") and node.content == node.content.upper()
        assert memory.stats("tom")["pending_messages"] == 0
