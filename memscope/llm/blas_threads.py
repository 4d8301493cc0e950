"""Run numpy's BLAS on one thread once the local embedder is used: many threads thrash on busy cores.

Measured on a loaded 2-core machine: one query took 370 ms with OpenBLAS's default threads and 33 ms
with one. The limit is process-wide and stays set: lowering it for each call and restoring it after
(what this module did before) costs far more than it saves when the call runs on a worker thread, as
retrieval steps do: 690 ms against 47 ms per query there, as OpenBLAS restarts its threads each time.
The SQLite store sets it too at its first vector search: its products run beside the query's embedding
and the BM25 search, and OpenBLAS's second thread then waits for a busy core (at 100k memories, p95 of
a retrieval 17.4 -> 14.3 ms; embed_query's p95 6.2 -> 3.4 ms).
"""

from __future__ import annotations

import os
import threading
from typing import Any

__all__ = ["limit_blas_to_one_thread"]

_lock = threading.Lock()
_state: dict[str, Any] = {"limiter": None, "done": False}
_CHOSEN = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def limit_blas_to_one_thread() -> None:
    """Limit BLAS to one thread for the rest of the process (once; a no-op without threadpoolctl, or when the
    environment sets BLAS threads itself: OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, MKL_NUM_THREADS)."""
    if _state["done"]:
        return
    with _lock:
        if _state["done"]:
            return
        if any(os.environ.get(name) for name in _CHOSEN):  # the user's choice stands
            _state["done"] = True
            return
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - a dependency; without it BLAS keeps its own threads
            _state["done"] = True
            return
        _state["limiter"] = ThreadpoolController().limit(limits=1, user_api="blas")
        _state["done"] = True
