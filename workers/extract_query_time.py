"""extract_query_time: the time a query asks about ("last Friday", "上周三"), found by rules, no LLM."""

from __future__ import annotations

from memscope.engine import Context, Worker, WorkerParams, worker
from memscope.engine.worker import user_zone
from memscope.retrieval import clean_query, query_now
from memscope.timerules import extract_query_time


@worker("extract_query_time")
class ExtractQueryTime(Worker):
    """Find the time range a query refers to (English and Chinese rules), resolved against now."""

    reads = ("query",)
    optional_reads = ("now", "timezone")
    writes = ("query_time",)

    class Params(WorkerParams):
        max_chars: int = 500  # time words sit near the question; scanning more costs time for nothing

    params: Params

    def overlaps(self) -> bool:
        """Regexes in Python: beside other branches it would only take turns at the GIL."""
        return False

    def run(self, ctx: Context) -> None:
        text = clean_query(ctx["query"])[: self.params.max_chars]
        if not text:
            ctx["query_time"] = None
            return
        ctx["query_time"] = extract_query_time(text, anchor=query_now(self, ctx), tz=user_zone(self, ctx))
