"""Backend selection from typed settings and environment variables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memscope.config import EmbeddingSettings, LLMSettings, RerankSettings, load_settings
from memscope.errors import ConfigError
from memscope.llm.cache import CachedEmbedder
from memscope.llm.dashscope_backend import DashScopeChat, DashScopeEmbedder, DashScopeReranker
from memscope.llm.factory import make_chat, make_embedder, make_reranker
from memscope.llm.local_embedding import LocalEmbedder
from memscope.llm.noop import NoopReranker
from memscope.llm.openai_backend import OpenAIChat, OpenAIEmbedder
from memscope.llm.st_embedding import SentenceTransformerEmbedder
from tests.support.scripted_server import ScriptedServer, chat_messages


@pytest.mark.unit
def test_auto_without_keys_is_no_llm() -> None:
    assert make_chat(LLMSettings(backend="auto")) is None
    assert make_chat(LLMSettings()) is None
    assert make_chat(LLMSettings(backend="none", api_key="sk")) is None


@pytest.mark.integration
def test_auto_picks_openai_from_env(model_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", model_server.openai_base_url)
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-ds")  # openai wins when both are set
    model_server.script("w", "hi from openai")

    llm = make_chat(LLMSettings(backend="auto", timeout_s=5, max_retries=0))

    assert isinstance(llm, OpenAIChat) and llm.model == "gpt-4o-mini"
    assert llm.chat([{"role": "user", "content": "hello"}], tag="w").text == "hi from openai"
    (request,) = model_server.requests
    assert request.json["model"] == "gpt-4o-mini" and request.header("Authorization") == "Bearer sk-env"


@pytest.mark.unit
def test_model_name_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("MEMSCOPE_LLM_MODEL", "qwen3:8b")
    assert make_chat(LLMSettings(backend="auto")).model == "qwen3:8b"  # type: ignore[union-attr]
    monkeypatch.setenv("OPENAI_MODEL", "gpt-4.1-mini")
    assert make_chat(LLMSettings(backend="auto")).model == "gpt-4.1-mini"  # type: ignore[union-attr]
    assert make_chat(LLMSettings(backend="auto", model="explicit")).model == "explicit"  # type: ignore[union-attr]


@pytest.mark.integration
def test_auto_picks_dashscope_from_env(model_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-ds")
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", model_server.dashscope_base_url)
    model_server.script("w", "hi from qwen")

    llm = make_chat(LLMSettings(backend="auto", timeout_s=5))

    assert isinstance(llm, DashScopeChat) and llm.model == "qwen-plus"
    assert llm.chat([{"role": "user", "content": "hello"}], tag="w").text == "hi from qwen"
    (request,) = model_server.requests
    assert request.json["model"] == "qwen-plus"
    assert chat_messages(request.json) == [{"role": "user", "content": "hello"}]


@pytest.mark.integration
def test_explicit_openai_compatible_server(model_server: ScriptedServer) -> None:
    model_server.script("w", "local model says hi")
    llm = make_chat(
        LLMSettings(backend="openai", model="llama3", api_key="ollama", base_url=model_server.openai_base_url)
    )
    assert isinstance(llm, OpenAIChat)
    assert llm.chat([{"role": "user", "content": "x"}], tag="w").text == "local model says hi"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"backend": "openai"}, "OPENAI_API_KEY"),
        ({"backend": "dashscope"}, "DASHSCOPE_API_KEY"),
    ],
)
def test_chat_config_errors(cfg: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=rf"^llm\.api_key: .*{match}"):
        make_chat(LLMSettings(**cfg))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="auto, openai, dashscope, none"):
        load_settings({"llm": {"backend": "claude"}})  # an unknown backend never reaches the factory


@pytest.mark.unit
def test_local_embedder_is_cached_and_lazy() -> None:
    emb = make_embedder(EmbeddingSettings(backend="local"))
    assert isinstance(emb, CachedEmbedder) and isinstance(emb.inner, LocalEmbedder)
    assert (emb.name, emb.dim) == ("all-MiniLM-L6-v2", 384)
    assert isinstance(make_embedder(EmbeddingSettings(backend="local", model="all-MiniLM-L6-v2")).inner, LocalEmbedder)


@pytest.mark.unit
def test_other_local_models_go_through_sentence_transformers(tmp_path: Path) -> None:
    """A model folder, or the explicit backend, selects the sentence-transformers extra (same store name)."""
    other = make_embedder(EmbeddingSettings(backend="local", model=str(tmp_path / "my-model")))
    assert isinstance(other.inner, SentenceTransformerEmbedder) and other.name == "my-model"
    settings = load_settings({"embedding": {"backend": "sentence-transformers"}})  # the config accepts it
    same = make_embedder(settings.embedding)
    assert isinstance(same.inner, SentenceTransformerEmbedder) and same.name == "all-MiniLM-L6-v2"


@pytest.mark.integration
def test_remote_embedders_from_config(model_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    openai_emb = make_embedder(
        EmbeddingSettings(backend="openai", api_key="sk", base_url=model_server.openai_base_url, dim=64)
    )
    assert isinstance(openai_emb, CachedEmbedder) and isinstance(openai_emb.inner, OpenAIEmbedder)
    assert openai_emb.embed(["x"]).shape == (1, 64)

    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-ds")
    ds = make_embedder(EmbeddingSettings(backend="dashscope", base_url=model_server.dashscope_base_url, dim=64))
    assert isinstance(ds, CachedEmbedder) and isinstance(ds.inner, DashScopeEmbedder)
    np.testing.assert_allclose(ds.embed(["x"]), openai_emb.embed(["x"]), atol=1e-6)
    assert len(model_server.requests) == 2


@pytest.mark.unit
def test_embedding_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"embedding\.backend"):
        load_settings({"embedding": {"backend": "word2vec"}})
    with pytest.raises(ConfigError, match=r"^embedding\.api_key: .*OPENAI_API_KEY"):
        make_embedder(EmbeddingSettings(backend="openai"))


@pytest.mark.unit
def test_rerankers_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(make_reranker(RerankSettings(backend="none")), NoopReranker)
    assert isinstance(make_reranker(RerankSettings()), NoopReranker)
    with pytest.raises(ConfigError, match=r"^rerank\.api_key: .*DASHSCOPE_API_KEY or rerank\.api_key"):
        make_reranker(RerankSettings(backend="dashscope"))  # the config's key, not `reranker`
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-ds")
    assert isinstance(make_reranker(RerankSettings(backend="dashscope")), DashScopeReranker)
    with pytest.raises(ConfigError, match=r"rerank\.backend"):
        load_settings({"rerank": {"backend": "cohere"}})


@pytest.mark.unit
def test_factory_import_is_light() -> None:
    code = (
        "import sys, memscope.llm.factory; "
        "heavy = [m for m in ('openai', 'dashscope', 'torch', 'sentence_transformers') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
