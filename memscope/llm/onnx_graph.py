"""The MiniLM BERT encoder as an ONNX graph built from its safetensors weights (bert.py's math; no torch)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["GRAPH_VERSION", "OPSET", "build_graph"]

# Bump when the graph built below changes: cached files carry it in their name. 2: the last hidden states
# are an output too (a query's content words are pooled from them).
GRAPH_VERSION = 2
OPSET = 17  # LayerNormalization is an ONNX op from 17


class _Graph:
    """Nodes and initializers gathered while the encoder is written out, with unique names."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def const(self, name: str, value: np.ndarray) -> str:
        value = np.asarray(value, order="C")  # not ascontiguousarray: it makes a scalar 1-d
        self.initializers.append(self.numpy_helper.from_array(value, name))
        return name

    def op(self, kind: str, *inputs: str, **attrs: Any) -> str:
        self._count += 1
        out = f"{kind.lower()}_{self._count}"
        self.nodes.append(self.helper.make_node(kind, list(inputs), [out], **attrs))
        return out


def build_graph(tensors: dict[str, np.ndarray], config: dict[str, Any]) -> Any:
    """An onnx ModelProto: input_ids, attention_mask (int64 [batch, seq]) -> mean-pooled [batch, hidden], and the
    last hidden states [batch, seq, hidden]."""
    from onnx import TensorProto, helper

    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in tensors else ""

    def get(name: str) -> np.ndarray:
        return np.asarray(tensors[prefix + name], dtype=np.float32)

    heads, layers = int(config["num_attention_heads"]), int(config["num_hidden_layers"])
    eps = float(config.get("layer_norm_eps", 1e-12))
    g = _Graph()
    hidden = get("embeddings.word_embeddings.weight").shape[1]
    head_dim = hidden // heads

    word = g.const("word_embeddings", get("embeddings.word_embeddings.weight"))
    position = g.const("position_embeddings", get("embeddings.position_embeddings.weight"))
    token_type = g.const("token_type_0", get("embeddings.token_type_embeddings.weight")[0])
    zero, one = g.const("i0", np.array([0], np.int64)), g.const("i1", np.array([1], np.int64))
    seq = g.op("Slice", g.op("Shape", "input_ids"), one, g.const("i2", np.array([2], np.int64)))
    x = g.op("Add", g.op("Gather", word, "input_ids"), g.op("Slice", position, zero, seq, zero))
    x = _norm(g, g.op("Add", x, token_type), get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"), eps)

    mask = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    # 0 where a token is real, a large negative number over padding: added to the attention scores.
    padding = g.op("Sub", mask, g.const("f1", np.array(1.0, np.float32)))
    bias = g.op("Mul", padding, g.const("big", np.array(1e9, np.float32)))
    bias = g.op("Unsqueeze", bias, g.const("axes12", np.array([1, 2], np.int64)))
    shapes = {
        "qkv": g.const("shape_qkv", np.array([0, 0, 3, heads, head_dim], np.int64)),
        "merge": g.const("shape_merge", np.array([0, 0, hidden], np.int64)),
        "scale": g.const("scale", np.array(1.0 / np.sqrt(head_dim), np.float32)),
    }
    for i in range(layers):
        x = _layer(g, x, bias, shapes, get, f"encoder.layer.{i}.", eps)

    g.nodes.append(helper.make_node("Identity", [x], ["hidden"]))
    weights = g.op("Unsqueeze", mask, g.const("axis2", np.array([2], np.int64)))
    total = g.op("ReduceSum", g.op("Mul", x, weights), one, keepdims=0)
    count = g.op("Max", g.op("ReduceSum", mask, one, keepdims=1), g.const("tiny", np.array(1e-9, np.float32)))
    g.nodes.append(helper.make_node("Div", [total, count], ["pooled"]))

    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"]) for n in ("input_ids", "attention_mask")],  # noqa: E501
        [
            helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", hidden]),
            helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "seq", hidden]),
        ],
        g.initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


def _norm(g: _Graph, x: str, weight: np.ndarray, bias: np.ndarray, eps: float) -> str:
    n = len(g.initializers)
    return g.op("LayerNormalization", x, g.const(f"ln_w_{n}", weight), g.const(f"ln_b_{n}", bias), axis=-1, epsilon=eps)


def _dense(g: _Graph, x: str, weight: np.ndarray, bias: np.ndarray, name: str) -> str:
    """x @ weight.T + bias: a MatMul over a constant, the op dynamic quantisation turns into int8."""
    return g.op("Add", g.op("MatMul", x, g.const(f"{name}_w", weight.T)), g.const(f"{name}_b", bias))


def _layer(g: _Graph, x: str, bias: str, shapes: dict[str, str], get: Any, p: str, eps: float) -> str:
    att = p + "attention."
    qkv_w = np.concatenate([get(att + f"self.{n}.weight") for n in ("query", "key", "value")])
    qkv_b = np.concatenate([get(att + f"self.{n}.bias") for n in ("query", "key", "value")])
    qkv = g.op("Reshape", _dense(g, x, qkv_w, qkv_b, p + "qkv"), shapes["qkv"])
    qkv = g.op("Transpose", qkv, perm=[2, 0, 3, 1, 4])  # [3, batch, heads, seq, head_dim]
    q, k, v = (g.op("Gather", qkv, g.const(f"{p}pick{j}", np.array(j, np.int64)), axis=0) for j in range(3))
    scores = g.op("MatMul", q, g.op("Transpose", k, perm=[0, 1, 3, 2]))
    probs = g.op("Softmax", g.op("Add", g.op("Mul", scores, shapes["scale"]), bias), axis=-1)
    context = g.op("Reshape", g.op("Transpose", g.op("MatMul", probs, v), perm=[0, 2, 1, 3]), shapes["merge"])
    out = _dense(g, context, get(att + "output.dense.weight"), get(att + "output.dense.bias"), p + "out")
    x = _norm(g, g.op("Add", x, out), get(att + "output.LayerNorm.weight"), get(att + "output.LayerNorm.bias"), eps)
    inner = _dense(g, x, get(p + "intermediate.dense.weight"), get(p + "intermediate.dense.bias"), p + "inter")
    half = g.op("Mul", inner, g.const(f"{p}half", np.array(0.5, np.float32)))
    erf = g.op("Erf", g.op("Mul", inner, g.const(f"{p}rsqrt2", np.array(0.7071067811865476, np.float32))))
    inner = g.op("Mul", half, g.op("Add", erf, g.const(f"{p}one", np.array(1.0, np.float32))))  # exact erf GELU
    out = _dense(g, inner, get(p + "output.dense.weight"), get(p + "output.dense.bias"), p + "ffn")
    return _norm(g, g.op("Add", x, out), get(p + "output.LayerNorm.weight"), get(p + "output.LayerNorm.bias"), eps)
