"""`python -m benchmarks.record` on tiny sizes, so it cannot rot (no timing asserted)."""

from __future__ import annotations

import json

import pytest

from benchmarks.record import main

pytestmark = pytest.mark.integration


def test_record_bench_prints_one_row_per_measure(capsys: pytest.CaptureFixture[str]):
    main(["--database", "sqlite", "--turns", "6", "--samples", "3", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert [r["what"] for r in rows] == ["commit", "load 6 turns", "turn on 6+"]
    assert all(r["count"] == 3 and r["p50"] > 0 for r in rows)
