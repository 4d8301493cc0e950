"""DashScope (Qwen chat, text-embedding-v*, gte-rerank) through the official `dashscope` SDK."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import numpy as np
from pydantic import BaseModel

from memscope.errors import ModelError, ModelUnavailable
from memscope.extras import install_hint
from memscope.llm.base import ChatResult, RerankResult, Usage, UsageMeter
from memscope.llm.cache import normalize
from memscope.llm.retry import parse_retry_after, record_retry, retry_unavailable
from memscope.llm.structured import WORKER_HEADER, run_structured, strip_think, with_schema_prompt
from memscope.redact import mask_url, remember, scrub

try:
    import dashscope
    import requests
    from dashscope.common.error import DashScopeException
except ImportError as exc:  # an extra: it pulls fastapi, uvicorn, opentelemetry, tiktoken and aiohttp
    raise ModelError(f"the dashscope backend needs the dashscope SDK: {install_hint('dashscope')}") from exc

__all__ = ["DashScopeChat", "DashScopeEmbedder", "DashScopeReranker", "map_dashscope_status"]

T = TypeVar("T", bound=BaseModel)

# rows per request the service accepts, and native dimensions
_BATCH_LIMITS = {
    "text-embedding-v1": 25,
    "text-embedding-v2": 25,
    "text-embedding-v3": 10,
    "text-embedding-v4": 10,
}
_NATIVE_DIMS = {
    "text-embedding-v1": 1536,
    "text-embedding-v2": 1536,
    "text-embedding-v3": 1024,
    "text-embedding-v4": 1024,
}


def map_dashscope_status(
    status: int, code: str | None, message: str | None, what: str, retry_after_s: float | None = None
) -> ModelError:
    """Turn a failed DashScope response into ModelUnavailable (transient) or ModelError."""
    detail = scrub(f"HTTP {status} {code or ''}: {message or 'no message'}".replace("  ", " "))
    if status in (408, 429) or status >= 500:
        busy = ModelUnavailable(f"{what} answered {detail}")
        busy.retry_after_s = retry_after_s
        return busy
    if status in (401, 403):
        return ModelError(f"{what} rejected the API key ({detail}); check DASHSCOPE_API_KEY (or the config's api_key)")
    return ModelError(f"{what} refused the request ({detail})")


class _DashScopeBase:
    """Key, endpoint, timeout and retries shared by the DashScope backends."""

    _count_retry = record_retry

    def __init__(
        self,
        model: str,
        api_key: str | None,
        base_url: str | None,
        timeout_s: float,
        max_retries: int,
        retry_base_delay_s: float,
        retry_max_delay_s: float,
    ) -> None:
        if not api_key:
            raise ModelError("no API key for the dashscope backend: set DASHSCOPE_API_KEY or the config's api_key")
        self.model, self.base_url, self.timeout_s = model, base_url, timeout_s
        self.max_retries = max_retries
        self.retry_base_delay_s, self.retry_max_delay_s = retry_base_delay_s, retry_max_delay_s
        self._api_key = api_key
        remember(api_key, base_url)

    def _request_kwargs(self, tag: str | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"api_key": self._api_key, "request_timeout": self.timeout_s}
        if self.base_url:
            kwargs["base_address"] = self.base_url
        if tag is not None:
            kwargs["headers"] = {WORKER_HEADER: tag}
        return kwargs

    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        where = mask_url(self.base_url or dashscope.base_http_api_url)

        def once() -> Any:
            try:
                resp = fn()
            except requests.exceptions.Timeout as exc:
                raise ModelUnavailable(f"{what} timed out after {self.timeout_s}s (server {where})") from exc
            except requests.exceptions.RequestException as exc:
                raise ModelUnavailable(f"{what}: cannot reach {where}: {scrub(str(exc))}") from exc
            except DashScopeException as exc:
                raise ModelError(f"{what} failed: {type(exc).__name__}: {scrub(str(exc))}") from exc
            if resp.status_code != 200:
                wait = parse_retry_after(getattr(resp, "headers", None))
                raise map_dashscope_status(int(resp.status_code), resp.code, resp.message, what, wait)
            return resp

        return retry_unavailable(
            once,
            retries=self.max_retries,
            base_delay_s=self.retry_base_delay_s,
            max_delay_s=self.retry_max_delay_s,
            on_retry=self._count_retry,
            max_wait_s=self.timeout_s,
        )


class DashScopeChat(_DashScopeBase):
    """Qwen chat via `dashscope.Generation.call` (message format); structured output via JSON mode."""

    def __init__(
        self,
        model: str,
        api_key: str | None,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        meter: UsageMeter | None = None,
        *,
        retry_base_delay_s: float = 0.5,
        retry_max_delay_s: float = 8.0,
    ) -> None:
        super().__init__(model, api_key, base_url, timeout_s, max_retries, retry_base_delay_s, retry_max_delay_s)
        self.name = f"dashscope:{model}"
        self.meter = meter or UsageMeter()

    def chat(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tag: str = "",
        temperature: float = 0.0,
        max_tokens: int | None = None,
    ) -> ChatResult:
        """One chat completion, retried on transient errors; usage recorded in the meter."""
        return self._complete(list(messages), tag, temperature, max_tokens, None)

    def structured(
        self,
        messages: Sequence[dict[str, Any]],
        schema: type[T],
        *,
        tag: str = "",
        temperature: float = 0.0,
        max_tokens: int | None = None,
    ) -> T:
        """A completion in JSON mode with the schema in the system prompt, one repair attempt."""
        fmt = {"type": "json_object"}
        return run_structured(
            lambda m: self._complete(m, tag, temperature, max_tokens, fmt).text,
            with_schema_prompt(messages, schema),
            schema,
        )

    def _complete(
        self,
        messages: list[dict[str, Any]],
        tag: str,
        temperature: float,
        max_tokens: int | None,
        response_format: dict[str, Any] | None,
    ) -> ChatResult:
        what = f"dashscope model {self.model!r}"
        kwargs = self._request_kwargs(tag)

        def call() -> Any:
            return dashscope.Generation.call(
                model=self.model,
                messages=cast(Any, messages),  # the SDK accepts plain dicts
                result_format="message",
                temperature=temperature,
                max_tokens=max_tokens,
                response_format=response_format,
                **kwargs,
            )

        resp = self._call(call, what)
        choices = (resp.output or {}).get("choices") or []
        if not choices:
            raise ModelError(f"{what} returned no choices")
        message = choices[0].get("message") or {}
        usage = Usage(
            calls=1,
            prompt_tokens=int((resp.usage or {}).get("input_tokens") or 0),
            completion_tokens=int((resp.usage or {}).get("output_tokens") or 0),
        )
        self.meter.record(usage)
        text = strip_think(_content_text(message.get("content")))
        return ChatResult(text=text, usage=usage, model=self.model, raw=resp)


def _content_text(content: Any) -> str:
    """Message content as text (DashScope may answer a list of {'text': ...} parts)."""
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content)
    return content or ""


class DashScopeEmbedder(_DashScopeBase):
    """text-embedding-v* via `dashscope.TextEmbedding.call`, batched to the service's limit."""

    def __init__(
        self,
        model: str = "text-embedding-v3",
        api_key: str | None = None,
        base_url: str | None = None,
        batch_size: int = 10,
        dim: int | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        *,
        retry_base_delay_s: float = 0.5,
        retry_max_delay_s: float = 8.0,
    ) -> None:
        super().__init__(model, api_key, base_url, timeout_s, max_retries, retry_base_delay_s, retry_max_delay_s)
        self.name = model
        self.batch_size = max(1, min(batch_size, _BATCH_LIMITS.get(model, batch_size)))
        self._requested_dim = dim
        self._dim = dim or _NATIVE_DIMS.get(model)

    @property
    def dim(self) -> int:
        """Vector dimension: configured, known for the model, or measured with one probe call."""
        if self._dim is None:
            self._dim = int(self._embed_batch(["dimension probe"]).shape[1])
        return self._dim

    @dim.setter
    def dim(self, value: int) -> None:
        """Record a known dimension (the Embedder protocol declares `dim` as an attribute)."""
        self._dim = int(value)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A (len(texts), dim) float32 array of unit vectors, in requests of at most `batch_size` texts."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        step = self.batch_size
        return np.vstack([self._embed_batch(list(texts[i : i + step])) for i in range(0, len(texts), step)])

    def _embed_batch(self, batch: list[str]) -> np.ndarray:
        what = f"dashscope embeddings {self.model!r}"
        kwargs = self._request_kwargs()
        if self._requested_dim:
            kwargs["dimension"] = self._requested_dim
        resp = self._call(lambda: dashscope.TextEmbedding.call(model=self.model, input=batch, **kwargs), what)
        rows = sorted((resp.output or {}).get("embeddings") or [], key=lambda r: r["text_index"])
        if len(rows) != len(batch):
            raise ModelError(f"{what} returned {len(rows)} vectors for {len(batch)} texts")
        return normalize(np.asarray([r["embedding"] for r in rows], dtype=np.float32))


class DashScopeReranker(_DashScopeBase):
    """gte-rerank (or another DashScope rerank model) via `dashscope.TextReRank.call`."""

    def __init__(
        self,
        model: str = "gte-rerank",
        api_key: str | None = None,
        base_url: str | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        *,
        retry_base_delay_s: float = 0.5,
        retry_max_delay_s: float = 8.0,
    ) -> None:
        super().__init__(model, api_key, base_url, timeout_s, max_retries, retry_base_delay_s, retry_max_delay_s)
        self.name = f"dashscope:{model}"

    def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None) -> list[RerankResult]:
        """Documents' indices with relevance scores, best first (at most `top_n`)."""
        if not documents:
            return []
        kwargs = self._request_kwargs()
        docs = list(documents)

        def call() -> Any:
            return dashscope.TextReRank.call(
                model=self.model, query=query, documents=docs, top_n=top_n, return_documents=False, **kwargs
            )

        resp = self._call(call, f"dashscope rerank {self.model!r}")
        results = [RerankResult(index=int(r.index), score=float(r.relevance_score)) for r in resp.output.results]
        results.sort(key=lambda r: r.score, reverse=True)
        return results[:top_n] if top_n is not None else results
