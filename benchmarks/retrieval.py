"""`memscope bench retrieval`: end-to-end latency of the real `retrieve_memory` operation, on SQLite
or Elasticsearch (`--store`, repeatable: both measured in one run).

A fresh store (a temp file) is filled with N synthetic memories with precomputed vectors (random unit
vectors near topic centres, so nearest neighbours mean something; 1M real embeddings would take hours
to compute here). On SQLite the user's vector index is then built and saved (`build_vector_index`,
timed as "index s") and the store is closed and opened again, so the first query is the first after
opening a store. Each query is embedded by the real local all-MiniLM-L6-v2 (`--embedder local`, the
default: its time is inside every figure and its own step, `embed_query`, is shown), but the vector
searched is a precomputed one near the corpus' topics, since the synthetic memories are not MiniLM's.
`--embedder local-numpy` / `local-onnx-fp32` embed queries with the numpy forward pass or the fp32
ONNX graph instead of the default (`local`: onnxruntime, int8 query graph); `--embedder precomputed`
leaves the model out. `--locomo DATA` adds rows at LoCoMo size: one
conversation's turns stored as messages with their real MiniLM vectors, its own questions asked.
On Elasticsearch the memories go into fresh indices of a unique prefix (deleted afterwards) on the
server at `es_url` (default MEMSCOPE_ES_URL, else http://127.0.0.1:9200).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import emit, peak_rss_mb, progress, rss_mb, summarize
from memscope.llm.base import embed_query, embed_query_focused

__all__ = ["EMBEDDERS", "PrecomputedEmbedder", "RetrievalBenchResult", "SyntheticCorpus", "run_retrieval_bench"]

DIM = 384
# --embedder choices that run the local MiniLM: LocalEmbedder's arguments
EMBEDDERS: dict[str, dict[str, Any]] = {
    "local": {},
    "local-numpy": {"backend": "numpy"},
    "local-onnx-fp32": {"backend": "onnx", "query_precision": "fp32"},
}
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
OUTSIDE = "(outside steps)"  # a retrieval's time that no step accounts for: the runner
TIME_KIND, OTHER_KIND = "names a time", "other"  # questions by whether they run the time-filtered search too


def _options(text: str) -> list[str]:
    return text.split("|")


PEOPLE = _options(
    "Alice|Bob|Carmen|Deepak|Elena|Farid|Grace|Hiro|Ines|Jonas|Kemi|Liam|Mei|Nora|Oscar|Priya|Quentin|Rosa|Sven"
    "|Tariq|Uma|Victor|Wen|Yusuf"
)
RELATIONS = _options("sister|brother|colleague|neighbour|best friend|cousin|manager|old classmate|daughter|son")
PLACES = _options("Berlin|Lisbon|Nairobi|Osaka|Toronto|Lima|Krakow|Hanoi|Austin|Dublin|Marseille|Seoul|Oslo")
JOBS = _options(
    "a nurse|a software engineer|a teacher|a chef|an architect|a pilot|a lawyer|a barista|a data analyst"
    "|a carpenter|a journalist|a vet"
)
HOBBIES = _options(
    "rock climbing|pottery|chess|salsa dancing|birdwatching|baking sourdough|running|painting watercolours"
    "|playing the cello|gardening|surfing|knitting|photography"
)
FOODS = _options("sushi|spicy ramen|vegan curry|tapas|dumplings|pho|pizza margherita|falafel")
MONTHS = _options("January|February|March|April|May|June|July|August|September|October|November|December")
TEMPLATES = [
    "User's {rel} {person} lives in {place}.",
    "User works as {job} in {place}.",
    "User started {hobby} in {month} {year}.",
    "{person} is the user's {rel} and works as {job}.",
    "User plans to visit {place} with {person} in {month}.",
    "User's favourite food is {food}; they had it with {person} last {month}.",
    "User goes {hobby} with {person} every weekend.",
    "User moved to {place} in {year} to work as {job}.",
    "User's {rel} {person} took up {hobby} recently.",
    "User is allergic to {food} and avoids it at restaurants.",
    "User met {person} at a {hobby} class in {place}.",
    "User's birthday dinner in {month} {year} was {food} at a place in {place}.",
]  # fmt: skip
QUESTIONS = [
    "Where does my {rel} live?",
    "What does {person} do for work?",
    "When did I start {hobby}?",
    "Who do I go {hobby} with?",
    "What food do I like?",
    "When am I going to {place}?",
    "What happened with {person} in {month}?",
    "What do you remember about my {rel}?",
]


@dataclass
class SyntheticCorpus:
    """Varied memory sentences from templates, with vectors clustered by topic (deterministic by seed)."""

    seed: int = 7
    topics: int = 256
    rng: random.Random = field(init=False)
    np_rng: np.random.Generator = field(init=False)
    centres: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.np_rng = np.random.default_rng(self.seed)
        self.centres = _unit(self.np_rng.standard_normal((self.topics, DIM)).astype(np.float32))

    def _fill(self, template: str) -> str:
        r = self.rng
        return template.format(
            person=r.choice(PEOPLE), rel=r.choice(RELATIONS), place=r.choice(PLACES), job=r.choice(JOBS),
            hobby=r.choice(HOBBIES), food=r.choice(FOODS), month=r.choice(MONTHS), year=r.randint(2015, 2025),
        )  # fmt: skip

    def sentences(self, n: int) -> list[str]:
        """n memory sentences."""
        return [self._fill(self.rng.choice(TEMPLATES)) for _ in range(n)]

    def question(self) -> str:
        """One question a user might ask."""
        return self._fill(self.rng.choice(QUESTIONS))

    def vectors(self, n: int, spread: float = 0.6) -> np.ndarray:
        """n unit vectors, each a topic centre plus noise."""
        topic = self.np_rng.integers(0, self.topics, size=n)
        noise = self.np_rng.standard_normal((n, DIM)).astype(np.float32) * (spread / np.sqrt(DIM))
        return _unit(self.centres[topic] + noise)


def _query_source(corpus: SyntheticCorpus) -> SyntheticCorpus:
    """A corpus with the same topic centres but its own random streams, for the timed questions."""
    source = SyntheticCorpus(seed=corpus.seed, topics=corpus.topics)
    source.rng, source.np_rng = random.Random(corpus.seed + 1), np.random.default_rng(corpus.seed + 1)
    return source


def _unit(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


class PrecomputedEmbedder:
    """An Embedder returning vectors set beforehand (`next_vector`). With `model`, the texts are embedded by
    it first (the time is spent, the vectors are dropped): the model is timed, the corpus' space searched."""

    name = "bench-precomputed"
    dim = DIM

    def __init__(self, model: Any = None) -> None:
        self.next_vector: np.ndarray = np.zeros(DIM, dtype=np.float32)
        self.model = model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """`next_vector` for every text."""
        if self.model is not None:
            self.model.embed(texts)
        return np.tile(self.next_vector, (len(texts), 1)).astype(np.float32)

    def embed_query(self, texts: Sequence[str]) -> np.ndarray:
        """`next_vector` for every text, after the model's query path embedded them (timed)."""
        if self.model is not None:
            embed_query(self.model, texts)
        return np.tile(self.next_vector, (len(texts), 1)).astype(np.float32)

    def embed_query_focused(self, text: str, focus: Sequence[tuple[int, int]]) -> np.ndarray:
        """`next_vector`, after the model's focused query path ran (timed)."""
        if self.model is not None:
            embed_query_focused(self.model, text, focus)
        return self.next_vector[None, :].astype(np.float32)


@dataclass
class RetrievalBenchResult:
    """The figures of one retrieval benchmark run."""

    memories: int
    store: str
    users: int
    user_memories: int
    queries: int
    top_k: int
    fill_s: float
    first_query_ms: float
    latency: dict[str, float]
    steps_p50_ms: dict[str, float]
    rss_after_fill_mb: float
    peak_rss_mb: float
    store_file_mb: float
    embedder: str = "local"
    index_s: float = float("nan")
    steps_share: dict[str, float] = field(default_factory=dict)  # % of the mean retrieve time
    after_write: dict[str, float] = field(default_factory=dict)  # a retrieval right after a one-memory write (ms)
    latency_by_kind: dict[str, dict[str, float]] = field(default_factory=dict)  # questions naming a time, others
    against: dict[str, Any] = field(default_factory=dict)  # --against: the other operation, question by question

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(self.__dict__)


def _nodes(user_id: str, corpus: SyntheticCorpus, n: int, start: int) -> list[Any]:
    from memscope.models import EventTime, Granularity, MemoryNode, MemoryType

    texts, vectors = corpus.sentences(n), corpus.vectors(n)
    rng = corpus.rng
    out = []
    for i in range(n):
        created = NOW - timedelta(days=rng.uniform(0, 730), seconds=i)
        kind = rng.random()
        mtype = MemoryType.OBSERVATION if kind < 0.8 else MemoryType.INSIGHT if kind < 0.95 else MemoryType.CUSTOMIZED
        event = None
        if rng.random() < 0.3:
            day = created - timedelta(days=rng.uniform(0, 30))
            event = EventTime(start=day, end=day + timedelta(days=1), granularity=Granularity.DAY)
        out.append(
            MemoryNode(
                id=f"{user_id}-m{start + i:07d}", user_id=user_id, memory_type=mtype, content=texts[i],
                embedding=vectors[i].tolist(), created_at=created, updated_at=created, event_time=event,
                importance=round(rng.uniform(0.2, 0.9), 2),
            )
        )  # fmt: skip
    return out


def fill_store(store: Any, memories: int, users: int, corpus: SyntheticCorpus, batch: int = 1000,
               show_progress: bool = True) -> tuple[str, int]:  # fmt: skip
    """Write `memories` memories spread evenly over `users` users; returns (timed user, its count)."""
    per_user = [memories // users + (1 if u < memories % users else 0) for u in range(users)]
    with progress("writing memories", memories, show_progress) as advance:
        for u, count in enumerate(per_user):
            done = 0
            while done < count:
                n = min(batch, count - done)
                store.write_memories(_nodes(f"user{u:04d}", corpus, n, done), operation="bench")
                done += n
                advance(n)
    return "user0000", per_user[0]


def _open_store(kind: str, db: Path, es_url: str | None) -> tuple[Any, dict[str, Any]]:
    """A fresh store of `kind` and the store section of its settings."""
    if kind == "sqlite":
        from memscope.stores.sqlite import SqliteStore

        return SqliteStore(db), {"path": str(db)}
    if kind == "elasticsearch":
        from memscope.stores.elasticsearch import ElasticsearchStore

        url = es_url or os.environ.get("MEMSCOPE_ES_URL") or "http://127.0.0.1:9200"
        prefix = f"memscope-bench-{uuid.uuid4().hex[:10]}"
        store = ElasticsearchStore(url, index_prefix=prefix, refresh="true", request_timeout_s=120.0)
        return store, {"backend": "elasticsearch", "elasticsearch": {"url": url, "index_prefix": prefix}}
    raise ValueError(f"unknown store {kind!r}; choose sqlite or elasticsearch")


def _embedder(kind: str) -> Any:
    """The model queries are embedded with: the packaged local MiniLM, loaded now (its load is not a query's)."""
    if kind == "precomputed":
        return None
    if kind not in EMBEDDERS:
        raise ValueError(f"unknown embedder {kind!r}; choose {', '.join([*EMBEDDERS, 'precomputed'])}")
    from memscope.llm.local_embedding import LocalEmbedder

    model = LocalEmbedder(**EMBEDDERS[kind])
    model.warm_up()
    embed_query(model, ["warm up"])
    return model


def run_retrieval_bench(
    memories: int = 1000, users: int = 1, queries: int = 200, top_k: int = 10, show_progress: bool = True,
    path: Path | None = None, store_kind: str = "sqlite", es_url: str | None = None, embedder: str = "local",
    keep: Path | None = None, writes: int = 0, against: Path | None = None,
) -> RetrievalBenchResult:  # fmt: skip
    """Fill a fresh store, build its index, reopen it, and time `queries` retrievals for the first user (after
    one first query, timed apart). With `keep` (SQLite), the filled store stays in that folder and a later
    run with the same size reuses it (its fill and index times are those of the run that built it). With
    `writes`, then time one retrieval right after each of that many one-memory writes (as a chatbot's turn
    writes what consolidation learnt): `after_write`. With `against` (a retrieve_memory YAML file), each
    question also runs through that operation, the two alternating: `against`."""
    if memories < 1 or users < 1 or queries < 1 or writes < 0:
        raise ValueError("memories, users and queries must be at least 1, writes at least 0")
    if keep is not None and store_kind != "sqlite":
        raise ValueError("--keep keeps SQLite stores only")
    if keep is not None and writes:
        raise ValueError("--writes changes the store: it runs on a fresh store, not with --keep")
    other = against_catalog(against) if against is not None else None
    model = _embedder(embedder)
    with tempfile.TemporaryDirectory(prefix="memscope-bench-") as tmp:
        db = path or (keep / f"bench-{memories}-{users}.db" if keep else Path(tmp) / "bench.db")
        built = db.with_suffix(".json")
        corpus = SyntheticCorpus()
        if keep is not None and db.exists() and built.exists():
            saved = json.loads(built.read_text(encoding="utf-8"))
            user, user_memories, fill_s, index_s, rss_fill = (saved[k] for k in ("user", "user_memories", "fill_s",
                                                                                 "index_s", "rss_fill"))  # fmt: skip
            _read_through(db)  # as a store filled in this run would be: in the OS page cache, not on disk
            store, store_settings = _open_store(store_kind, db, es_url)
        else:
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                for stale in (db, built):
                    stale.unlink(missing_ok=True)
            store, store_settings = _open_store(store_kind, db, es_url)
            started = time.perf_counter()
            user, user_memories = fill_store(store, memories, users, corpus, show_progress=show_progress)
            fill_s = time.perf_counter() - started
            rss_fill = rss_mb()
            index_s = float("nan")
            if store_kind == "sqlite":  # build and save the index, then start again as a new process would
                started = time.perf_counter()
                store.build_vector_index(user)
                index_s = time.perf_counter() - started
                store.close()
                store, store_settings = _open_store(store_kind, db, es_url)
            if keep is not None:
                built.write_text(json.dumps({"user": user, "user_memories": user_memories, "fill_s": fill_s,
                                             "index_s": index_s, "rss_fill": rss_fill}), encoding="utf-8")  # fmt: skip
        asked = _query_source(corpus)  # the same probes and questions whether the store was built now or kept
        probes = asked.vectors(queries + 1, spread=0.8)
        questions = [asked.question() for _ in range(queries + 1)]
        if store_kind == "elasticsearch":
            store._es().indices.refresh(index=store.alias("memories"))
        with _scope(store, store_settings, PrecomputedEmbedder(model)) as (memory, bench_embedder):
            bench_embedder.next_vector = probes[0]
            t0 = time.perf_counter()
            memory.retrieve(user, questions[0], top_k=top_k, now=NOW)
            first_ms = (time.perf_counter() - t0) * 1000
            if other is not None:  # its first run (worker set-up) is not timed either
                _retrieve_with(memory, other, user, questions[0], top_k, NOW)
            samples, steps, names_time, paired = _timed(memory, user, questions[1:], top_k, NOW, show_progress,
                                                        probes=probes[1:], embedder=bench_embedder,
                                                        against=other)  # fmt: skip
            after_write = _after_writes(memory, store, user, corpus, writes, user_memories, top_k,
                                        (probes, questions, bench_embedder)) if writes else {}  # fmt: skip
            if store_kind == "elasticsearch":  # before MemoryScope closes the store's client
                stats = store._es().indices.stats(index=store.alias("memories"), metric="store")
                size_mb = stats["_all"]["primaries"]["store"]["size_in_bytes"] / 2**20
                store.delete_indices()
        if store_kind == "sqlite":
            size_mb = db.stat().st_size / 2**20 if db.exists() else float("nan")
    return RetrievalBenchResult(
        memories=memories, store=store_kind, users=users, user_memories=user_memories, queries=queries, top_k=top_k,
        fill_s=round(fill_s, 2), first_query_ms=round(first_ms, 3), latency=summarize(samples).to_dict(),
        steps_p50_ms={k: round(float(np.median(v)), 3) for k, v in steps.items()},
        rss_after_fill_mb=round(rss_fill, 1), peak_rss_mb=round(peak_rss_mb(), 1), store_file_mb=round(size_mb, 1),
        embedder=embedder, index_s=round(index_s, 2), steps_share=_shares(samples, steps), after_write=after_write,
        latency_by_kind=_by_kind(samples, names_time), against=_against_row(against, samples, names_time, paired),
    )  # fmt: skip


def _after_writes(
    memory: Any, store: Any, user: str, corpus: SyntheticCorpus, writes: int, start: int, top_k: int,
    asked: tuple[np.ndarray, list[str], Any],
) -> dict[str, float]:  # fmt: skip
    """The latency (ms) of a retrieval right after each of `writes` one-memory writes: what a write costs the
    next query (patching the user's vector index) rather than the write itself."""
    probes, questions, embedder = asked
    samples = []
    for n, node in enumerate(_nodes(user, corpus, writes, start)):
        store.write_memories([node])
        embedder.next_vector = probes[n % len(probes)]
        t0 = time.perf_counter()
        memory.retrieve(user, questions[n % len(questions)], top_k=top_k, now=NOW)
        samples.append((time.perf_counter() - t0) * 1000)
    return summarize(samples).to_dict()


def _read_through(db: Path) -> None:
    """Read a kept store's files once (the database and its saved vector snapshots), so that a reused store
    is timed like a freshly filled one, whose pages are in the OS page cache, rather than after a reboot."""
    folder = db.with_name(db.name + "-vectors")
    for path in [db, *(sorted(folder.rglob("*")) if folder.is_dir() else [])]:
        if path.is_file():
            with open(path, "rb") as fh:
                while fh.read(1 << 23):
                    pass


@contextmanager
def _scope(store: Any, store_settings: dict[str, Any], embedder: Any) -> Iterator[tuple[Any, Any]]:
    from memscope.api import MemoryScope
    from memscope.runtime import Runtime

    settings = {"store": store_settings, "llm": {"backend": "none"}, "rerank": {"backend": "none"}}
    runtime = Runtime(settings, store=store, embedder=embedder, llm=None)
    with MemoryScope(runtime=runtime, background=False) as memory:
        memory.warm_up()  # as `memscope serve` does before its first request
        yield memory, embedder


def _timed(
    memory: Any, user: str, questions: Sequence[str], top_k: int, now: datetime, show_progress: bool,
    probes: Sequence[np.ndarray] | None = None, embedder: Any = None, against: Any = None,
) -> tuple[list[float], dict[str, list[float]], list[bool], dict[str, list[Any]]]:  # fmt: skip
    """Time one retrieval per question: the wall times (ms), each step's, with OUTSIDE: the time no step
    accounts for (`busy_ms`: steps that ran side by side count once), and whether each question named a time.
    With `against` (a catalog), each question also runs through its retrieve_memory, before the shipped
    one on every other question: its wall times and whether it returned the same items ("paired")."""
    samples: list[float] = []
    steps: dict[str, list[float]] = {}
    names_time: list[bool] = []
    paired: dict[str, list[Any]] = {"ms": [], "same": []}
    with progress("retrieving", len(questions), show_progress) as advance:
        for n, question in enumerate(questions):
            if probes is not None:
                embedder.next_vector = probes[n]
            other = None
            if against is not None and n % 2:
                other = _retrieve_with(memory, against, user, question, top_k, now)
            t0 = time.perf_counter()
            result = memory.retrieve(user, question, top_k=top_k, now=now)
            samples.append((time.perf_counter() - t0) * 1000)
            if against is not None:
                other = other or _retrieve_with(memory, against, user, question, top_k, now)
                paired["ms"].append(other[0])
                paired["same"].append([i.id for i in other[1].items] == [i.id for i in result.items])
            names_time.append(result.query_time is not None)
            for step in result.report.steps:
                steps.setdefault(step.worker, []).append(step.wall_ms)
            steps.setdefault(OUTSIDE, []).append(max(0.0, samples[-1] - busy_ms(result.report.steps)))
            advance()
    return samples, steps, names_time, paired


def busy_ms(steps: Sequence[Any]) -> float:
    """How long at least one of these steps (StepReports) was running: the union of their spans."""
    total, reached = 0.0, float("-inf")
    for start, end in sorted((s.start_ms, s.start_ms + s.wall_ms) for s in steps):
        total += max(0.0, end - max(start, reached))
        reached = max(reached, end)
    return total


def against_catalog(path: Path) -> Any:
    """A catalog whose retrieve_memory is the one in `path` (a YAML file declaring `name: retrieve_memory`)."""
    import shutil

    from memscope.engine import OperationCatalog
    from memscope.engine.operation import load_operation

    spec = load_operation(path)  # a malformed file: OperationLoadError with its line
    if spec.name != "retrieve_memory":
        raise ValueError(f"{path} defines the operation {spec.name!r}; --against takes a retrieve_memory operation")
    with tempfile.TemporaryDirectory(prefix="memscope-bench-against-") as folder:
        shutil.copyfile(path, Path(folder) / "retrieve_memory.yaml")
        return OperationCatalog(paths=[folder])  # read now: the folder may go


def _retrieve_with(memory: Any, catalog: Any, user: str, question: str, top_k: int, now: datetime) -> tuple[float, Any]:
    """One retrieval through `catalog`'s retrieve_memory (swapped in for the call): (wall ms, result)."""
    shipped, memory.runtime.catalog = memory.runtime.catalog, catalog
    try:
        t0 = time.perf_counter()
        result = memory.retrieve(user, question, top_k=top_k, now=now)
        return (time.perf_counter() - t0) * 1000, result
    finally:
        memory.runtime.catalog = shipped


def _against_row(
    path: Path | None, samples: Sequence[float], names_time: Sequence[bool], paired: dict[str, list[Any]]
) -> dict[str, Any]:
    """The `against` figures of a row: the other operation's latency, and the paired differences (all
    questions, and by kind)."""
    if path is None or not paired["ms"]:
        return {}
    diff = np.asarray(paired["ms"]) - np.asarray(samples)
    timed = np.asarray(names_time, dtype=bool)
    by_kind = {kind: round(float(np.median(diff[mask])), 3)
               for kind, mask in ((TIME_KIND, timed), (OTHER_KIND, ~timed)) if mask.any()}  # fmt: skip
    return {
        "operation": str(path), "latency": summarize(paired["ms"]).to_dict(),
        "median_diff_ms": round(float(np.median(diff)), 3), "median_diff_by_kind_ms": by_kind,
        "same_results": round(float(np.mean(paired["same"])), 4),
    }  # fmt: skip


def _by_kind(samples: Sequence[float], names_time: Sequence[bool]) -> dict[str, dict[str, float]]:
    """Latency of the questions that name a time (they run a second, time-filtered search) and of the rest."""
    groups = {TIME_KIND: [s for s, t in zip(samples, names_time, strict=True) if t],
              OTHER_KIND: [s for s, t in zip(samples, names_time, strict=True) if not t]}  # fmt: skip
    return {kind: summarize(group).to_dict() for kind, group in groups.items() if group}


def _shares(samples: Sequence[float], steps: dict[str, list[float]]) -> dict[str, float]:
    """Each step's mean time as a % of the mean retrieval, and what no step accounts for (the runner).
    Steps of a parallel group overlap, so their shares do too."""
    if not samples:
        return {}
    total = float(np.mean(samples))
    return {k: round(100 * float(np.mean(v)) / total, 1) for k, v in steps.items()}


def run_locomo_latency(data: Path, conversations: int = 1, top_k: int = 10, show_progress: bool = True,
                       embedder: str = "local", against: Path | None = None) -> list[RetrievalBenchResult]:  # fmt: skip
    """Rows at LoCoMo size: per conversation, its turns as messages embedded by the local MiniLM, its own
    questions asked (embedded by the model inside each retrieval), after one first query timed apart.
    `embedder` is one of EMBEDDERS (precomputed means local here: these rows need the model)."""
    from benchmarks.locomo import USER, load_conversations, prepare

    embedder = embedder if embedder in EMBEDDERS else "local"
    other = against_catalog(against) if against is not None else None
    model = _embedder(embedder)
    rows = []
    with tempfile.TemporaryDirectory(prefix="memscope-bench-locomo-") as tmp:
        for conv in load_conversations(data, conversations):
            started = time.perf_counter()
            prepared = prepare(conv, Path(tmp), model)
            fill_s = time.perf_counter() - started
            prepared.close()
            cfg = {"store": {"path": str(Path(tmp) / f"{conv.name}.db")}, "llm": {"backend": "none"},
                   "rerank": {"backend": "none"}}  # fmt: skip
            from memscope.api import MemoryScope
            from memscope.runtime import Runtime

            questions = [q.question for q in conv.scored_questions()]
            with MemoryScope(runtime=Runtime(cfg, embedder=model, llm=None), background=False) as memory:
                memory.warm_up()
                t0 = time.perf_counter()
                memory.retrieve(USER, questions[0], top_k=top_k, now=conv.last_date)
                first_ms = (time.perf_counter() - t0) * 1000
                if other is not None:  # its first run (worker set-up) is not timed either
                    _retrieve_with(memory, other, USER, questions[0], top_k, conv.last_date)
                samples, steps, names_time, paired = _timed(memory, USER, questions[1:], top_k, conv.last_date,
                                                            show_progress, against=other)
            rows.append(RetrievalBenchResult(
                memories=len(conv.turns), store=f"sqlite, LoCoMo {conv.name}", users=1, user_memories=len(conv.turns),
                queries=len(samples), top_k=top_k, fill_s=round(fill_s, 2), first_query_ms=round(first_ms, 3),
                latency=summarize(samples).to_dict(),
                steps_p50_ms={k: round(float(np.median(v)), 3) for k, v in steps.items()},
                rss_after_fill_mb=round(rss_mb(), 1), peak_rss_mb=round(peak_rss_mb(), 1), store_file_mb=float("nan"),
                embedder=embedder, steps_share=_shares(samples, steps), latency_by_kind=_by_kind(samples, names_time),
                against=_against_row(against, samples, names_time, paired),
            ))  # fmt: skip
    return rows


def report(results: list[RetrievalBenchResult], as_json: bool) -> None:
    """Print one row per run and each step's share (rich tables), or the JSON list."""
    rows = [
        [r.store, r.memories, r.users, r.user_memories, r.latency["p50"], r.latency["p95"], r.latency["p99"],
         r.steps_p50_ms.get("embed_query", float("nan")), r.first_query_ms, r.index_s, r.peak_rss_mb,
         r.store_file_mb, r.fill_s]
        for r in results
    ]  # fmt: skip
    columns = ["store", "memories", "users", "timed user's", "p50 ms", "p95 ms", "p99 ms", "embed p50 ms",
               "first query ms", "index s", "peak RSS MiB", "store MiB", "fill s"]  # fmt: skip
    embedders = sorted({r.embedder for r in results})
    title = f"retrieve_memory latency (query embedding: {', '.join(embedders)})"
    emit(title, columns, rows, [r.to_dict() for r in results], as_json)
    if as_json or not results:
        return
    kinds = [TIME_KIND, OTHER_KIND]
    emit("by question: those that name a time run a second, time-filtered search",
         ["store", "timed user's", *(f"{k} {c}" for k in kinds for c in ("n", "p50 ms", "p95 ms"))],
         [[r.store, r.user_memories, *(r.latency_by_kind.get(k, {}).get(c, float("nan")) for k in kinds
                                       for c in ("count", "p50", "p95"))] for r in results], None, False)  # fmt: skip
    compared = [r for r in results if r.against]
    if compared:
        emit(f"against {compared[0].against['operation']}: each question through both, alternating",
             ["store", "timed user's", "p50 ms", "p95 ms", "against p50 ms", "against p95 ms",
              "median (against - shipped) ms", *(f"{k}: median diff ms" for k in kinds), "same items"],
             [[r.store, r.user_memories, r.latency["p50"], r.latency["p95"], r.against["latency"]["p50"],
               r.against["latency"]["p95"], r.against["median_diff_ms"],
               *(r.against["median_diff_by_kind_ms"].get(k, float("nan")) for k in kinds),
               f"{r.against['same_results']:.0%}"] for r in compared], None, False)  # fmt: skip
    written = [r for r in results if r.after_write]
    if written:
        emit("a retrieval right after a one-memory write (--writes)",
             ["store", "timed user's", "writes", "p50 ms", "p95 ms", "max ms"],
             [[r.store, r.user_memories, r.after_write["count"], r.after_write["p50"], r.after_write["p95"],
               r.after_write["max"]] for r in written], None, False)  # fmt: skip
    names = list(dict.fromkeys(k for r in results for k in r.steps_share))
    share_rows = [[name, *(f"{r.steps_p50_ms.get(name, float('nan')):.2f} ({r.steps_share.get(name, 0):.0f}%)"
                           if name in r.steps_p50_ms else f"({r.steps_share.get(name, 0):.0f}%)" for r in results)]
                  for name in names]  # fmt: skip
    emit("per step: p50 ms (share of the mean retrieval; steps of a parallel group overlap)",
         ["step", *(f"{r.user_memories:,} {r.store}" for r in results)], share_rows, None, False)  # fmt: skip


def plot(results: list[RetrievalBenchResult], path: Path) -> None:
    """A PNG of p50 and p95 against the timed user's store size (both axes log), one line pair per store."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise SystemExit("--plot needs matplotlib: pip install 'memscope-ai[bench]'") from exc
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for store in dict.fromkeys(r.store for r in results if not r.store.startswith("sqlite, LoCoMo")):
        runs = sorted((r for r in results if r.store == store), key=lambda r: r.user_memories)
        sizes = [r.user_memories for r in runs]
        for key, style in (("p50", "o-"), ("p95", "s--")):
            ax.plot(sizes, [r.latency[key] for r in runs], style, label=f"{store} {key}")
    for r in results:
        if r.store.startswith("sqlite, LoCoMo"):
            ax.plot([r.user_memories], [r.latency["p95"]], "^", label=f"{r.store} p95")
    ax.set_xscale("log")
    ax.set_yscale("log")  # 1M can be far above the rest
    ax.set_xlabel("memories of the timed user")
    ax.set_ylabel("retrieve_memory latency, ms")
    ax.set_title("memscope retrieval, query embedding (local MiniLM) included")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m benchmarks.retrieval OUT.png RUN.json...`: one plot of the runs saved by `bench retrieval
    --json` (e.g. the 1M row, run apart because it fills for a long time), and their tables."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("png", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args(argv)
    results = [RetrievalBenchResult(**row) for path in args.runs for row in json.loads(path.read_text())]
    report(results, as_json=False)
    plot(results, args.png)


if __name__ == "__main__":
    main()
