"""`python -m benchmarks.locomo_scale --data DIR -d 0 -d 100000`: does retrieval stay right in a large store?

The same ingest and questions as `memscope bench locomo` (no LLM, the local MiniLM), but before the
questions the user's store also gets N distractors: real English sentences, the glosses and usage
examples of WordNet (Debian's `wordnet-base`, /usr/share/wordnet), embedded with the same model and
dated across the year up to the conversation's last day, so that time-filtered searches meet them
too. `--kind messages` (the default) adds them as earlier turns of the same two speakers, in
sessions of 20: the evidence turns then compete with N other turns in the same index (BM25 over a
large index, with unselective terms left out or AND'ed; the approximate vector index; the candidate
window). `--kind memories` adds them as observations (a third with an event day), which compete with
the turns through fusion. Prints recall@k and latency per distractor count, side by side.
"""

from __future__ import annotations

import argparse
import random
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks._common import emit, progress, summarize
from benchmarks.locomo import (
    USER,
    CachedEmbedder,
    Conversation,
    QuestionResult,
    evaluate,
    load_conversations,
    memory_count,
    prepare,
    summarize_recall,
)
from memscope.errors import ConfigError

__all__ = ["ScaleRun", "distractor_memories", "distractor_messages", "run_scale", "wordnet_sentences"]

WORDNET = Path("/usr/share/wordnet")
_PARTS = ("data.noun", "data.verb", "data.adj", "data.adv")
_QUOTED = re.compile(r'^"(.*)"$')


def wordnet_sentences(folder: Path = WORDNET, limit: int | None = None, seed: int = 7) -> list[str]:
    """WordNet's usage examples and glosses as distinct sentences, in a fixed shuffled order."""
    files = [folder / name for name in _PARTS]
    if not all(f.is_file() for f in files):
        raise FileNotFoundError(
            f"no WordNet database in {folder} (data.noun, data.verb, ...): install Debian's wordnet-base "
            "(apt-get install wordnet-base) or pass --wordnet DIR"
        )
    texts: dict[str, None] = {}
    for path in files:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  ") or " | " not in line:
                continue  # the licence header
            for part in line.split(" | ", 1)[1].split(";"):
                text = part.strip()
                quoted = _QUOTED.match(text)
                text = quoted.group(1).strip() if quoted else text
                if len(text.split()) >= 3:
                    texts[text] = None
    out = sorted(texts)
    random.Random(seed).shuffle(out)
    return out[:limit] if limit is not None else out


def distractor_memories(conv: Conversation, texts: Sequence[str], vectors: Any, offset: int = 0) -> list[Any]:
    """One observation per text (the `offset`-th on), created across the year before the conversation's last
    day; a third also carry an event day, so a question naming a time meets them in its time-filtered search."""
    from memscope.models import EventTime, Granularity, MemoryNode, MemoryType

    rng = random.Random(offset)
    last = conv.last_date
    out = []
    for i, text in enumerate(texts, start=offset):
        created = last - timedelta(days=rng.uniform(0, 365), seconds=i)
        event = None
        if rng.random() < 0.3:
            day = (created - timedelta(days=rng.uniform(0, 30))).replace(hour=0, minute=0, second=0, microsecond=0)
            event = EventTime(start=day, end=day + timedelta(days=1), granularity=Granularity.DAY)
        out.append(MemoryNode(
            id=f"wordnet-{i:07d}", user_id=USER, memory_type=MemoryType.OBSERVATION, content=text,
            embedding=[float(x) for x in vectors[i - offset]], created_at=created, updated_at=created, event_time=event,
            importance=round(rng.uniform(0.2, 0.9), 2),
        ))  # fmt: skip
    return out


def distractor_messages(conv: Conversation, texts: Sequence[str], offset: int = 0) -> list[Any]:
    """One turn per text (the `offset`-th on, a multiple of 20), the conversation's two speakers taking turns
    in sessions of 20, each session on a day of the year before the conversation's last day."""
    from memscope.models import Message

    rng = random.Random(offset)
    last = conv.last_date
    out = []
    day = last
    for i, text in enumerate(texts, start=offset):
        if i % 20 == 0:
            day = last - timedelta(days=rng.uniform(1, 365))
        out.append(Message(
            id=f"wordnet-{i:07d}", user_id=USER, session_id=f"wordnet_{i // 20}", role="user", content=text,
            name=conv.speakers[i % 2], created_at=day + timedelta(seconds=i % 20),
        ))  # fmt: skip
    return out


def _add_distractors(store: Any, conv: Conversation, kind: str, texts: Sequence[str], vectors: Any,
                     show_progress: bool) -> None:  # fmt: skip
    """Write `texts` into the conversation's store as `kind` ("memories" or "messages"), with their vectors."""
    n = len(texts)
    batch = 2000
    with progress(f"{conv.name}: {n:,} distractor {kind}", n, show_progress and n > 0) as advance:
        for start in range(0, n, batch):
            chunk = texts[start : start + batch]
            if kind == "memories":
                store.write_memories(distractor_memories(conv, chunk, vectors[start:], start), operation="bench")
            else:
                messages = distractor_messages(conv, chunk, start)
                store.add_messages(messages)
                store.set_message_embeddings(USER, {m.id: vectors[start + j] for j, m in enumerate(messages)})
            advance(len(chunk))


@dataclass
class ScaleRun:
    """Each distractor count's question results, and the rows (turns and memories) of each store."""

    kind: str
    results: dict[int, list[QuestionResult]]
    rows: dict[int, dict[str, int]]


def run_scale(data: Path, counts: Sequence[int], k: int = 10, limit_conversations: int | None = None,
              embed_cache: Path | None = None, wordnet: Path = WORDNET, kind: str = "messages",
              show_progress: bool = True, config: Path | None = None) -> ScaleRun:  # fmt: skip
    """Every scored question's result with each number of distractors in the user's store (`config`: a
    memscope config file whose settings apply, e.g. `retrieval.candidates`; never an LLM)."""
    from memscope.config import load_settings, settings_to_dict
    from memscope.llm.factory import make_embedder

    if any(n < 0 for n in counts):
        raise ValueError("distractor counts must be at least 0")
    if k < 1:
        raise ValueError(f"--k must be at least 1, got {k}")
    if kind not in ("memories", "messages"):
        raise ValueError(f"unknown distractor kind {kind!r}; choose memories or messages")
    conversations = load_conversations(data, limit_conversations)
    texts = wordnet_sentences(wordnet, max(counts, default=0))
    if len(texts) < max(counts, default=0):
        raise ValueError(f"WordNet gives {len(texts)} sentences; ask for at most that many distractors")
    chosen = settings_to_dict(load_settings(config), mask_secrets=False) if config is not None else {}
    cfg: dict[str, Any] = {**chosen, "llm": {"backend": "none"}}
    embedder: Any = make_embedder(load_settings(cfg).embedding)
    if embed_cache is not None:
        embedder = CachedEmbedder(embedder, embed_cache)
    vectors = _embed(embedder, texts, show_progress)
    out = ScaleRun(kind, {n: [] for n in counts}, {n: {} for n in counts})
    with tempfile.TemporaryDirectory(prefix="memscope-locomo-scale-") as tmp:
        for n in counts:
            for conv in conversations:
                folder = Path(tmp) / f"{n}"
                folder.mkdir(exist_ok=True)
                prepared = prepare(conv, folder, embedder, cfg)
                try:
                    store = prepared.memory.runtime.store
                    _add_distractors(store, conv, kind, texts[:n], vectors, show_progress)
                    if n and hasattr(store, "build_vector_index"):
                        store.build_vector_index(USER, kind)  # as a store that grew over months would have it
                    out.results[n] += evaluate(prepared, k, show_progress)
                    out.rows[n][conv.name] = store.stats(USER).total_messages + memory_count(store)
                finally:
                    prepared.close()
    if isinstance(embedder, CachedEmbedder):
        embedder.save()
    return out


def _embed(embedder: Any, texts: Sequence[str], show_progress: bool) -> Any:
    import numpy as np

    if not texts:
        return np.zeros((0, embedder.dim), np.float32)
    parts = []
    with progress("embedding distractors", len(texts), show_progress) as advance:
        for start in range(0, len(texts), 1024):
            parts.append(embedder.embed(list(texts[start : start + 1024])))
            advance(len(parts[-1]))
    return np.concatenate(parts)


def report(run: ScaleRun, k: int, as_json: bool) -> None:
    """One column per distractor count: recall@k overall, per category and conversation, and latency."""
    by_count = run.results
    summaries = {n: {**summarize_recall(results), "store_rows": run.rows[n]} for n, results in by_count.items()}
    first = next(iter(summaries.values()))
    rows: list[list[Any]] = [["all (1-4)", *(s["recall"] for s in summaries.values())]]
    rows += [[name, *(s["per_category"][name]["recall"] for s in summaries.values())] for name in first["per_category"]]
    rows += [[f"  {c}", *(s["per_conversation"][c]["recall"] for s in summaries.values())]
             for c in first["per_conversation"]]  # fmt: skip
    for q in ("p50", "p95"):
        rows.append([f"latency {q} ms", *(summarize([r.latency_ms for r in by_count[n]]).to_dict()[q]
                                          for n in summaries)])  # fmt: skip
    columns = ["questions", *(f"{n:,} distractors" for n in summaries)]
    rows.append(["store rows (mean)", *(round(sum(r.values()) / max(len(r), 1)) for r in run.rows.values())])
    emit(f"LoCoMo recall@{k} with distractor {run.kind} in the user's store", columns, rows,
         {str(n): s for n, s in summaries.items()}, as_json)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="Folder of LoCoMo conv-*.json files.")
    parser.add_argument("-d", "--distractors", type=int, action="append", help="Distractors per store (repeatable).")
    parser.add_argument("--kind", choices=("messages", "memories"), default="messages",
                        help="Add the distractors as earlier turns (default) or as observations.")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--limit-conversations", type=int, default=None)
    parser.add_argument("--embed-cache", type=Path, default=None, help="Keep vectors in this .npz file.")
    parser.add_argument("--wordnet", type=Path, default=WORDNET, help="WordNet's dict folder (data.noun, ...).")
    parser.add_argument("-c", "--config", type=Path, default=None,
                        help="A memscope config file (e.g. retrieval.candidates: 30); the LLM stays off.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    counts = args.distractors or [0, 100_000]
    try:
        run = run_scale(args.data, counts, args.k, args.limit_conversations, args.embed_cache, args.wordnet,
                        args.kind, show_progress=not args.json, config=args.config)  # fmt: skip
    except (FileNotFoundError, ValueError, ConfigError) as exc:
        parser.error(str(exc))
    report(run, args.k, args.json)


if __name__ == "__main__":
    main()
