"""The fault soak in CI, short: every fault enabled, nothing may be lost or duplicated."""

from __future__ import annotations

import pytest

from tests.jobs.conftest import redis_client


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(200)
def test_a_short_soak_loses_and_duplicates_nothing() -> None:
    from benchmarks.soak import run_soak

    redis_client().close()  # skips without Redis (the soak starts its own redis-server, which CI installs)
    result = run_soak(minutes=0.75, users=4, workers=2, kill_every=12, drain=75)
    assert result.kills >= 2 and result.redis_restarts == 1, result
    assert result.added > 0 and result.pending == 0, result
    assert (result.lost, result.duplicates) == (0, 0), result.problems
