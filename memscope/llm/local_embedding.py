"""Offline all-MiniLM-L6-v2 embeddings: tokenizers, then onnxruntime (int8 for queries) or numpy. No torch."""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from memscope.errors import ModelError
from memscope.extras import install_hint
from memscope.llm.blas_threads import limit_blas_to_one_thread
from memscope.llm.cache import normalize
from memscope.llm.model_files import MODEL_SHA256, MiniLMFiles, find_minilm

__all__ = ["DEFAULT_LOCAL_MODEL", "MAX_TOKENS", "LocalBackend", "LocalEmbedder", "QueryPrecision", "resolve_backend"]

log = logging.getLogger(__name__)

DEFAULT_LOCAL_MODEL = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model: longer texts are truncated alike

LocalBackend = Literal["auto", "onnx", "numpy"]
QueryPrecision = Literal["int8", "fp32"]

# config.json of all-MiniLM-L6-v2 (the hash-checked weights fix the rest of the shape).
_CONFIG = {"num_attention_heads": 12, "num_hidden_layers": 6, "layer_norm_eps": 1e-12}


def resolve_backend(backend: LocalBackend) -> Literal["onnx", "numpy"]:
    """`auto` is onnx when onnxruntime and onnx are installed, else numpy; an explicit onnx must be installed."""
    if backend == "numpy":
        return "numpy"
    missing = [name for name in ("onnxruntime", "onnx") if importlib.util.find_spec(name) is None]
    if not missing:
        return "onnx"
    if backend == "onnx":
        raise ModelError(
            f"embedding.local_backend: onnx needs {' and '.join(missing)}, which memscope installs: "
            f"{install_hint()}, or set local_backend: numpy"
        )
    return "numpy"


class LocalEmbedder:
    """all-MiniLM-L6-v2 on this machine, vectors equal to sentence-transformers'; loaded on first use.

    `embed` (documents) runs the fp32 model; `embed_query` runs the int8 one on the onnx backend
    (`query_precision`), which is ~2-3x faster for one query at cosine ~0.99 to the fp32 vector.
    """

    name = DEFAULT_LOCAL_MODEL
    dim = 384

    def __init__(
        self,
        batch_size: int = 64,
        backend: LocalBackend = "auto",
        threads: int = 1,
        query_precision: QueryPrecision = "int8",
    ) -> None:
        self.batch_size = max(1, batch_size)
        self.backend = resolve_backend(backend)
        self._auto = backend == "auto"
        self.threads = max(1, threads)
        self.query_precision = query_precision
        self._files: MiniLMFiles | None = None
        self._tokenizer: Any = None
        self._encoders: dict[str, Any] = {}
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the model (and build or open its cached graphs) now rather than on the first call."""
        self._encoder("document")
        self._encoder("query")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A (len(texts), 384) float32 array of unit vectors, mean-pooled like sentence-transformers."""
        return self._embed(texts, "document")

    def embed_query(self, texts: Sequence[str]) -> np.ndarray:
        """Like `embed`, through the query model (int8 on the onnx backend unless query_precision is fp32)."""
        return self._embed(texts, "query")

    def embed_query_focused(self, text: str, focus: Sequence[tuple[int, int]]) -> np.ndarray:
        """The query's vector and, in a second row, the mean of its tokens inside the `focus` character spans
        (its content words): one forward pass where two texts cost two. One row when no token is inside."""
        encoder = self._encoder("query")
        encoding = self._tokenizer.encode(text)
        ids = np.asarray([encoding.ids], dtype=np.int64)
        states = encoder.hidden(ids, np.ones_like(ids))[0]
        words = encoding.word_ids  # a new list on every access: read once
        inside = [
            i for i, (start, end) in enumerate(encoding.offsets)
            if words[i] is not None and end > start and any(a <= start and end <= b for a, b in focus)
        ]  # fmt: skip
        rows = [states.mean(axis=0), states[inside].mean(axis=0)] if inside else [states.mean(axis=0)]
        return normalize(np.stack(rows))

    def _embed(self, texts: Sequence[str], kind: str) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encoder = self._encoder(kind)
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))  # batches of similar length
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

    def _encoder(self, kind: str) -> Any:
        """The encoder of `kind`'s precision, built on first use (one lock: the first call may take seconds)."""
        precision = self.query_precision if kind == "query" and self.backend == "onnx" else "fp32"
        encoder = self._encoders.get(precision)
        if encoder is not None:
            return encoder
        with self._lock:
            if self._files is None:
                self._files = find_minilm()  # checks the sha256 once: the published hash names the graphs
                self._tokenizer = _tokenizer(self._files)
            if precision not in self._encoders:
                encoder = self._build(precision)
                if self.backend == "numpy":  # also after a fallback from onnx: one numpy encoder serves both
                    precision = "fp32"
                self._encoders[precision] = encoder
            return self._encoders[precision]

    def _build(self, precision: QueryPrecision) -> Any:
        assert self._files is not None
        if self.backend == "onnx":
            try:
                return _onnx_encoder(self._files, precision, self.threads)
            except ModelError:
                raise
            except Exception as exc:  # auto falls back to numpy; an explicit onnx reports the failure
                if not self._auto:
                    raise ModelError(f"cannot run all-MiniLM-L6-v2 on onnxruntime: {exc}") from exc
                log.warning("onnxruntime failed (%s); the local embedder falls back to numpy", exc)
                self.backend = "numpy"
                self._encoders.clear()
        limit_blas_to_one_thread()
        return _numpy_encoder(self._files)


class OnnxEncoder:
    """An onnxruntime session of the MiniLM graph, with BertEncoder's `encode(ids, mask)`."""

    def __init__(self, model: bytes, threads: int, *, quantised: bool = False) -> None:
        from memscope.llm.ort_import import import_onnxruntime

        ort = import_onnxruntime()

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # In the int8 graph onnxruntime's fused SkipLayerNormalization is slower than the Add and
        # LayerNormalization it replaces: a 16-token query 2.58 -> 2.21 ms without it, its vectors as near
        # the fp32 graph's (mean cosine 0.9948 on LoCoMo's 760 questions either way). fp32: no difference.
        disabled = ["SkipLayerNormFusion"] if quantised else []
        self.session = ort.InferenceSession(
            model, options, providers=["CPUExecutionProvider"], disabled_optimizers=disabled
        )

    def encode(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean-pooled last hidden states, (batch, 384) float32."""
        return np.asarray(self.session.run(["pooled"], {"input_ids": ids, "attention_mask": mask})[0])

    def hidden(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The last hidden states, (batch, seq, 384) float32."""
        return np.asarray(self.session.run(["hidden"], {"input_ids": ids, "attention_mask": mask})[0])


def _tokenizer(files: MiniLMFiles) -> Any:
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise ModelError(f"local embeddings need the `tokenizers` package: {install_hint()}") from exc
    try:
        tokenizer = Tokenizer.from_file(str(files.tokenizer))
    except Exception as exc:  # tokenizers raises its own Exception for a malformed file
        raise ModelError(f"cannot load the all-MiniLM-L6-v2 tokenizer from {files.tokenizer}: {exc}") from exc
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.no_padding()
    return tokenizer


def _weights(files: MiniLMFiles) -> dict[str, np.ndarray]:
    from memscope.llm.bert import read_safetensors

    try:
        return read_safetensors(files.weights)
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot load all-MiniLM-L6-v2 from {files.weights.parent}: {exc}") from exc


def _numpy_encoder(files: MiniLMFiles) -> Any:
    from memscope.llm.bert import BertEncoder

    try:
        return BertEncoder(_weights(files), _CONFIG)
    except (KeyError, ValueError) as exc:
        raise ModelError(f"cannot load all-MiniLM-L6-v2: {exc}") from exc


def _onnx_encoder(files: MiniLMFiles, precision: QueryPrecision, threads: int) -> OnnxEncoder:
    """`files` were checked by find_minilm, so the published sha256 names the cached graphs."""
    from memscope.llm.onnx_cache import graph_bytes
    from memscope.llm.onnx_graph import build_graph

    model = graph_bytes(precision, MODEL_SHA256["model.safetensors"], lambda: build_graph(_weights(files), _CONFIG))
    return OnnxEncoder(model, threads, quantised=precision == "int8")
