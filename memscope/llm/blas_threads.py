"""Run numpy's BLAS on one thread while the local embedder works: many threads thrash on busy cores.

Measured on a loaded 2-core machine: one query took 370 ms with OpenBLAS's default threads and 33 ms
with one. The limit is process-wide, so it is reference-counted: the first embedding call sets it,
the last one to finish restores what was there before, and other numpy work runs unlimited between.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["one_blas_thread"]

_lock = threading.Lock()
_state: dict[str, Any] = {"users": 0, "limiter": None, "controller": None}


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS limited to one thread inside the block (a no-op without threadpoolctl)."""
    with _lock:
        if _state["users"] == 0:
            _state["limiter"] = _limit()
        _state["users"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["users"] -= 1
            if _state["users"] == 0 and _state["limiter"] is not None:
                _state["limiter"].restore_original_limits()
                _state["limiter"] = None


def _limit() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a dependency; without it BLAS keeps its own threads
        return None
    if _state["controller"] is None:
        _state["controller"] = ThreadpoolController()
    return _state["controller"].limit(limits=1, user_api="blas")
