"""Retries with jittered exponential backoff for transient model-call failures."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from memscope.errors import ModelUnavailable

__all__ = ["backoff_delay", "call_with_retries", "record_retry", "retry_unavailable"]

R = TypeVar("R")


def backoff_delay(attempt: int, base_delay_s: float, max_delay_s: float) -> float:
    """Delay before retry number `attempt` (0-based): half fixed, half random, doubling each time."""
    ceiling = min(max_delay_s, base_delay_s * (2**attempt))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def call_with_retries(
    fn: Callable[[], R],
    *,
    attempts: int,
    base_delay_s: float = 0.5,
    max_delay_s: float = 8.0,
    is_transient: Callable[[BaseException], bool],
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[BaseException], None] | None = None,
) -> R:
    """Call `fn` up to `attempts` times, sleeping between tries while its error is transient.

    A non-transient error is raised at once; after the last attempt the last error is raised.
    """
    attempts = max(1, attempts)
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if attempt + 1 >= attempts or not is_transient(exc):
                raise
            if on_retry is not None:
                on_retry(exc)
            sleep(backoff_delay(attempt, base_delay_s, max_delay_s))
    raise AssertionError("unreachable")  # pragma: no cover


def retry_unavailable(
    fn: Callable[[], R],
    *,
    retries: int,
    base_delay_s: float,
    max_delay_s: float,
    on_retry: Callable[[BaseException], None] | None = None,
) -> R:
    """Call `fn`, retrying while it raises ModelUnavailable; the final error says how many attempts ran."""
    try:
        return call_with_retries(
            fn,
            attempts=retries + 1,
            base_delay_s=base_delay_s,
            max_delay_s=max_delay_s,
            is_transient=lambda exc: isinstance(exc, ModelUnavailable),
            on_retry=on_retry,
        )
    except ModelUnavailable as exc:
        if retries <= 0:
            raise
        raise ModelUnavailable(f"{exc} (gave up after {retries + 1} attempts)") from exc


def record_retry(backend: object, exc: BaseException) -> None:
    """Count a retried attempt on the backend's usage meter, if it has one (a backend method)."""
    from memscope.llm.base import Usage

    meter = getattr(backend, "meter", None)
    if meter is not None:
        meter.record(Usage(retries=1))
