"""Build the configured chat model, embedder and reranker from plain dicts (SDKs imported lazily)."""

from __future__ import annotations

import os
from typing import Any

from pydantic import SecretStr

from memscope.errors import ConfigError
from memscope.llm.base import ChatModel, Embedder, Reranker, UsageMeter
from memscope.llm.cache import CachedEmbedder

__all__ = ["make_chat", "make_embedder", "make_reranker", "resolve_chat_backend"]

DEFAULT_OPENAI_CHAT = "gpt-4o-mini"
DEFAULT_DASHSCOPE_CHAT = "qwen-plus"
_CHAT_BACKENDS = ("auto", "openai", "dashscope", "none")
_EMBED_BACKENDS = ("local", "sentence-transformers", "openai", "dashscope")
_RERANK_BACKENDS = ("none", "dashscope")


def _revealed(cfg: dict[str, Any]) -> dict[str, Any]:
    """`cfg` with SecretStr values (from Settings.model_dump()) as plain text, for the SDK clients."""
    return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in cfg.items()}


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def resolve_chat_backend(cfg: dict[str, Any]) -> str:
    """The chat backend `cfg` selects: `auto` becomes openai, dashscope (by API key in env) or none."""
    backend = str(cfg.get("backend") or "auto").lower()
    if backend not in _CHAT_BACKENDS:
        raise ConfigError([f"llm.backend: unknown backend {backend!r}; choose one of {', '.join(_CHAT_BACKENDS)}"])
    if backend != "auto":
        return backend
    if cfg.get("api_key") and cfg.get("base_url"):
        return "openai"  # an explicit key and endpoint: any OpenAI-compatible server
    if _env("OPENAI_API_KEY"):
        return "openai"
    if _env("DASHSCOPE_API_KEY"):
        return "dashscope"
    return "none"


def make_chat(cfg: dict[str, Any], meter: UsageMeter | None = None) -> ChatModel | None:
    """The chat model `cfg` describes, or None when no LLM is configured (a normal state)."""
    cfg = _revealed(cfg)
    backend = resolve_chat_backend(cfg)
    timeout_s, max_retries = float(cfg.get("timeout_s") or 60.0), int(cfg.get("max_retries", 3))
    if backend == "openai":
        from memscope.llm.openai_backend import OpenAIChat

        key = cfg.get("api_key") or _env("OPENAI_API_KEY")
        if not key:
            raise ConfigError(["llm.api_key: the openai backend needs an API key; set OPENAI_API_KEY or llm.api_key"])
        return OpenAIChat(
            model=cfg.get("model") or _env("OPENAI_MODEL", "MEMSCOPE_LLM_MODEL") or DEFAULT_OPENAI_CHAT,
            api_key=key,
            base_url=cfg.get("base_url") or _env("OPENAI_BASE_URL"),
            timeout_s=timeout_s,
            max_retries=max_retries,
            meter=meter,
            json_schema=bool(cfg.get("json_schema", True)),
        )
    if backend == "dashscope":
        from memscope.llm.dashscope_backend import DashScopeChat

        key = cfg.get("api_key") or _env("DASHSCOPE_API_KEY")
        if not key:
            raise ConfigError(
                ["llm.api_key: the dashscope backend needs an API key; set DASHSCOPE_API_KEY or llm.api_key"]
            )
        return DashScopeChat(
            model=cfg.get("model") or _env("DASHSCOPE_MODEL", "MEMSCOPE_LLM_MODEL") or DEFAULT_DASHSCOPE_CHAT,
            api_key=key,
            base_url=cfg.get("base_url") or _env("DASHSCOPE_HTTP_BASE_URL"),
            timeout_s=timeout_s,
            max_retries=max_retries,
            meter=meter,
        )
    return None


def make_embedder(cfg: dict[str, Any]) -> Embedder:
    """The embedder `cfg` describes, behind an in-process LRU cache (`cache_size`, default 10000)."""
    cfg = _revealed(cfg)
    backend = str(cfg.get("backend") or "local").lower()
    model, dim = cfg.get("model"), cfg.get("dim")
    inner: Embedder
    builtin = model in (None, "", "all-MiniLM-L6-v2")
    if backend == "local" and builtin:
        from memscope.llm.local_embedding import LocalEmbedder

        inner = LocalEmbedder(batch_size=int(cfg.get("batch_size") or 64))
    elif backend in ("local", "sentence-transformers"):  # another model folder: sentence-transformers (an extra)
        from memscope.llm.st_embedding import SentenceTransformerEmbedder

        inner = SentenceTransformerEmbedder(None if builtin else model, batch_size=int(cfg.get("batch_size") or 64))
    elif backend == "openai":
        from memscope.llm.openai_backend import OpenAIEmbedder

        inner = OpenAIEmbedder(
            model=model or "text-embedding-3-small",
            api_key=_key(cfg, "OPENAI_API_KEY", "embedding"),
            base_url=cfg.get("base_url") or _env("OPENAI_BASE_URL"),
            dim=dim,
            batch_size=int(cfg.get("batch_size") or 256),
            timeout_s=float(cfg.get("timeout_s") or 30.0),
        )
    elif backend == "dashscope":
        from memscope.llm.dashscope_backend import DashScopeEmbedder

        inner = DashScopeEmbedder(
            model=model or "text-embedding-v3",
            api_key=_key(cfg, "DASHSCOPE_API_KEY", "embedding"),
            base_url=cfg.get("base_url") or _env("DASHSCOPE_HTTP_BASE_URL"),
            dim=dim,
            batch_size=int(cfg.get("batch_size") or 10),
            timeout_s=float(cfg.get("timeout_s") or 30.0),
        )
    else:
        raise ConfigError(
            [f"embedding.backend: unknown backend {backend!r}; choose one of {', '.join(_EMBED_BACKENDS)}"]
        )
    return CachedEmbedder(inner, max_items=int(cfg.get("cache_size", 10_000)))


def make_reranker(cfg: dict[str, Any]) -> Reranker:
    """The reranker `cfg` describes; `none` keeps the retrieval order."""
    cfg = _revealed(cfg)
    backend = str(cfg.get("backend") or "none").lower()
    if backend == "none":
        from memscope.llm.noop import NoopReranker

        return NoopReranker()
    if backend == "dashscope":
        from memscope.llm.dashscope_backend import DashScopeReranker

        return DashScopeReranker(
            model=cfg.get("model") or "gte-rerank",
            api_key=_key(cfg, "DASHSCOPE_API_KEY", "reranker"),
            base_url=cfg.get("base_url") or _env("DASHSCOPE_HTTP_BASE_URL"),
            timeout_s=float(cfg.get("timeout_s") or 30.0),
            max_retries=int(cfg.get("max_retries", 3)),
        )
    raise ConfigError([f"reranker.backend: unknown backend {backend!r}; choose one of {', '.join(_RERANK_BACKENDS)}"])


def _key(cfg: dict[str, Any], env_name: str, section: str) -> str:
    key = cfg.get("api_key") or _env(env_name)
    if not key:
        raise ConfigError([f"{section}.api_key: the {cfg.get('backend')} backend needs an API key; set {env_name}"])
    return key
