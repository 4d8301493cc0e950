"""Offline all-MiniLM-L6-v2 embeddings with tokenizers and a numpy forward pass: no torch, nothing downloaded."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from memscope.errors import ModelError
from memscope.extras import install_hint
from memscope.llm.blas_threads import limit_blas_to_one_thread
from memscope.llm.cache import normalize
from memscope.llm.model_files import find_minilm

__all__ = ["DEFAULT_LOCAL_MODEL", "MAX_TOKENS", "LocalEmbedder"]

DEFAULT_LOCAL_MODEL = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model: longer texts are truncated alike

# config.json of all-MiniLM-L6-v2 (the hash-checked weights fix the rest of the shape).
_CONFIG = {"num_attention_heads": 12, "num_hidden_layers": 6, "layer_norm_eps": 1e-12}


class LocalEmbedder:
    """all-MiniLM-L6-v2 on this machine, vectors equal to sentence-transformers'; loaded on first use."""

    name = DEFAULT_LOCAL_MODEL
    dim = 384

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = max(1, batch_size)
        self._model: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the model now rather than on the first `embed`."""
        self._load()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A (len(texts), 384) float32 array of unit vectors, mean-pooled like sentence-transformers."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        tokenizer, encoder = self._load()
        encodings = tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))  # batches of similar length
        limit_blas_to_one_thread()
        self._encode(encoder, encodings, order, out)
        return normalize(out)

    def _encode(self, encoder: Any, encodings: list[Any], order: list[int], out: np.ndarray) -> None:
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for j, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[j, :n], mask[j, :n] = encodings[i].ids, 1
            out[rows] = encoder.encode(ids, mask)

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._model is None:
                self._model = _build()
            return self._model


def _build() -> tuple[Any, Any]:
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise ModelError(f"local embeddings need the `tokenizers` package: {install_hint()}") from exc
    from memscope.llm.bert import BertEncoder, read_safetensors

    files = find_minilm()
    try:
        tokenizer = Tokenizer.from_file(str(files.tokenizer))
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.no_padding()
        encoder = BertEncoder(read_safetensors(files.weights), _CONFIG)
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot load all-MiniLM-L6-v2 from {files.weights.parent}: {exc}") from exc
    return tokenizer, encoder
