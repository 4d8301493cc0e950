"""Protocols of the model backends (chat, embedding, rerank) and per-call usage accounting."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
from pydantic import BaseModel

__all__ = ["ChatModel", "ChatResult", "Embedder", "RerankResult", "Reranker", "Usage", "UsageMeter", "embed_query",
           "embed_query_focused", "focus_words"]

T = TypeVar("T", bound=BaseModel)


@dataclass
class Usage:
    """What one or more model calls cost."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0  # attempts that failed transiently (429, 5xx, timeout) and were tried again

    def add(self, other: Usage) -> None:
        """Accumulate another usage into this one."""
        self.retries += other.retries
        self.calls += other.calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens


class UsageMeter:
    """Thread-safe usage counter; the engine reads it before and after each step."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self.total = Usage()

    def record(self, usage: Usage) -> None:
        """Add one call's usage to the total and to the calling thread's running count."""
        with self._lock:
            self.total.add(usage)
        current: Usage | None = getattr(self._local, "current", None)
        if current is not None:
            current.add(usage)

    def start(self) -> Usage:
        """Begin counting this thread's calls; returns the Usage being filled."""
        self._local.current = Usage()
        return self._local.current

    def stop(self) -> Usage:
        """Stop counting this thread's calls and return what they cost."""
        current: Usage = getattr(self._local, "current", None) or Usage()
        self._local.current = None
        return current


@dataclass
class ChatResult:
    """The text of a chat answer and what it cost."""

    text: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    raw: Any = None


@runtime_checkable
class ChatModel(Protocol):
    """A chat LLM. `structured` returns a validated pydantic object or raises ModelOutputError."""

    name: str
    meter: UsageMeter

    def chat(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        tag: str = "",
        temperature: float = 0.0,
        max_tokens: int | None = None,
    ) -> ChatResult:
        """One chat completion. `tag` names the calling worker (sent as a request header)."""
        ...

    def structured(
        self,
        messages: Sequence[dict[str, Any]],
        schema: type[T],
        *,
        tag: str = "",
        temperature: float = 0.0,
        max_tokens: int | None = None,
    ) -> T:
        """A chat completion parsed into `schema`, with one repair attempt on invalid output."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A (len(texts), dim) float32 array, rows L2-normalised."""
        ...


def embed_query(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """Vectors of search queries: the embedder's `embed_query` when it has one (a faster query model), else `embed`."""
    method = getattr(embedder, "embed_query", None)
    return method(texts) if callable(method) else embedder.embed(texts)


def embed_query_focused(embedder: Embedder, text: str, focus: Sequence[tuple[int, int]]) -> np.ndarray:
    """The query's vector and its focus words' (character spans of `text`, e.g. its content words), as rows.

    One forward pass when the embedder pools token states itself (the local model's `embed_query_focused`);
    else a batch of the text and the focus words joined by spaces (one round trip to a remote embedder).
    """
    method = getattr(embedder, "embed_query_focused", None)
    if callable(method):
        return np.asarray(method(text, focus))
    return embed_query(embedder, [text, focus_words(text, focus)])


def focus_words(text: str, focus: Sequence[tuple[int, int]]) -> str:
    """The words of `text` in the `focus` character spans, joined by spaces."""
    return " ".join(text[a:b] for a, b in focus)


@dataclass
class RerankResult:
    """One reranked document: its index in the input and its relevance score."""

    index: int
    score: float


@runtime_checkable
class Reranker(Protocol):
    """Reorders documents by relevance to a query."""

    name: str

    def rerank(self, query: str, documents: Sequence[str], top_n: int | None = None) -> list[RerankResult]:
        """Documents' indices with scores, best first."""
        ...
