"""OpenAI and DashScope embedders and the LRU cache, over HTTP against the scripted server."""

from __future__ import annotations

import numpy as np
import pytest

from memscope.errors import ModelUnavailable
from memscope.llm.base import Embedder
from memscope.llm.cache import CachedEmbedder, normalize
from memscope.llm.dashscope_backend import DashScopeEmbedder
from memscope.llm.openai_backend import OpenAIEmbedder
from tests.support.scripted_server import EMBED_TAG, Fault, ScriptedServer, fake_embedding

pytestmark = pytest.mark.integration

TEXTS = ["I live in Hangzhou", "My cat is called Miso", "", "我喜欢喝茶", "Tea, not coffee"]


def openai_embedder(server: ScriptedServer, **kw: object) -> OpenAIEmbedder:
    return OpenAIEmbedder(
        "text-embedding-3-small", "sk-test", base_url=server.openai_base_url, dim=64, retry_base_delay_s=0.01, **kw
    )


def dashscope_embedder(server: ScriptedServer, **kw: object) -> DashScopeEmbedder:
    return DashScopeEmbedder(
        api_key="sk-test", base_url=server.dashscope_base_url, dim=64, retry_base_delay_s=0.01, **kw
    )


def expected(texts: list[str], dim: int = 64) -> np.ndarray:
    return normalize(np.asarray([fake_embedding(t, dim) for t in texts]))


def test_openai_embeddings_shape_order_and_batching(model_server: ScriptedServer) -> None:
    emb = openai_embedder(model_server, batch_size=2)
    assert isinstance(emb, Embedder)

    vectors = emb.embed(TEXTS)

    assert vectors.shape == (5, 64) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(vectors, expected(TEXTS), atol=1e-6)
    batches = [r.json["input"] for r in model_server.requests_to("/v1/embeddings")]
    assert batches == [TEXTS[0:2], TEXTS[2:4], TEXTS[4:5]]
    assert all(r.json["dimensions"] == 64 for r in model_server.requests)
    assert emb.dim == 64 and emb.name == "text-embedding-3-small"


def test_dashscope_embeddings_respect_the_service_batch_limit(model_server: ScriptedServer) -> None:
    emb = dashscope_embedder(model_server, batch_size=25)  # v3 accepts 10 per request; clamped
    texts = [f"memory number {i}" for i in range(23)]

    vectors = emb.embed(texts)

    assert vectors.shape == (23, 64) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, expected(texts), atol=1e-6)
    requests = model_server.requests_to("/text-embedding/text-embedding")
    assert [len(r.json["input"]["texts"]) for r in requests] == [10, 10, 3]
    assert requests[0].json["model"] == "text-embedding-v3"
    assert requests[0].json["parameters"]["dimension"] == 64


@pytest.mark.parametrize("make", [openai_embedder, dashscope_embedder])
def test_empty_input_makes_no_request(model_server: ScriptedServer, make: object) -> None:
    emb = make(model_server)  # type: ignore[operator]
    out = emb.embed([])
    assert out.shape == (0, 64) and out.dtype == np.float32
    assert model_server.requests == []


@pytest.mark.parametrize("make", [openai_embedder, dashscope_embedder])
def test_transient_embedding_failure_is_retried(model_server: ScriptedServer, make: object) -> None:
    emb = make(model_server)  # type: ignore[operator]
    model_server.script(EMBED_TAG, Fault.status(429))
    assert emb.embed(["hello"]).shape == (1, 64)
    assert len(model_server.requests) == 2


def test_embedding_failures_exhaust_retries(model_server: ScriptedServer) -> None:
    emb = openai_embedder(model_server, max_retries=1)
    model_server.script(EMBED_TAG, Fault.status(502), Fault.status(502))
    with pytest.raises(ModelUnavailable, match="502"):
        emb.embed(["hello"])


def test_unknown_model_dimension_is_probed_once(model_server: ScriptedServer) -> None:
    emb = OpenAIEmbedder("nomic-embed-text", "sk-local", base_url=model_server.openai_base_url)
    assert emb.dim == 64
    assert emb.dim == 64
    assert len(model_server.requests) == 1
    assert "dimensions" not in model_server.requests[0].json


def test_cache_hit_avoids_a_second_request(model_server: ScriptedServer) -> None:
    cached = CachedEmbedder(openai_embedder(model_server))
    assert isinstance(cached, Embedder) and cached.name == "text-embedding-3-small" and cached.dim == 64

    first = cached.embed(["a", "b", "a"])
    second = cached.embed(["b", "c"])
    third = cached.embed(["c", "a", "b"])

    batches = [r.json["input"] for r in model_server.requests]
    assert batches == [["a", "b"], ["c"]]
    np.testing.assert_array_equal(first[0], first[2])
    np.testing.assert_array_equal(second[0], first[1])
    np.testing.assert_array_equal(third, np.vstack([second[1], first[0], first[1]]))
    assert (cached.hits, cached.misses) == (4, 3)


def test_cache_evicts_least_recently_used(model_server: ScriptedServer) -> None:
    cached = CachedEmbedder(openai_embedder(model_server), max_items=2)
    cached.embed(["a"])
    cached.embed(["b"])
    cached.embed(["a"])  # a is now the most recent
    cached.embed(["c"])  # evicts b
    cached.embed(["a", "b"])
    assert [r.json["input"] for r in model_server.requests] == [["a"], ["b"], ["c"], ["b"]]


def test_cached_rows_are_not_shared_with_callers(model_server: ScriptedServer) -> None:
    cached = CachedEmbedder(openai_embedder(model_server))
    out = cached.embed(["a"])
    out[:] = 0.0
    assert np.linalg.norm(cached.embed(["a"])) == pytest.approx(1.0, rel=1e-5)
