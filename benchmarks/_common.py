"""What the benchmarks share: latency summaries, memory use, rich tables and JSON output, progress bars."""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "LatencySummary",
    "Timer",
    "console",
    "emit",
    "peak_rss_mb",
    "percentile",
    "progress",
    "rss_mb",
    "summarize",
]

T = TypeVar("T")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, linear interpolation; NaN when empty."""
    if not values:
        return float("nan")
    return float(np.percentile(np.asarray(values, dtype=float), q))


@dataclass
class LatencySummary:
    """Latency figures in milliseconds over `count` timed calls."""

    count: int
    p50: float
    p95: float
    p99: float
    mean: float
    max: float

    def to_dict(self) -> dict[str, float]:
        """JSON-ready figures, rounded to microseconds."""
        return {k: (v if k == "count" else round(v, 3)) for k, v in self.__dict__.items()}


def summarize(samples_ms: Sequence[float]) -> LatencySummary:
    """p50, p95, p99, mean and max of latencies in milliseconds."""
    if not samples_ms:
        nan = float("nan")
        return LatencySummary(0, nan, nan, nan, nan, nan)
    return LatencySummary(
        count=len(samples_ms),
        p50=percentile(samples_ms, 50),
        p95=percentile(samples_ms, 95),
        p99=percentile(samples_ms, 99),
        mean=float(np.mean(samples_ms)),
        max=float(np.max(samples_ms)),
    )


class Timer:
    """Collects wall-clock samples: `with timer: ...` adds one sample in milliseconds."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._start = 0.0

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.samples.append((time.perf_counter() - self._start) * 1000)


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MiB (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def rss_mb() -> float:
    """The process's current resident memory in MiB (Linux /proc; else the peak)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * resource.getpagesize() / (1024 * 1024)
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


@contextmanager
def progress(description: str, total: int | None, enabled: bool = True) -> Iterator[Any]:
    """A rich progress bar on stderr (hidden when not `enabled`); yields an `advance(n=1)` function."""
    if not enabled:
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def track(items: Iterable[T], description: str, total: int | None, enabled: bool = True) -> Iterator[T]:
    """Iterate `items` under a progress bar."""
    with progress(description, total, enabled) as advance:
        for item in items:
            yield item
            advance()


def emit(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], data: Any, as_json: bool) -> None:
    """Print `data` as JSON (machines) or `rows` as a rich table titled `title` (people)."""
    if as_json:
        print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
        return
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if column == columns[0] else "right")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    console().print(table)


def console() -> Any:
    """A rich console at least 150 columns wide (tables stay readable when piped)."""
    from rich.console import Console

    width = Console().width
    return Console(width=max(width, 150))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)
