"""The `memscope` command: version, config check (exit 2 on problems) and config show (secrets masked)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from memscope import __version__
from memscope.cli import app

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path("tests/fixtures/configs")
runner = CliRunner()


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    for name in ("MEMSCOPE_ES_URL", "MEMSCOPE_REDIS_URL", "MEMSCOPE_TEST_UNSET_DIR"):
        monkeypatch.delenv(name, raising=False)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m memscope.cli ARGS` in a real subprocess, importing memscope from this checkout."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "memscope.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.unit
def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"memscope {__version__}"


@pytest.mark.unit
def test_help_lists_the_config_group() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "config" in result.stdout and "version" in result.stdout


@pytest.mark.unit
def test_check_reports_each_problem_on_its_own_line_and_exits_2() -> None:
    source = FIXTURES / "three_problems.yaml"
    result = runner.invoke(app, ["config", "check", str(source)])
    assert result.exit_code == 2
    lines = result.stdout.splitlines()
    assert [line.split(": ")[0] for line in lines] == [f"{source}:5", f"{source}:8", f"{source}:11"]
    assert lines[2].endswith("unknown key; did you mean 'model'? (allowed: backend, model, api_key, "
                             "base_url, timeout_s, max_retries, json_schema)")


@pytest.mark.unit
def test_check_malformed_yaml_exits_2_with_line_and_column() -> None:
    result = runner.invoke(app, ["config", "check", str(FIXTURES / "malformed.yaml")])
    assert result.exit_code == 2
    assert result.stdout.startswith(f"{FIXTURES / 'malformed.yaml'}:4:5: invalid YAML:")


@pytest.mark.unit
def test_check_valid_file_prints_ok_and_backends() -> None:
    result = runner.invoke(app, ["config", "check", "configs/distributed.yaml"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "ok: configs/distributed.yaml"
    assert "  store: elasticsearch (http://127.0.0.1:9200)" in lines
    assert "  jobs: celery (redis://127.0.0.1:6379/0)" in lines


@pytest.mark.unit
def test_check_without_path_uses_memscope_config(monkeypatch: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["config", "check"])
    assert result.exit_code == 0
    assert result.stdout.startswith("ok: built-in defaults")
    assert "  store: sqlite (" in result.stdout
    monkeypatch.setenv("MEMSCOPE_CONFIG", str(FIXTURES / "bad_choice.yaml"))
    result = runner.invoke(app, ["config", "check"])
    assert result.exit_code == 2
    bad = FIXTURES / "bad_choice.yaml"
    assert result.stdout.startswith(f"{bad}:4: store.backend: 'sqlte' is not allowed")


@pytest.mark.unit
def test_show_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMSCOPE_TEST_LLM_KEY", "sk-very-secret")
    result = runner.invoke(app, ["config", "show", str(FIXTURES / "valid_custom.yaml")])
    assert result.exit_code == 0, result.output
    assert "sk-very-secret" not in result.stdout
    assert "sk-embed-default" not in result.stdout
    assert "hunter2" not in result.stdout
    shown = yaml.safe_load(result.stdout)
    assert shown["llm"]["api_key"] == "***"
    assert shown["embedding"]["api_key"] == "***"
    assert shown["rerank"]["api_key"] is None
    assert shown["jobs"]["celery"]["broker_url"] == "redis://:***@127.0.0.1:6379/1"
    assert shown["llm"]["model"] == "qwen2.5:7b"
    assert shown["store"]["path"] == str(Path.home() / "memscope-test" / "memory.db")


@pytest.mark.unit
def test_show_defaults_is_the_default_config() -> None:
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 0
    shown = yaml.safe_load(result.stdout)
    assert shown["store"]["backend"] == "sqlite"
    assert shown["jobs"]["sweep_interval_s"] == 10


@pytest.mark.unit
def test_show_invalid_exits_2() -> None:
    result = runner.invoke(app, ["config", "show", str(FIXTURES / "bad_choice.yaml")])
    assert result.exit_code == 2
    assert "choose one of: sqlite, elasticsearch" in result.stdout


@pytest.mark.integration
def test_subprocess_check_exits_2_with_three_problems() -> None:
    source = FIXTURES / "three_problems.yaml"
    proc = run_cli("config", "check", str(source))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"{source}:5: store.path: environment variable MEMSCOPE_TEST_UNSET_DIR")
    assert lines[1] == f"{source}:8: jobs.sweep_interval_s: expected a number of seconds > 0, got 'soon'"
    assert lines[2].startswith(f"{source}:11: llm.modle: unknown key; did you mean 'model'?")
    assert proc.stderr.strip() == "3 problems found"


@pytest.mark.integration
def test_subprocess_version_and_ok() -> None:
    proc = run_cli("version")
    assert (proc.returncode, proc.stdout.strip()) == (0, f"memscope {__version__}")
    proc = run_cli("config", "check", "configs/default.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok: configs/default.yaml\n")


@pytest.mark.integration
def test_importing_the_cli_stays_light() -> None:
    code = ("import sys, memscope.cli; heavy = {'numpy', 'torch', 'openai', 'elasticsearch', 'celery', "
            "'dashscope', 'sentence_transformers'} & set(sys.modules); print(sorted(heavy))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.integration
@pytest.mark.parametrize("module", ["memscope", "memscope.cli"])
def test_python_dash_m_runs_the_command(module: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    for group in ("config", "ops", "workers", "es", "jobs", "bench", "demo", "chat", "reembed", "worker", "beat"):
        assert f" {group} " in done.stdout, group


@pytest.mark.unit
def test_bench_leaves_sys_path_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from memscope.cli.bench import _bench

    def ours() -> list[str]:
        return [n for n in sys.modules if n == "benchmarks" or n.startswith("benchmarks.")]

    for name in ours():
        monkeypatch.delitem(sys.modules, name)  # put back when the test ends
    checkout = tmp_path / "checkout"
    (checkout / "benchmarks").mkdir(parents=True)
    (checkout / "benchmarks" / "__init__.py").write_text("")
    (checkout / "benchmarks" / "_common.py").write_text("VALUE = 42\n")
    (checkout / "benchmarks" / "probe.py").write_text("from benchmarks._common import VALUE\n")
    monkeypatch.chdir(checkout)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(REPO), ".")])
    before = list(sys.path)
    try:
        assert _bench("probe").VALUE == 42  # its `from benchmarks._common import` found by the package's path
        assert sys.path == before
    finally:
        for name in ours():
            del sys.modules[name]
