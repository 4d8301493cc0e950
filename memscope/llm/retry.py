"""Retries with jittered exponential backoff for transient model-call failures."""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from memscope.errors import ModelUnavailable

__all__ = ["backoff_delay", "call_with_retries", "parse_retry_after", "record_retry", "retry_unavailable"]

R = TypeVar("R")


def backoff_delay(attempt: int, base_delay_s: float, max_delay_s: float) -> float:
    """Delay before retry number `attempt` (0-based): half fixed, half random, doubling each time."""
    ceiling = min(max_delay_s, base_delay_s * (2**attempt))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the server asks us to wait: `retry-after-ms`, or `Retry-After` in seconds or as an HTTP date."""
    if not headers:
        return None
    found = {str(k).lower(): str(v).strip() for k, v in headers.items()}
    with contextlib.suppress(ValueError):
        if "retry-after-ms" in found:
            return max(0.0, float(found["retry-after-ms"]) / 1000)
    value = found.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - datetime.now(UTC)).total_seconds() if when.tzinfo else 0.0
    return max(0.0, seconds) if math.isfinite(seconds) else None


def call_with_retries(
    fn: Callable[[], R],
    *,
    attempts: int,
    base_delay_s: float = 0.5,
    max_delay_s: float = 8.0,
    is_transient: Callable[[BaseException], bool],
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[BaseException], None] | None = None,
    max_wait_s: float | None = None,
) -> R:
    """Call `fn` up to `attempts` times, sleeping between tries while its error is transient.

    Each wait is max(jittered backoff, the error's `retry_after_s`), capped at `max_wait_s` (the
    call's timeout budget). A non-transient error is raised at once; after the last attempt the
    last error is raised.
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
            delay = max(backoff_delay(attempt, base_delay_s, max_delay_s), getattr(exc, "retry_after_s", None) or 0.0)
            sleep(delay if max_wait_s is None else min(delay, max_wait_s))
    raise AssertionError("unreachable")  # pragma: no cover


def retry_unavailable(
    fn: Callable[[], R],
    *,
    retries: int,
    base_delay_s: float,
    max_delay_s: float,
    on_retry: Callable[[BaseException], None] | None = None,
    max_wait_s: float | None = None,
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
            max_wait_s=max_wait_s,
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
