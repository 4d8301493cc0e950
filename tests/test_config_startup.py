"""`config check` is ok only when start-up would be: worker modules and operation folders are checked too."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from memscope.cli import app

pytestmark = pytest.mark.unit


def check(tmp_path: Path, body: str) -> tuple[int, str, Path]:
    path = tmp_path / "c.yaml"
    path.write_text("language: en\n" + body, encoding="utf-8")
    result = CliRunner().invoke(app, ["config", "check", str(path)])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.stdout, path


def test_a_missing_worker_module_is_a_problem_at_its_config_line(tmp_path: Path) -> None:
    code, out, path = check(tmp_path, "workers:\n  modules: [no_such_module_xyz]\n")
    assert code == 2
    assert out.startswith(f"{path}:3: workers.modules: cannot import 'no_such_module_xyz'")


def test_a_worker_module_that_raises_is_a_problem_at_its_own_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "boom_workers_mod.py").write_text("X = 1\nraise ValueError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, _ = check(tmp_path, "workers:\n  modules: [boom_workers_mod]\n")
    assert code == 2
    module = tmp_path / "boom_workers_mod.py"
    expected = f"{module}:2: workers.modules: importing 'boom_workers_mod' raised ValueError: boom at import"
    assert out.startswith(expected), out


def test_a_missing_operations_folder_is_a_problem(tmp_path: Path) -> None:
    code, out, _ = check(tmp_path, f"operations:\n  paths: [{tmp_path / 'nope'}]\n")
    assert code == 2
    assert out.startswith(f"{tmp_path / 'nope'}:1:1: operations.paths names a folder that does not exist")


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"name: x\nmode: sideways\nsteps: []\n", ":2:"), (b"name: caf\xe9\n", ":1: the file is not UTF-8 text")],
)
def test_a_broken_operation_file_is_a_file_line_problem(tmp_path: Path, content: bytes, expected: str) -> None:
    ops = tmp_path / "ops"
    ops.mkdir()
    (ops / "bad.yaml").write_bytes(content)
    code, out, _ = check(tmp_path, f"operations:\n  paths: [{ops}]\n")
    assert code == 2
    assert out.startswith(f"{ops / 'bad.yaml'}{expected}"), out


def test_a_good_config_with_its_folders_is_ok(tmp_path: Path) -> None:
    ops = tmp_path / "ops"
    ops.mkdir()
    code, out, _ = check(tmp_path, f"operations:\n  paths: [{ops}]\n")
    assert code == 0 and out.startswith("ok: ")
