"""`memscope bench serve` on tiny sizes, so the command cannot rot (no timing is asserted)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from memscope.cli import app

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_bench_serve_measures_both_modes_and_operations() -> None:
    result = CliRunner().invoke(
        app, ["bench", "serve", "--requests", "4", "--clients", "1", "--clients", "2", "--prefill", "20", "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    cells = {(r["mode"], r["operation"], r["clients"]) for r in rows}
    assert cells == {(m, o, c) for m in ("in-process", "HTTP") for o in ("retrieve", "add") for c in (1, 2)}
    assert all(r["requests"] == 4 and r["per_s"] > 0 and r["p50_ms"] <= r["p95_ms"] for r in rows)
