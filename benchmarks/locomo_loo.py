"""`python -m benchmarks.locomo_loo --data DIR --grid GRID.json`: is a retrieval setting's LoCoMo gain real?

The same ingest and questions as `memscope bench locomo` (no LLM), each conversation ingested once;
then, for each named setting of the grid (step params of `retrieve_memory` to override, e.g.
`{"boost.1": {"fuse_scores": {"session_boost": 0.1}}}`; `{}` is the shipped setting), recall@k of
every question. Prints each setting's recall in-sample and per conversation, then the leave-one-
conversation-out figure: for each conversation, the setting that scores best on the other ones is
scored on it, and the held-out recall is the mean over all questions of those picks. A gain that
only fits the conversations it was chosen on shows as an in-sample figure above the held-out one.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks._common import emit
from benchmarks.locomo import CachedEmbedder, QuestionResult, evaluate, load_conversations, prepare

__all__ = ["leave_one_out", "run_grid"]


def _mean(results: Sequence[QuestionResult]) -> float:
    return sum(r.recall for r in results) / len(results) if results else float("nan")


def leave_one_out(by_setting: Mapping[str, Sequence[QuestionResult]]) -> tuple[float, dict[str, str]]:
    """The held-out recall over all questions, and per conversation the setting picked on the others
    (ties: the first setting of the grid)."""
    names = list(by_setting)
    conversations = list(dict.fromkeys(r.conversation for r in by_setting[names[0]]))
    held: list[QuestionResult] = []
    picks: dict[str, str] = {}
    for conv in conversations:

        def train(name: str, conv: str = conv) -> float:
            return _mean([r for r in by_setting[name] if r.conversation != conv])

        best = max(names, key=lambda n: (train(n), -names.index(n)))
        picks[conv] = best
        held += [r for r in by_setting[best] if r.conversation == conv]
    return _mean(held), picks


def run_grid(data: Path, grid: Mapping[str, Mapping[str, Mapping[str, Any]]], k: int = 10,
             embed_cache: Path | None = None) -> dict[str, list[QuestionResult]]:  # fmt: skip
    """Every question's result under each setting of `grid` ({name: {worker: {param: value}}})."""
    from memscope.config import load_settings
    from memscope.llm.factory import make_embedder

    cfg: dict[str, Any] = {"llm": {"backend": "none"}}
    embedder: Any = make_embedder(load_settings(cfg).embedding)
    if embed_cache is not None:
        embedder = CachedEmbedder(embedder, embed_cache)
    out: dict[str, list[QuestionResult]] = {name: [] for name in grid}
    with tempfile.TemporaryDirectory(prefix="memscope-locomo-loo-") as tmp:
        for conv in load_conversations(data):
            prepared = prepare(conv, Path(tmp), embedder, cfg)
            try:
                runtime = prepared.memory.runtime
                steps = {s.worker: s for s in runtime.catalog.get("retrieve_memory").workers()}
                for name, overrides in grid.items():
                    saved = {w: steps[w].params for w in overrides}
                    for worker, params in overrides.items():
                        steps[worker].params = steps[worker].params.model_copy(update=dict(params))  # type: ignore[union-attr]
                    runtime.runner._workers.clear()  # the runner caches worker instances with their params
                    try:
                        out[name] += evaluate(prepared, k)
                    finally:
                        for worker, params in saved.items():
                            steps[worker].params = params
                        runtime.runner._workers.clear()
            finally:
                prepared.close()
    if isinstance(embedder, CachedEmbedder):
        embedder.save()
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, required=True, help="folder of LoCoMo conv-*.json files")
    parser.add_argument("--grid", type=Path, required=True, help="JSON: {name: {worker: {param: value}}}")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--embed-cache", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    grid = json.loads(args.grid.read_text(encoding="utf-8"))
    results = run_grid(args.data, grid, args.k, args.embed_cache)
    conversations = list(dict.fromkeys(r.conversation for r in next(iter(results.values()))))
    rows: list[list[Any]] = []
    for name, rs in results.items():
        per_conv = [round(_mean([r for r in rs if r.conversation == c]), 4) for c in conversations]
        rows.append([name, round(_mean(rs), 4), *per_conv])
    held, picks = leave_one_out(results)
    summary = {"in_sample": {row[0]: row[1] for row in rows}, "leave_one_out": round(held, 4), "picks": picks}
    emit(f"LoCoMo recall@{args.k} per setting", ["setting", "all", *conversations], rows, summary, args.json)
    if not args.json:
        print(f"leave one conversation out: {held:.4f} (picks: {picks})")


if __name__ == "__main__":
    main()
