"""`memscope bench locomo`: offline retrieval recall@k on LoCoMo conversations (no LLM needed).

For each conversation a fresh store (a SQLite file, or indices of their own when the config names
Elasticsearch); every turn becomes a message of one user (created_at: its session's date, plus one
second per turn to keep the order; `name`: the speaker; metadata: the dia_id), embedded with the
configured embedder (the local all-MiniLM-L6-v2 by default) by the `consolidate_memory` operation,
which with no LLM only embeds and leaves the messages pending. Each question of categories 1-4 with
evidence is then asked through the real `retrieve_memory` operation (`now` = the last session's
date), and recall is the share of its evidence dia_ids among the top k (a message item directly, a
memory item through its source messages). See data/locomo/README.md.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks._common import emit, peak_rss_mb, progress, summarize

__all__ = [
    "CATEGORY_NAMES",
    "Conversation",
    "PreparedConversation",
    "Question",
    "evaluate",
    "load_conversations",
    "parse_session_date",
    "prepare",
    "run_locomo",
]

CATEGORY_NAMES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
SCORED_CATEGORIES = (1, 2, 3, 4)
USER = "locomo-user"
_SESSION = re.compile(r"session_(\d+)")


@dataclass
class Turn:
    """One dialogue turn."""

    dia_id: str
    speaker: str
    text: str
    session: int
    created_at: datetime
    caption: str | None = None

    @property
    def content(self) -> str:
        """The message text, with a shared photo's caption as "[shares a photo of ...]"."""
        if not self.caption:
            return self.text
        caption = self.caption.strip()
        caption = re.sub(r"^(a |an )?(photo|picture|image) of ", "", caption, flags=re.IGNORECASE)
        return f"{self.text} [shares a photo of {caption}]".strip()


@dataclass
class Question:
    """One QA annotation."""

    question: str
    answer: str
    evidence: list[str]
    category: int


@dataclass
class Conversation:
    """One LoCoMo conversation: its turns in order and its questions."""

    name: str
    speakers: tuple[str, str]
    turns: list[Turn]
    questions: list[Question]

    @property
    def last_date(self) -> datetime:
        """The date of the last session (the "now" questions are asked at)."""
        return max(t.created_at for t in self.turns)

    def scored_questions(self) -> list[Question]:
        """Questions of categories 1-4 that have evidence."""
        return [q for q in self.questions if q.category in SCORED_CATEGORIES and q.evidence]


def parse_session_date(text: str) -> datetime:
    """ "1:56 pm on 8 May, 2023" -> 2023-05-08 13:56 UTC."""
    cleaned = " ".join(text.replace(",", ", ").split()).replace(" ,", ",")
    for fmt in ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y"):
        try:
            return datetime.strptime(cleaned, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"unrecognised LoCoMo session date {text!r} (expected e.g. '1:56 pm on 8 May, 2023')")


def load_conversation(path: Path) -> Conversation:
    """Read one conv-NN.json file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    conv = data.get("conversation", data)  # the upstream file nests turns under "conversation"
    sessions = sorted(int(m.group(1)) for k in conv if (m := _SESSION.fullmatch(k)))
    turns: list[Turn] = []
    for k in sessions:
        date = parse_session_date(conv[f"session_{k}_date_time"])
        for n, t in enumerate(conv[f"session_{k}"]):
            turns.append(
                Turn(
                    dia_id=t["dia_id"], speaker=t["speaker"], text=t.get("text", ""), session=k,
                    created_at=date + timedelta(seconds=n), caption=t.get("blip_caption"),
                )
            )  # fmt: skip
    questions = [
        Question(str(q["question"]), str(q.get("answer", q.get("adversarial_answer", ""))),
                 [str(e) for e in q.get("evidence") or []], int(q["category"]))
        for q in data.get("qa", [])
    ]  # fmt: skip
    return Conversation(path.stem, (conv["speaker_a"], conv["speaker_b"]), turns, questions)


def load_conversations(folder: Path, limit: int | None = None) -> list[Conversation]:
    """The conv-*.json files of a folder, sorted by name (the first `limit`)."""
    files = sorted(Path(folder).glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no LoCoMo .json files in {folder}; point --data at data/locomo")
    return [load_conversation(f) for f in files[:limit]]


@dataclass
class PreparedConversation:
    """A conversation ingested into its own store, ready to be queried."""

    conversation: Conversation
    memory: Any  # MemoryScope
    dia_of: dict[str, str]  # message id -> dia_id
    ingest_s: float
    consolidate_s: float
    memories: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    delete_indices: bool = False  # its store is Elasticsearch indices of its own, deleted on close

    def close(self) -> None:
        """Close the store; on Elasticsearch, delete the conversation's indices first."""
        try:
            if self.delete_indices:
                self.memory.runtime.store.delete_indices()
        finally:
            self.memory.close()


def prepare(conv: Conversation, folder: Path, embedder: Any = None, settings: dict[str, Any] | None = None,
            consolidate: bool = False) -> PreparedConversation:  # fmt: skip
    """Ingest every turn of `conv` into a fresh store under `folder`, embed it (and consolidate, if asked)."""
    from memscope.api import MemoryScope
    from memscope.runtime import Runtime

    cfg = {**(settings or {"llm": {"backend": "none"}}), "store": _store_section(settings, folder, conv.name)}
    on_es = cfg["store"].get("backend") == "elasticsearch"
    jobs = dict(cfg.get("jobs") or {})
    cfg["jobs"] = {**jobs, "backend": "local"}  # a fresh store per conversation: Celery workers read another
    llm: Any = "from-settings" if consolidate else None  # without --consolidate: embed only, never the LLM
    runtime = Runtime(cfg, embedder=embedder, llm=llm)
    prepared = PreparedConversation(conv, MemoryScope(runtime=runtime, background=False), {}, 0.0, 0.0,
                                    delete_indices=on_es)  # fmt: skip
    try:
        _ingest(prepared, consolidate)
    except BaseException:
        prepared.close()  # a failed ingest leaves no Elasticsearch indices behind
        raise
    return prepared


def _ingest(prepared: PreparedConversation, consolidate: bool) -> None:
    """Add the conversation's turns session by session, then embed (and consolidate) them."""
    from memscope.models import Message

    conv, memory = prepared.conversation, prepared.memory
    runtime = memory.runtime
    started = time.perf_counter()
    by_session: dict[int, list[Message]] = defaultdict(list)
    for t in conv.turns:
        by_session[t.session].append(
            Message(user_id=USER, session_id=f"session_{t.session}", role="user", content=t.content,
                    name=t.speaker, created_at=t.created_at, metadata={"dia_id": t.dia_id})
        )  # fmt: skip
    for k in sorted(by_session):
        for m in memory.add_messages(USER, by_session[k], session_id=f"session_{k}"):
            prepared.dia_of[m.id] = m.metadata["dia_id"]
    prepared.ingest_s = time.perf_counter() - started
    started = time.perf_counter()
    store = runtime.store
    if consolidate and runtime.has_llm:
        while store.stats(USER).pending_messages:
            before = store.stats(USER).pending_messages
            memory.consolidate(USER, wait=True)
            if store.stats(USER).pending_messages >= before:
                break  # no progress: report what there is rather than loop
    remaining = len(store.messages_without_embedding(USER, limit=100_000))
    while remaining:  # with no LLM, consolidate_memory only embeds and leaves the messages pending
        runtime.run("consolidate_memory", user_id=USER)
        left = len(store.messages_without_embedding(USER, limit=100_000))
        if left >= remaining:
            raise RuntimeError(f"{conv.name}: {left} messages could not be embedded")
        remaining = left
    prepared.consolidate_s = time.perf_counter() - started
    prepared.memories = memory_count(store)


def memory_count(store: Any) -> int:
    """How many memories the benchmark user has, of every status and type."""
    return sum(sum(by_type.values()) for by_type in store.stats(USER).memories.values())


def _store_section(settings: dict[str, Any] | None, folder: Path, name: str) -> dict[str, Any]:
    """The conversation's own store: a SQLite file in `folder`, or, when the settings name Elasticsearch,
    indices of their own prefix there (refreshed at each write, so every turn is searchable at once)."""
    store = dict((settings or {}).get("store") or {})
    if store.get("backend") != "elasticsearch":
        return {"path": str(folder / f"{name}.db")}
    es = dict(store.get("elasticsearch") or {})
    prefix = f"{es.get('index_prefix') or 'memscope'}-locomo-{name.lower()}-{uuid.uuid4().hex[:8]}"
    return {**store, "elasticsearch": {**es, "index_prefix": prefix, "refresh": "true"}}


@dataclass
class QuestionResult:
    """What retrieval found for one question."""

    conversation: str
    category: int
    question: str
    evidence: list[str]
    retrieved: list[str]
    recall: float
    latency_ms: float
    item_tokens: int = 0  # estimated tokens of the top-k items' text
    context_tokens: int = 0  # estimated tokens of the whole context block (items + pending messages)


def retrieved_dia_ids(items: list[Any], dia_of: dict[str, str]) -> list[str]:
    """The dia_ids an item list covers, in rank order: messages directly, memories by their sources."""
    out: list[str] = []
    for item in items:
        if item.kind == "message":
            ids = [item.metadata.get("dia_id") or dia_of.get(item.id)]
        else:
            ids = [dia_of.get(mid) for mid in item.source_message_ids]
        out.extend(i for i in ids if i and i not in out)
    return out


def evaluate(prepared: PreparedConversation, k: int = 10, show_progress: bool = False) -> list[QuestionResult]:
    """Ask every scored question through `retrieve_memory` and measure recall@k."""
    from memscope.sessions import estimate_tokens

    conv = prepared.conversation
    now = conv.last_date
    results: list[QuestionResult] = []
    questions = conv.scored_questions()
    with progress(f"{conv.name}: questions", len(questions), show_progress) as advance:
        for q in questions:
            t0 = time.perf_counter()
            found = prepared.memory.retrieve(USER, q.question, top_k=k, now=now)
            latency = (time.perf_counter() - t0) * 1000
            got = retrieved_dia_ids(found.items, prepared.dia_of)
            recall = sum(1 for e in q.evidence if e in got) / len(q.evidence)
            tokens = sum(estimate_tokens(i.content) for i in found.items)
            results.append(QuestionResult(conv.name, q.category, q.question, q.evidence, got, recall, latency,
                                          tokens, estimate_tokens(found.context)))  # fmt: skip
            advance()
    return results


def summarize_recall(results: list[QuestionResult]) -> dict[str, Any]:
    """Recall overall and per category, with question counts and retrieval latency."""

    def mean(rs: list[QuestionResult]) -> float:
        return round(sum(r.recall for r in rs) / len(rs), 4) if rs else float("nan")

    per_cat = {
        CATEGORY_NAMES[c]: {"recall": mean([r for r in results if r.category == c]),
                            "questions": sum(1 for r in results if r.category == c)}
        for c in SCORED_CATEGORIES
    }  # fmt: skip
    per_conv = {
        name: {"recall": mean(rs), "questions": len(rs)}
        for name in dict.fromkeys(r.conversation for r in results)
        if (rs := [r for r in results if r.conversation == name])
    }
    return {
        "recall": mean(results),
        "questions": len(results),
        "per_category": per_cat,
        "per_conversation": per_conv,
        "latency_ms": summarize([r.latency_ms for r in results]).to_dict(),
        "item_tokens_per_query": round(sum(r.item_tokens for r in results) / max(len(results), 1), 1),
        "context_tokens_per_query": round(sum(r.context_tokens for r in results) / max(len(results), 1), 1),
    }


def run_locomo(data: Path, k: int = 10, limit_conversations: int | None = None, consolidate: bool = False,
               settings: dict[str, Any] | None = None, show_progress: bool = True,
               embed_cache: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """The whole benchmark: prepare and evaluate each conversation; returns the summary (JSON-ready)."""
    from memscope.config import load_settings
    from memscope.llm.factory import make_embedder

    conversations = load_conversations(data, limit_conversations)
    cfg = settings if settings is not None else {"llm": {"backend": "none"}}
    embedder = make_embedder(load_settings(cfg).embedding)
    if embed_cache is not None:
        embedder = CachedEmbedder(embedder, embed_cache)
    results: list[QuestionResult] = []
    timings: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="memscope-locomo-") as tmp:
        for conv in conversations:
            prepared = prepare(conv, Path(tmp), embedder, cfg, consolidate=consolidate)
            try:
                results += evaluate(prepared, k, show_progress)
            finally:
                prepared.close()
            timings[conv.name] = {"ingest_s": round(prepared.ingest_s, 2),
                                  "embed_or_consolidate_s": round(prepared.consolidate_s, 2),
                                  "memories": prepared.memories, "turns": len(conv.turns)}  # fmt: skip
    if isinstance(embedder, CachedEmbedder):
        embedder.save()
    summary = summarize_recall(results)
    summary.update(k=k, conversations=timings, consolidated=consolidate, peak_rss_mb=round(peak_rss_mb(), 1))
    return summary


def report(summary: dict[str, Any], as_json: bool) -> None:
    """Recall@k overall and per category (rich table) or the JSON summary."""
    k = summary["k"]
    rows: list[list[Any]] = [["all (1-4)", summary["questions"], summary["recall"]]]
    rows += [[name, v["questions"], v["recall"]] for name, v in summary["per_category"].items()]
    rows += [[f"  {name}", v["questions"], v["recall"]] for name, v in summary["per_conversation"].items()]
    emit(f"LoCoMo recall@{k}", ["questions", "count", f"recall@{k}"], rows, summary, as_json)
    if not as_json:
        from benchmarks._common import console

        lat = summary["latency_ms"]
        console().print(f"retrieval latency (incl. query embedding): p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms")
        console().print(
            f"tokens per query (estimated): top-{k} items {summary['item_tokens_per_query']:.0f}, whole context"
            f" block {summary['context_tokens_per_query']:.0f} (with the pending messages it attaches)"
        )


class CachedEmbedder:
    """Wraps an embedder with a vector cache kept in an .npz file, so repeated benchmark runs skip the model.

    The cache is keyed by the exact text and stores the model's name: a cache made by another model is
    ignored.
    """

    def __init__(self, inner: Any, path: Path) -> None:
        import numpy as np

        self.inner, self.path = inner, Path(path)
        self.name, self.dim = inner.name, inner.dim
        self._vectors: dict[str, Any] = {}
        if self.path.exists():
            data = np.load(self.path, allow_pickle=False)
            if str(data["model"]) == self.name:
                self._vectors = dict(zip(data["texts"].tolist(), data["vectors"], strict=True))
        self._dirty = False

    def embed(self, texts: Any) -> Any:
        """Vectors from the cache, the missing ones from the inner embedder."""
        import numpy as np

        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            for text, vector in zip(missing, self.inner.embed(missing), strict=True):
                self._vectors[text] = np.asarray(vector, dtype=np.float32)
            self._dirty = True
        return np.stack([self._vectors[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_query(self, texts: Any) -> Any:
        """Query vectors straight from the inner embedder's query path, never cached: the path is what is tested."""
        from memscope.llm.base import embed_query

        return embed_query(self.inner, texts)

    def embed_query_focused(self, text: str, focus: Any) -> Any:
        """The inner embedder's query and focus-word vectors, never cached (see `embed_query`)."""
        from memscope.llm.base import embed_query_focused

        return embed_query_focused(self.inner, text, focus)

    def save(self) -> None:
        """Write the cache file if it grew."""
        import numpy as np

        if self._dirty and self._vectors:
            texts = list(self._vectors)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "wb") as fh:
                np.savez(fh, model=np.array(self.name), texts=np.array(texts),
                         vectors=np.stack([self._vectors[t] for t in texts]))  # fmt: skip
            self._dirty = False
