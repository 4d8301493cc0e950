"""Build the configured chat model, embedder and reranker from their typed settings (SDKs imported lazily).

Defaults live in one place: a setting's default in `memscope.config`, else (a null setting) the
backend class's own default, else an environment variable the provider documents.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import SecretStr

from memscope.config import EmbeddingSettings, LLMSettings, RerankSettings
from memscope.errors import ConfigError, ModelError
from memscope.llm.base import ChatModel, Embedder, Reranker, UsageMeter
from memscope.llm.cache import CachedEmbedder

__all__ = ["make_chat", "make_embedder", "make_reranker", "resolve_chat_backend"]

DEFAULT_OPENAI_CHAT = "gpt-4o-mini"
DEFAULT_DASHSCOPE_CHAT = "qwen-plus"
BUILTIN_EMBEDDING = "all-MiniLM-L6-v2"


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _given(**values: Any) -> dict[str, Any]:
    """The keyword arguments that are set: a None leaves the backend class's own default."""
    return {k: v for k, v in values.items() if v is not None}


def resolve_chat_backend(settings: LLMSettings) -> str:
    """The chat backend the settings select: `auto` becomes openai, dashscope (by API key in env) or none."""
    if settings.backend != "auto":
        return settings.backend
    if settings.api_key and settings.base_url:
        return "openai"  # an explicit key and endpoint: any OpenAI-compatible server
    if _env("OPENAI_API_KEY"):
        return "openai"
    if _env("DASHSCOPE_API_KEY"):
        return "dashscope"
    return "none"


def make_chat(settings: LLMSettings, meter: UsageMeter | None = None) -> ChatModel | None:
    """The chat model the settings describe, or None when no LLM is configured (a normal state)."""
    backend = resolve_chat_backend(settings)
    if backend == "none":
        return None
    timeout_s, retries = float(settings.timeout_s), settings.max_retries
    if backend == "openai":
        from memscope.llm.openai_backend import OpenAIChat

        return OpenAIChat(
            model=settings.model or _env("OPENAI_MODEL", "MEMSCOPE_LLM_MODEL") or DEFAULT_OPENAI_CHAT,
            api_key=_key(settings.api_key, "OPENAI_API_KEY", "llm", backend),
            base_url=settings.base_url or _env("OPENAI_BASE_URL"),
            json_schema=settings.json_schema,
            timeout_s=timeout_s,
            max_retries=retries,
            meter=meter,
        )
    from memscope.llm.dashscope_backend import DashScopeChat

    return DashScopeChat(
        model=settings.model or _env("DASHSCOPE_MODEL", "MEMSCOPE_LLM_MODEL") or DEFAULT_DASHSCOPE_CHAT,
        api_key=_key(settings.api_key, "DASHSCOPE_API_KEY", "llm", backend),
        base_url=settings.base_url or _env("DASHSCOPE_HTTP_BASE_URL"),
        timeout_s=timeout_s,
        max_retries=retries,
        meter=meter,
    )


def make_embedder(settings: EmbeddingSettings) -> Embedder:
    """The embedder the settings describe, behind an in-process LRU cache (`cache_size`; 0 turns it off)."""
    backend, model = settings.backend, settings.model
    inner: Embedder
    builtin = model in (None, BUILTIN_EMBEDDING)
    if backend == "local" and builtin:
        from memscope.llm.local_embedding import LocalEmbedder

        try:
            inner = LocalEmbedder(
                backend=settings.local_backend,
                threads=settings.local_threads,
                query_precision=settings.local_query_precision,
                **_given(batch_size=settings.batch_size),
            )
        except ModelError as exc:  # local_backend: onnx without onnxruntime installed
            raise ConfigError([str(exc)]) from exc
    elif backend in ("local", "sentence-transformers"):  # another model folder: sentence-transformers (an extra)
        from memscope.llm.st_embedding import SentenceTransformerEmbedder

        inner = SentenceTransformerEmbedder(None if builtin else model, **_given(batch_size=settings.batch_size))
    else:
        remote = _given(model=model, dim=settings.dim, batch_size=settings.batch_size)
        remote["timeout_s"] = float(settings.timeout_s)
        if backend == "openai":
            from memscope.llm.openai_backend import OpenAIEmbedder

            key = _key(settings.api_key, "OPENAI_API_KEY", "embedding", backend)
            inner = OpenAIEmbedder(api_key=key, base_url=settings.base_url or _env("OPENAI_BASE_URL"), **remote)
        else:
            from memscope.llm.dashscope_backend import DashScopeEmbedder

            key = _key(settings.api_key, "DASHSCOPE_API_KEY", "embedding", backend)
            base_url = settings.base_url or _env("DASHSCOPE_HTTP_BASE_URL")
            inner = DashScopeEmbedder(api_key=key, base_url=base_url, **remote)
    return CachedEmbedder(inner, max_items=settings.cache_size)


def make_reranker(settings: RerankSettings) -> Reranker:
    """The reranker the settings describe; `none` keeps the retrieval order."""
    if settings.backend == "none":
        from memscope.llm.noop import NoopReranker

        return NoopReranker()
    from memscope.llm.dashscope_backend import DashScopeReranker

    return DashScopeReranker(
        model=settings.model,
        api_key=_key(settings.api_key, "DASHSCOPE_API_KEY", "rerank", settings.backend),
        base_url=settings.base_url or _env("DASHSCOPE_HTTP_BASE_URL"),
        timeout_s=float(settings.timeout_s),
        max_retries=settings.max_retries,
    )


def _key(given: SecretStr | None, env_name: str, section: str, backend: str) -> str:
    """The API key from the config, else the provider's environment variable; ConfigError naming both."""
    key = _secret(given) or _env(env_name)
    if not key:
        problem = f"{section}.api_key: the {backend} backend needs an API key; set {env_name} or {section}.api_key"
        raise ConfigError([problem])
    return key
