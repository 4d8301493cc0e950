"""OpenAI (and any OpenAI-compatible server) chat and embeddings through the official SDK."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel

from memscope.errors import ModelError, ModelUnavailable
from memscope.extras import install_hint
from memscope.llm.base import ChatResult, Usage, UsageMeter
from memscope.llm.cache import normalize
from memscope.llm.retry import parse_retry_after, record_retry, retry_unavailable
from memscope.llm.structured import (
    WORKER_HEADER,
    json_schema_format,
    run_structured,
    strip_think,
    with_schema_prompt,
)
from memscope.redact import mask_url, remember, scrub

try:
    import openai
except ImportError as exc:  # an extra: most users need one provider, not all
    raise ModelError(f"the openai backend needs the openai SDK: {install_hint('openai')}") from exc

__all__ = ["OpenAIChat", "OpenAIEmbedder", "map_openai_error"]

T = TypeVar("T", bound=BaseModel)
R = TypeVar("R")

_NATIVE_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


def map_openai_error(exc: Exception, what: str, base_url: str | None) -> ModelError:
    """Turn an openai SDK exception into ModelUnavailable (transient) or ModelError (fix something)."""
    where = mask_url(base_url or "api.openai.com")
    if isinstance(exc, openai.APITimeoutError):
        return ModelUnavailable(f"{what} timed out (server {where})")
    if isinstance(exc, openai.APIConnectionError):
        return ModelUnavailable(f"{what}: cannot connect to {where}: {scrub(str(exc))}")
    if isinstance(exc, openai.APIStatusError):
        status, message = exc.status_code, scrub(_server_message(exc))
        if status in (408, 409, 429) or status >= 500:
            busy = ModelUnavailable(f"{what} answered HTTP {status}: {message}")
            busy.retry_after_s = parse_retry_after(exc.response.headers)
            return busy
        if status in (401, 403):
            return ModelError(
                f"{what} rejected the API key (HTTP {status}): {message}; "
                "check OPENAI_API_KEY (or the config's api_key) and OPENAI_BASE_URL"
            )
        if status == 404:
            return ModelError(f"{what} not found (HTTP 404): {message}; check the model name and base_url")
        return ModelError(f"{what} refused the request (HTTP {status}): {message}")
    return ModelError(f"{what} failed: {type(exc).__name__}: {scrub(str(exc))}")


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return exc.message


def _client(api_key: str | None, base_url: str | None, timeout_s: float) -> openai.OpenAI:
    if not api_key:
        raise ModelError(
            "no API key for the openai backend: set OPENAI_API_KEY or the config's api_key "
            "(a local OpenAI-compatible server accepts any non-empty key)"
        )
    remember(api_key, base_url)
    return openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0)


class _Retrying:
    """Shared retry settings: SDK errors mapped once, transient ones retried with backoff."""

    base_url: str | None
    timeout_s: float
    max_retries: int
    retry_base_delay_s: float
    retry_max_delay_s: float

    _count_retry = record_retry

    def _call(self, fn: Callable[[], R], what: str) -> R:
        def once() -> R:
            try:
                result = fn()
            except openai.OpenAIError as exc:
                raise map_openai_error(exc, what, self.base_url) from exc
            if isinstance(result, str):  # the SDK hands back a body it could not read as JSON
                raise ModelUnavailable(
                    f"{what} answered with a body that is not JSON ({scrub(result[:80])!r}...);"
                    f" is {mask_url(self.base_url or 'the base_url')} an OpenAI-compatible API, not a proxy's page?"
                )
            return result

        return retry_unavailable(
            once,
            retries=self.max_retries,
            base_delay_s=self.retry_base_delay_s,
            max_delay_s=self.retry_max_delay_s,
            on_retry=self._count_retry,
            max_wait_s=self.timeout_s,
        )


class OpenAIChat(_Retrying):
    """Chat through the OpenAI SDK; `base_url` points it at any OpenAI-compatible server."""

    def __init__(
        self,
        model: str,
        api_key: str | None,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        meter: UsageMeter | None = None,
        json_schema: bool = True,
        *,
        retry_base_delay_s: float = 0.5,
        retry_max_delay_s: float = 8.0,
    ) -> None:
        self.model, self.base_url, self.json_schema = model, base_url, json_schema
        self.name = f"openai:{model}"
        self.meter = meter or UsageMeter()
        self.max_retries, self.timeout_s = max_retries, timeout_s
        self.retry_base_delay_s, self.retry_max_delay_s = retry_base_delay_s, retry_max_delay_s
        self._client = _client(api_key, base_url, timeout_s)

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
        """A completion parsed into `schema` (JSON schema or JSON mode), one repair attempt."""
        if self.json_schema:
            fmt: dict[str, Any] = json_schema_format(schema)
            msgs = list(messages)
        else:
            fmt = {"type": "json_object"}
            msgs = with_schema_prompt(messages, schema)
        return run_structured(lambda m: self._complete(m, tag, temperature, max_tokens, fmt).text, msgs, schema)

    def _complete(
        self,
        messages: list[dict[str, Any]],
        tag: str,
        temperature: float,
        max_tokens: int | None,
        response_format: dict[str, Any] | None,
    ) -> ChatResult:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": temperature,
            "extra_headers": {WORKER_HEADER: tag},
        }
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if response_format is not None:
            kwargs["response_format"] = response_format
        what = f"openai model {self.model!r}"
        resp = self._call(lambda: self._client.chat.completions.create(**kwargs), what)
        if not resp.choices:
            raise ModelError(f"{what} returned no choices")
        usage = Usage(
            calls=1,
            prompt_tokens=resp.usage.prompt_tokens if resp.usage else 0,
            completion_tokens=resp.usage.completion_tokens if resp.usage else 0,
        )
        self.meter.record(usage)
        text = strip_think(resp.choices[0].message.content or "")
        return ChatResult(text=text, usage=usage, model=resp.model or self.model, raw=resp)


class OpenAIEmbedder(_Retrying):
    """Embeddings through the OpenAI SDK, batched, returned L2-normalised float32."""

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        api_key: str | None = None,
        base_url: str | None = None,
        dim: int | None = None,
        batch_size: int = 256,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        *,
        retry_base_delay_s: float = 0.5,
        retry_max_delay_s: float = 8.0,
    ) -> None:
        self.model, self.base_url, self.name = model, base_url, model
        self.batch_size = max(1, batch_size)
        self.max_retries = max_retries
        self.retry_base_delay_s, self.retry_max_delay_s = retry_base_delay_s, retry_max_delay_s
        self._requested_dim = dim
        self._dim = dim or _NATIVE_DIMS.get(model)
        self.timeout_s = timeout_s
        self._client = _client(api_key, base_url, timeout_s)

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
        """A (len(texts), dim) float32 array of unit vectors, in `batch_size` requests."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [self._embed_batch(list(texts[i : i + self.batch_size])) for i in range(0, len(texts), self.batch_size)]
        out = np.vstack(parts)
        if self._dim is None:
            self._dim = int(out.shape[1])
        return out

    def _embed_batch(self, batch: list[str]) -> np.ndarray:
        kwargs: dict[str, Any] = {"model": self.model, "input": batch, "encoding_format": "float"}
        if self._requested_dim:
            kwargs["dimensions"] = self._requested_dim
        resp = self._call(lambda: self._client.embeddings.create(**kwargs), f"openai embeddings {self.model!r}")
        rows = sorted(resp.data, key=lambda d: d.index)
        if len(rows) != len(batch):
            raise ModelError(f"openai embeddings {self.model!r} returned {len(rows)} vectors for {len(batch)} texts")
        return normalize(np.asarray([r.embedding for r in rows], dtype=np.float32))
