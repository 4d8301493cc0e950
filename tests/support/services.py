"""What a test does when a server it needs is absent: skip on a developer's machine, fail in CI."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def services_required() -> bool:
    """True under `.ci/run` (MEMSCOPE_REQUIRE_SERVICES=1) or any CI, where a missing server is a failure."""
    return os.environ.get("MEMSCOPE_REQUIRE_SERVICES") == "1" or os.environ.get("CI", "").lower() == "true"


def service_missing(what: str, how_to_start: str) -> NoReturn:
    """Skip (locally) or fail (in CI) saying which server is missing and the command that starts it."""
    message = f"{what}; start it with `{how_to_start}` (or run `bash .ci/run`, which starts every server)"
    if services_required():
        pytest.fail(message)
    pytest.skip(message)
