"""YAML bombs and oversize files are FILE:LINE problems, the same for config and operation files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memscope.cli import app
from memscope.engine import load_operation, parse_operation
from memscope.errors import OperationLoadError

pytestmark = pytest.mark.unit

RECURSIVE = "language: en\na: &a [*a]\n"
LAUGHS = "lol0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
)
HUGE = "language: en\n" + "# padding\n" * 150_000
DEEP = "a: " + "[" * 5000 + "]" * 5000 + "\n"

CASES = {
    "recursive": (RECURSIVE, ":2:4: recursive alias"),
    "laughs": (LAUGHS, ":1:"),
    "huge": (HUGE, ":1: the file is 1,500,013 bytes; YAML files are limited to 1,000,000 bytes"),
    "deep": (DEEP, ":1: the YAML is nested too deeply"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_check_reports_a_bomb_as_one_file_line_problem(tmp_path: Path, case: str) -> None:
    text, expected = CASES[case]
    path = tmp_path / "c.yaml"
    path.write_text(text)
    started = time.monotonic()
    result = CliRunner().invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 2, result.output + repr(result.exception)
    assert result.stdout.startswith(f"{path}{expected}"), result.stdout
    assert len(result.stdout.splitlines()) == 1
    assert "Traceback" not in result.output
    assert time.monotonic() - started < 30  # a bomb is refused, not expanded (38 s and MemoryError before)


def test_laughs_name_the_alias_expansion() -> None:
    with pytest.raises(OperationLoadError) as info:
        parse_operation(LAUGHS, "op.yaml")
    assert "aliases expand the file past 100,000 values" in str(info.value)


@pytest.mark.parametrize("case", sorted(CASES))
def test_operation_files_share_the_guard(case: str) -> None:
    text, expected = CASES[case]
    with pytest.raises(OperationLoadError) as info:
        parse_operation(text, "op.yaml")
    assert info.value.problems[0].startswith(f"op.yaml{expected}")


def test_non_utf8_operation_file_is_a_file_line_problem(tmp_path: Path) -> None:
    path = tmp_path / "op.yaml"
    path.write_bytes(b"name: x\nmode: inline\ndescription: caf\xe9\n")
    with pytest.raises(OperationLoadError) as info:
        load_operation(path)
    expected = f"{path}:3: the file is not UTF-8 text (invalid continuation byte); save it as UTF-8"
    assert info.value.problems == [expected]
