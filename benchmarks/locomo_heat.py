"""`python -m benchmarks.locomo_heat --data DIR`: would segment heat help LoCoMo retrieval recall?

The same ingest and questions as `memscope bench locomo` (no LLM), but each question retrieves 50
candidates once, and recall@k is computed after re-ranking them with a heat prior per session:
score + w * H(session) / max H, for several weights w (w = 0 is the plain ranking). H is memscope's
segment heat (memscope.heat) with the configured weights: turns of the session, visits (how many
earlier questions had the session in their top k, as retrieval's access count would) and the time
from the session's last turn to the question's `now`. Prints recall@k per weight.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks._common import emit
from benchmarks.locomo import USER, load_conversations, prepare, retrieved_dia_ids

WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.4)
CANDIDATES = 50


def session_heat(turns: Counter[str], last: dict[str, Any], visits: Counter[str], now: Any) -> dict[str, float]:
    """H per session at `now`, scaled to [0, 1] by the hottest."""
    from memscope.config import HeatSettings
    from memscope.heat import heat

    w = HeatSettings()
    raw = {s: heat(visits[s], turns[s], (now - last[s]).total_seconds() / 3600.0, w) for s in turns}
    top = max(raw.values(), default=0.0) or 1.0
    return {s: h / top for s, h in raw.items()}


def run(data: Path, k: int, limit: int | None) -> dict[str, Any]:
    """Recall@k per heat weight over the scored questions of the conversations."""
    recalls: dict[float, list[float]] = {w: [] for w in WEIGHTS}
    with tempfile.TemporaryDirectory(prefix="memscope-locomo-heat-") as tmp:
        for conv in load_conversations(data, limit):
            prepared = prepare(conv, Path(tmp))
            try:
                messages = prepared.memory.list_messages(USER)
                turns = Counter(m.session_id or "" for m in messages)
                last = {s: max(m.created_at for m in messages if (m.session_id or "") == s) for s in turns}
                session_of = {m.id: m.session_id or "" for m in messages}
                visits: Counter[str] = Counter()
                now = conv.last_date
                for q in conv.scored_questions():
                    found = prepared.memory.retrieve(USER, q.question, top_k=CANDIDATES, now=now).items
                    h = session_heat(turns, last, visits, now)
                    for w in WEIGHTS:
                        ranked = sorted(found, key=lambda i: -(i.score + w * h.get(session_of.get(i.id, ""), 0.0)))
                        got = retrieved_dia_ids(ranked[:k], prepared.dia_of)
                        recalls[w].append(sum(1 for e in q.evidence if e in got) / len(q.evidence))
                    visits.update({session_of.get(i.id, "") for i in found[:k]})
            finally:
                prepared.close()
    return {"k": k, "questions": len(recalls[0.0]),
            "recall": {str(w): round(sum(r) / len(r), 4) for w, r in recalls.items() if r}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of LoCoMo conv-*.json files")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--limit-conversations", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    summary = run(args.data, args.k, args.limit_conversations)
    rows = [[w, summary["questions"], r] for w, r in summary["recall"].items()]
    emit(f"LoCoMo recall@{args.k} with a session-heat prior", ["heat weight", "questions", "recall"], rows,
         summary, args.json)


if __name__ == "__main__":
    main()
