"""The local embedder on onnxruntime: the graph's vectors equal numpy's, int8 queries, the graph cache, settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from memscope.config import EmbeddingSettings, load_settings
from memscope.errors import ConfigError, ModelError
from memscope.llm import onnx_cache
from memscope.llm.base import embed_query, embed_query_focused
from memscope.llm.bert import BertEncoder, read_safetensors
from memscope.llm.cache import CachedEmbedder
from memscope.llm.factory import make_embedder
from memscope.llm.local_embedding import _CONFIG, LocalEmbedder, OnnxEncoder
from memscope.llm.model_files import find_minilm
from memscope.llm.onnx_graph import GRAPH_VERSION, build_graph
from memscope.retrieval import content_spans, search_text
from tests.support.embedders import RecordingEmbedder

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SENTENCES = [
    "When did Caroline go to the LGBTQ support group?",
    "Caroline: I went to a support group yesterday and it was so powerful.",
    "Melanie painted a sunrise over the lake last year.",
    "What is my sister's favourite food?",
    "I adopted a puppy named Max in May and he loves the beach.",
    "Do you remember the book I recommended to you?",
]


@pytest.fixture(scope="module")
def onnx_embedder() -> LocalEmbedder:
    """Built once per session (MEMSCOPE_CACHE_DIR is the session's cache folder): later instances load it."""
    emb = LocalEmbedder(backend="onnx")
    emb.warm_up()
    return emb


@pytest.fixture(scope="module")
def numpy_embedder() -> LocalEmbedder:
    return LocalEmbedder(backend="numpy")


@pytest.mark.unit
def test_graph_pools_like_the_numpy_encoder_over_padding() -> None:
    tensors = read_safetensors(find_minilm().weights)
    encoder = OnnxEncoder(build_graph(tensors, _CONFIG).SerializeToString(), threads=1)
    ids = np.random.default_rng(3).integers(1000, 30000, size=(3, 19)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 11:], mask[2, 4:] = 0, 0  # shorter rows padded, as in a batch of several lengths
    np.testing.assert_allclose(encoder.encode(ids, mask), BertEncoder(tensors, _CONFIG).encode(ids, mask), atol=1e-5)


@pytest.mark.unit
def test_onnx_vectors_equal_numpy_vectors(onnx_embedder: LocalEmbedder, numpy_embedder: LocalEmbedder) -> None:
    texts = SENTENCES + json.loads((FIXTURES / "minilm_reference.json").read_text())  # Chinese, emoji, > 256 tokens
    assert onnx_embedder.backend == "onnx" and numpy_embedder.backend == "numpy"
    np.testing.assert_allclose(onnx_embedder.embed(texts), numpy_embedder.embed(texts), atol=1e-4)
    np.testing.assert_allclose(onnx_embedder.embed(texts[:1]), numpy_embedder.embed(texts[:1]), atol=1e-4)


@pytest.mark.unit
def test_int8_query_vectors_stay_near_fp32(onnx_embedder: LocalEmbedder) -> None:
    fp32, int8 = onnx_embedder.embed(SENTENCES), onnx_embedder.embed_query(SENTENCES)
    assert int8.shape == fp32.shape and int8.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, rtol=1e-5)
    assert float((int8 * fp32).sum(axis=1).min()) >= 0.98
    assert not np.allclose(int8, fp32, atol=1e-4), "embed_query should run the int8 graph"
    # the query still finds its statement first among the others
    assert int(np.argmax(fp32[1:] @ int8[0])) == 0


@pytest.mark.unit
def test_a_focused_query_pools_its_content_words_from_one_pass(
    onnx_embedder: LocalEmbedder, numpy_embedder: LocalEmbedder
) -> None:
    question = SENTENCES[0]
    focus = content_spans(question)
    assert search_text(question) == "Caroline go LGBTQ support group"
    fp32 = LocalEmbedder(backend="onnx", query_precision="fp32")
    rows = fp32.embed_query_focused(question, focus)
    assert rows.shape == (2, 384)
    np.testing.assert_allclose(rows, numpy_embedder.embed_query_focused(question, focus), atol=1e-4)
    np.testing.assert_allclose(rows[0], fp32.embed_query([question])[0], atol=1e-5)  # row 0: the question's vector
    # row 1: the mean of the content words' token states, from the question's own pass
    encoding = numpy_embedder._tokenizer.encode(question)
    assert encoding.tokens[3:5] + encoding.tokens[7:12] == ["caroline", "go", "lgbt", "##q", "support", "group", "?"]
    ids = np.asarray([encoding.ids])
    states = BertEncoder(read_safetensors(find_minilm().weights), _CONFIG).hidden(ids, np.ones_like(ids))[0]
    content = states[[3, 4, 7, 8, 9, 10]].mean(axis=0)
    np.testing.assert_allclose(rows[1], content / np.linalg.norm(content), atol=1e-4)
    words = fp32.embed([search_text(question)])[0]
    assert float(rows[1] @ words) > float(rows[0] @ words)  # nearer the content words' own vector
    int8 = onnx_embedder.embed_query_focused(question, focus)
    assert float((int8 * rows).sum(axis=1).min()) >= 0.98
    np.testing.assert_allclose(int8[0], onnx_embedder.embed_query([question])[0], atol=1e-5)


@pytest.mark.unit
def test_a_focus_no_token_falls_in_gives_the_question_alone(onnx_embedder: LocalEmbedder) -> None:
    question = "What? 🙂 Nothing."
    assert onnx_embedder.embed_query_focused(question, [(5, 6)]).shape == (1, 384)  # the space before the emoji
    assert onnx_embedder.embed_query_focused(question, []).shape == (1, 384)
    long = "word " * 600  # past the model's 256 tokens: a focus beyond them pools nothing
    assert onnx_embedder.embed_query_focused(long, [(2900, 2904)]).shape == (1, 384)


@pytest.mark.unit
def test_a_focused_query_without_a_pooling_embedder_is_one_batch_of_two() -> None:
    question = "What did Tom eat in Rome?"
    inner = RecordingEmbedder()
    assert embed_query_focused(inner, question, content_spans(question)).shape == (2, 2)
    assert inner.sent == [[question, "Tom eat Rome"]]
    cached = CachedEmbedder(RecordingEmbedder())
    cached.embed_query_focused(question, content_spans(question))
    cached.embed_query_focused(question, content_spans(question))  # a remote embedder is spared the repeat
    assert cached.inner.sent == [[question, "Tom eat Rome"]] and cached.hits == 2


@pytest.mark.unit
def test_the_cached_embedder_passes_focused_queries_through_uncached(onnx_embedder: LocalEmbedder) -> None:
    cached = CachedEmbedder(onnx_embedder)
    focus = content_spans(SENTENCES[0])
    np.testing.assert_array_equal(
        embed_query_focused(cached, SENTENCES[0], focus), onnx_embedder.embed_query_focused(SENTENCES[0], focus)
    )
    assert (len(cached._cache), cached.hits, cached.misses) == (0, 0, 0)


@pytest.mark.unit
def test_fp32_query_precision_gives_document_vectors() -> None:
    emb = LocalEmbedder(backend="onnx", query_precision="fp32")
    np.testing.assert_array_equal(emb.embed_query(SENTENCES[:2]), emb.embed(SENTENCES[:2]))
    assert list(emb._encoders) == ["fp32"]  # one session serves both


@pytest.mark.unit
def test_graphs_are_cached_once_and_reused(onnx_embedder: LocalEmbedder, model_cache_dir: Path) -> None:
    files = sorted(model_cache_dir.glob(f"all-MiniLM-L6-v2-53aa51172d142c89-g{GRAPH_VERSION}-*.onnx"))
    assert [f.name.split("-")[-1 if "fp32" in f.name else -2] for f in files] == ["fp32.onnx", "int8"]
    before = {f: f.stat().st_mtime_ns for f in files}
    builds = onnx_cache.build_count("fp32"), onnx_cache.build_count("int8")
    assert builds[0] <= 1 and builds[1] <= 1  # at most once in this session, none if an earlier run left them

    second = LocalEmbedder(backend="onnx")
    second.warm_up()
    assert (onnx_cache.build_count("fp32"), onnx_cache.build_count("int8")) == builds
    assert {f: f.stat().st_mtime_ns for f in files} == before
    assert not list(model_cache_dir.glob("*.tmp")), "a temporary file was left behind"
    np.testing.assert_array_equal(second.embed_query(SENTENCES[:1]), onnx_embedder.embed_query(SENTENCES[:1]))


@pytest.mark.unit
def test_an_unwritable_cache_dir_builds_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, numpy_embedder: LocalEmbedder
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MEMSCOPE_CACHE_DIR", str(blocker / "cache"))  # cannot be created, even as root
    builds = onnx_cache.build_count("fp32")
    emb = LocalEmbedder(backend="onnx", query_precision="fp32")
    np.testing.assert_allclose(emb.embed(SENTENCES[:2]), numpy_embedder.embed(SENTENCES[:2]), atol=1e-4)
    assert onnx_cache.build_count("fp32") == builds + 1


class FakeGraph:
    def SerializeToString(self) -> bytes:
        return b"graph"


@pytest.mark.unit
def test_a_newly_cached_graph_removes_older_graph_versions_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMSCOPE_CACHE_DIR", str(tmp_path))
    sha, other = "ab" * 32, "cd" * 32
    older = [tmp_path / f"all-MiniLM-L6-v2-{sha[:16]}-g{v}-fp32.onnx" for v in range(1, GRAPH_VERSION)]
    kept = [
        tmp_path / f"all-MiniLM-L6-v2-{sha[:16]}-g{GRAPH_VERSION + 1}-fp32.onnx",  # a newer memscope's
        tmp_path / f"all-MiniLM-L6-v2-{other[:16]}-g1-fp32.onnx",  # another model's
        tmp_path / "notes.txt",
    ]
    for f in older + kept:
        f.write_bytes(b"old")
    assert onnx_cache.graph_bytes("fp32", sha, FakeGraph) == b"graph"
    assert (tmp_path / f"all-MiniLM-L6-v2-{sha[:16]}-g{GRAPH_VERSION}-fp32.onnx").read_bytes() == b"graph"
    assert not any(f.exists() for f in older) and all(f.exists() for f in kept)


@pytest.mark.unit
def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEMSCOPE_CACHE_DIR", str(tmp_path / "a"))
    assert onnx_cache.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("MEMSCOPE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert onnx_cache.cache_dir() == tmp_path / "xdg" / "memscope"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert onnx_cache.cache_dir() == Path.home() / ".cache" / "memscope"


@pytest.mark.unit
def test_settings_choose_the_backend_and_reject_bad_values() -> None:
    inner = make_embedder(EmbeddingSettings(local_backend="numpy")).inner
    assert isinstance(inner, LocalEmbedder) and inner.backend == "numpy"
    inner.embed_query(["hello"])
    assert isinstance(inner._encoders["fp32"], BertEncoder) and list(inner._encoders) == ["fp32"]
    inner = make_embedder(EmbeddingSettings(local_threads=2, local_query_precision="fp32")).inner
    assert isinstance(inner, LocalEmbedder)
    assert (inner.backend, inner.threads, inner.query_precision) == ("onnx", 2, "fp32")

    for bad in ({"local_backend": "gpu"}, {"local_threads": 0}, {"local_query_precision": "int4"}):
        with pytest.raises(ValidationError):
            EmbeddingSettings(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="local_threads"):
        load_settings({"embedding": {"local_threads": 0}})


@pytest.mark.unit
def test_explicit_onnx_without_onnxruntime_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # find_spec sees it as not installed
    with pytest.raises(ModelError, match=r"onnxruntime.*pip install memscope-ai"):
        LocalEmbedder(backend="onnx")
    with pytest.raises(ConfigError, match=r"local_backend: onnx needs onnxruntime"):
        make_embedder(EmbeddingSettings(local_backend="onnx"))
    assert LocalEmbedder().backend == "numpy"  # auto falls back


@pytest.mark.unit
def test_cached_embedder_passes_queries_through_uncached(onnx_embedder: LocalEmbedder) -> None:
    cached = CachedEmbedder(onnx_embedder)
    vectors = cached.embed_query(SENTENCES[:2])
    np.testing.assert_array_equal(vectors, onnx_embedder.embed_query(SENTENCES[:2]))
    assert (len(cached._cache), cached.hits, cached.misses) == (0, 0, 0)
    assert cached.embed_query([]).shape == (0, 384)
    # dynamic int8 scales activations per batch, so compare like with like
    np.testing.assert_array_equal(embed_query(cached, SENTENCES[:2]), vectors)


class DocumentsOnly:
    """An embedder with no query path of its own (as the remote ones)."""

    name, dim = "plain", 2

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        return np.ones((len(texts), 2), dtype=np.float32)


@pytest.mark.unit
def test_embed_query_helper_falls_back_to_embed() -> None:
    assert embed_query(DocumentsOnly(), ["a", "b"]).shape == (2, 2)


@pytest.mark.unit
def test_cached_queries_of_an_embedder_without_a_query_path_use_the_cache() -> None:
    inner = DocumentsOnly()
    cached = CachedEmbedder(inner)
    cached.embed_query(["a question"])
    cached.embed_query(["a question"])  # a repeated query costs a remote embedder nothing
    assert inner.calls == 1 and cached.hits == 1


@pytest.mark.unit
def test_onnx_embeds_after_the_store_loaded_usearch() -> None:
    """The store's usearch loaded first, then the local embedder's onnxruntime (usearch 2.26.2-2.26.6 made that
    import segfault: pyproject.toml bounds it), imported with its telemetry off."""
    code = (
        "from memscope.stores.vector_ann import ann_available; ann_available(); "
        "from memscope.llm.local_embedding import LocalEmbedder; "
        "e = LocalEmbedder(backend='onnx', query_precision='fp32'); assert e.embed(['hi']).shape == (1, 384); "
        "import os; assert os.environ['ORT_DISABLE_TELEMETRY'] == '1'"  # memscope runs offline: no usage events
    )
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, env=env)


@pytest.mark.unit
def test_usearch_imported_first_does_not_crash_onnxruntime() -> None:
    """A user's own `import usearch` before memscope: usearch 2.26.2-2.26.6 then made `import onnxruntime`
    segfault (pyproject.toml bounds usearch below 2.26.2; a version bump that brings it back fails here)."""
    code = "import usearch.index; import onnxruntime; onnxruntime.get_available_providers()"
    done = subprocess.run([sys.executable, "-c", code], timeout=120, capture_output=True)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr.decode()[-500:]}"


@pytest.mark.unit
def test_memory_scope_warm_up_loads_the_local_model_before_the_first_retrieve(tmp_path) -> None:
    import asyncio

    from memscope.api import AsyncMemoryScope, MemoryScope

    config = {"store": {"path": str(tmp_path / "m.db")}, "llm": {"backend": "none"}}
    with MemoryScope(config, background=False) as memory:
        local = memory.runtime.embedder.inner
        assert isinstance(local, LocalEmbedder) and not local._encoders
        memory.warm_up()
        assert set(local._encoders) == {"fp32", "int8"}  # the document and the query graphs
        memory.retrieve("u1", "anything")
    remote_config = {**config, "store": {"path": str(tmp_path / "remote.db")},
                     "embedding": {"backend": "openai", "api_key": "k", "base_url": "http://127.0.0.1:9"}}  # fmt: skip
    with MemoryScope(remote_config, background=False) as remote:
        remote.warm_up()  # a remote embedder has nothing to load: no call is made

    async def warm() -> None:
        async with AsyncMemoryScope(config, background=False) as memory:
            await memory.warm_up()
            assert memory.runtime.embedder.inner._encoders

    asyncio.run(warm())
