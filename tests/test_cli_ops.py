"""`memscope ops list|show|validate`, `memscope workers list` and `memscope reembed`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memscope.cli import app

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_ops_list_names_every_builtin_with_its_mode():
    result = runner.invoke(app, ["ops", "list"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1] for line in result.output.splitlines() if line.strip()}
    assert rows["retrieve_memory"] == "inline" and rows["consolidate_memory"] == "queued"
    assert {"reflect_and_reconsolidate", "add_memory", "list_memory", "delete_memory"} <= set(rows)


def test_ops_show_lists_steps_with_their_fields():
    result = runner.invoke(app, ["ops", "show", "consolidate_memory"])
    assert result.exit_code == 0, result.output
    assert "inputs: user_id" in result.output
    assert "parallel:" in result.output
    assert "filter_informative {'keep_scores': [2, 3]}  reads: messages  writes: informative_messages" in result.output
    missing = runner.invoke(app, ["ops", "show", "nope"])
    assert missing.exit_code == 2 and "known:" in missing.output


def test_ops_validate_prints_each_problem_with_its_location_and_exits_2(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - load_pending_mesages: {}\n  - filter_informative: {keep: [3]}\n")
    done = subprocess.run(
        [sys.executable, "-m", "memscope.cli", "ops", "validate", str(bad)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stdout.splitlines()
    assert lines[0].startswith(
        f"{bad}:3:5: unknown worker 'load_pending_mesages' (did you mean 'load_pending_messages'?)"
    )
    assert lines[1].startswith(
        f"{bad}:4:26: step 'filter_informative' (worker 'filter_informative'): unknown param 'keep'"
    )
    assert "2 problems found" in done.stderr
    ok = runner.invoke(app, ["ops", "validate"])
    assert ok.exit_code == 0 and ok.output.startswith("ok: ")


def test_workers_list_json_describes_each_worker():
    result = runner.invoke(app, ["workers", "list", "--json"])
    assert result.exit_code == 0, result.output
    workers = {w["name"]: w for w in json.loads(result.output)}
    assert len(workers) >= 20
    assert workers["filter_informative"]["uses_llm"] and workers["filter_informative"]["prompt_languages"] == [
        "en",
        "zh",
    ]
    assert not workers["fuse_scores"]["uses_llm"] and workers["fuse_scores"]["description"]
    table = runner.invoke(app, ["workers", "list"])
    assert table.output.rstrip().endswith(f"{len(workers)} workers")


def test_reembed_on_elasticsearch_says_what_to_do_instead(tmp_path: Path):
    config = tmp_path / "es.yaml"
    config.write_text(
        "store: {backend: elasticsearch}\n"
        "embedding: {backend: openai, api_key: k, base_url: 'http://127.0.0.1:9', dim: 8}\n"
    )
    result = runner.invoke(app, ["reembed", "--config", str(config)])
    assert result.exit_code == 1
    assert "index_prefix" in result.output
