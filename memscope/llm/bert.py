"""A BERT encoder forward pass in plain numpy over safetensors weights, with mean pooling (no torch)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BertEncoder", "read_safetensors"]

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a .safetensors file (the format is an 8-byte header length, a JSON header, raw data)."""
    data = np.memmap(path, dtype=np.uint8, mode="r")  # pages load as touched: most word vectors never are
    (header_len,) = struct.unpack("<Q", data[:8].tobytes())
    header: dict[str, Any] = json.loads(data[8 : 8 + header_len].tobytes())
    base = 8 + header_len
    tensors: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
        tensors[name] = data[base + start : base + end].view(dtype).reshape(info["shape"])
    return tensors


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to 1.5e-7 (Abramowitz and Stegun 7.1.26): BERT's GELU is the exact erf form, numpy has no erf."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return x * 0.5 * (1.0 + _erf(x * np.float32(0.7071067811865476)))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    var = (centered * centered).mean(axis=-1, keepdims=True)
    return centered / np.sqrt(var + eps) * weight + bias


class BertEncoder:
    """BERT (absolute positions, erf GELU) whose `encode` returns mean-pooled token states."""

    def __init__(self, tensors: dict[str, np.ndarray], config: dict[str, Any]) -> None:
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in tensors else ""

        def get(name: str) -> np.ndarray:
            return np.ascontiguousarray(tensors[prefix + name], dtype=np.float32)

        self.word = get("embeddings.word_embeddings.weight")
        self.position = get("embeddings.position_embeddings.weight")
        self.token_type = get("embeddings.token_type_embeddings.weight")
        self.emb_norm = (get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"))
        self.layers = [self._layer(get, i) for i in range(int(config["num_hidden_layers"]))]

    @staticmethod
    def _layer(get: Any, i: int) -> dict[str, np.ndarray]:
        p = f"encoder.layer.{i}."
        att = p + "attention."
        # Weights transposed once so every step is `x @ w + b`; Q, K and V fused into one matmul.
        return {
            "qkv_w": np.ascontiguousarray(
                np.concatenate([get(att + f"self.{n}.weight") for n in ("query", "key", "value")]).T
            ),
            "qkv_b": np.concatenate([get(att + f"self.{n}.bias") for n in ("query", "key", "value")]),
            "out_w": np.ascontiguousarray(get(att + "output.dense.weight").T),
            "out_b": get(att + "output.dense.bias"),
            "norm1_w": get(att + "output.LayerNorm.weight"),
            "norm1_b": get(att + "output.LayerNorm.bias"),
            "inter_w": np.ascontiguousarray(get(p + "intermediate.dense.weight").T),
            "inter_b": get(p + "intermediate.dense.bias"),
            "ffn_w": np.ascontiguousarray(get(p + "output.dense.weight").T),
            "ffn_b": get(p + "output.dense.bias"),
            "norm2_w": get(p + "output.LayerNorm.weight"),
            "norm2_b": get(p + "output.LayerNorm.bias"),
        }

    @property
    def dim(self) -> int:
        """Hidden size, which is the pooled vector's dimension."""
        return int(self.word.shape[1])

    def encode(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean of the last hidden states over real tokens: (batch, seq) int ids and 0/1 mask -> (batch, dim)."""
        x = self.hidden(ids, mask)
        weights = mask[:, :, None].astype(np.float32)
        return (x * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)

    def hidden(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The last hidden states: (batch, seq) int ids and 0/1 mask -> (batch, seq, dim)."""
        batch, seq = ids.shape
        x = self.word[ids] + self.position[:seq] + self.token_type[0]
        x = _layer_norm(x, *self.emb_norm, self.eps).reshape(batch * seq, -1)  # dense layers: one 2-d GEMM each
        bias = np.where(mask[:, None, None, :] > 0, np.float32(0.0), np.finfo(np.float32).min).astype(np.float32)
        for layer in self.layers:
            x = self._block(x, layer, bias, batch, seq)
        return x.reshape(batch, seq, -1)

    def _block(self, x: np.ndarray, w: dict[str, np.ndarray], bias: np.ndarray, batch: int, seq: int) -> np.ndarray:
        hidden = x.shape[-1]
        head_dim = hidden // self.heads
        qkv = (x @ w["qkv_w"] + w["qkv_b"]).reshape(batch, seq, 3, self.heads, head_dim)
        q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
        scores = (q @ k.transpose(0, 1, 3, 2)) * np.float32(1.0 / np.sqrt(head_dim)) + bias
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs = scores / scores.sum(axis=-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch * seq, hidden)
        x = _layer_norm(x + context @ w["out_w"] + w["out_b"], w["norm1_w"], w["norm1_b"], self.eps)
        inner = _gelu(x @ w["inter_w"] + w["inter_b"])
        return _layer_norm(x + inner @ w["ffn_w"] + w["ffn_b"], w["norm2_w"], w["norm2_b"], self.eps)
