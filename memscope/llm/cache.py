"""An in-process LRU cache in front of any embedder, and the vector normalisation all embedders share."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from memscope.llm.base import Embedder, embed_query_focused, focus_words

__all__ = ["CachedEmbedder", "normalize"]


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"expected a 2-d array of vectors, got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32)


class CachedEmbedder:
    """Wraps an embedder; texts seen recently are served from memory, the rest embedded in one call."""

    def __init__(self, inner: Embedder, max_items: int = 10_000) -> None:
        self.inner = inner
        self.name = inner.name
        self.max_items = max(0, max_items)
        self.hits = 0
        self.misses = 0
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        """The inner embedder's dimension (the cache does not change the vector space)."""
        return self.inner.dim

    @dim.setter
    def dim(self, value: int) -> None:
        """Record a known dimension on the inner embedder."""
        self.inner.dim = value

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Like the inner embedder's `embed`, with cached rows reused and repeated texts embedded once."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in texts:
                row = self._cache.get(text)
                if row is not None:
                    self._cache.move_to_end(text)
                    found[text] = row
            missing = list(dict.fromkeys(t for t in texts if t not in found))
            self.hits += sum(1 for t in texts if t in found)
            self.misses += len(missing)
        if missing:
            fresh = self.inner.embed(missing)
            with self._lock:
                for text, row in zip(missing, fresh, strict=True):
                    found[text] = row
                    if self.max_items:
                        self._cache[text] = row.copy()
                        self._cache.move_to_end(text)
                while len(self._cache) > self.max_items:
                    self._cache.popitem(last=False)
        return np.vstack([found[t] for t in texts]).astype(np.float32, copy=False)

    def embed_query(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors. An inner embedder with a query path of its own (the local int8 graph) is called
        uncached: its vectors must never be served later as a document's. Without one, queries are
        documents and use the cache (a remote embedder is spared a round trip for a repeated query)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        query_path = getattr(self.inner, "embed_query", None)
        return query_path(texts) if callable(query_path) else self.embed(texts)

    def embed_query_focused(self, text: str, focus: Sequence[tuple[int, int]]) -> np.ndarray:
        """The inner embedder's `embed_query_focused` (see `llm.base.embed_query_focused`), uncached like queries
        of a query path; without one, a query and its focus words through `embed_query`."""
        if callable(getattr(self.inner, "embed_query_focused", None)):
            return embed_query_focused(self.inner, text, focus)
        return self.embed_query([text, focus_words(text, focus)])

    def warm_up(self) -> None:
        """Load the inner embedder's model now, when it loads one (the local embedder)."""
        warm = getattr(self.inner, "warm_up", None)
        if callable(warm):
            warm()

    def clear(self) -> None:
        """Forget every cached vector."""
        with self._lock:
            self._cache.clear()
