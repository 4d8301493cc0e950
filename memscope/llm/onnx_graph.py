"""The MiniLM BERT encoder as an ONNX graph built from its safetensors weights (bert.py's math; no torch)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["GRAPH_VERSION", "OPSET", "build_graph"]

# Bump when the graph built below changes: cached files carry it in their name. 2: the last hidden states
# are an output too (a query's content words are pooled from them). 3: attention as onnxruntime's
# MultiHeadAttention and GELU in the form its optimizer fuses (73 kernels a pass instead of 168).
GRAPH_VERSION = 3
OPSET = 17  # LayerNormalization is an ONNX op from 17
CONTRIB = "com.microsoft"  # onnxruntime's own operators (MultiHeadAttention): the graph is only run by it


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

    word = g.const("word_embeddings", get("embeddings.word_embeddings.weight"))
    position = g.const("position_embeddings", get("embeddings.position_embeddings.weight"))
    token_type = g.const("token_type_0", get("embeddings.token_type_embeddings.weight")[0])
    zero, one = g.const("i0", np.array([0], np.int64)), g.const("i1", np.array([1], np.int64))
    seq = g.op("Slice", g.op("Shape", "input_ids"), one, g.const("i2", np.array([2], np.int64)))
    x = g.op("Add", g.op("Gather", word, "input_ids"), g.op("Slice", position, zero, seq, zero))
    x = _norm(g, g.op("Add", x, token_type), get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"), eps)

    mask = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    padding = g.op("Cast", "attention_mask", to=TensorProto.INT32)  # 1 for a real token: the keys attended to
    for i in range(layers):
        x = _layer(g, x, padding, heads, get, f"encoder.layer.{i}.", eps)

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
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid(CONTRIB, 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def _norm(g: _Graph, x: str, weight: np.ndarray, bias: np.ndarray, eps: float) -> str:
    n = len(g.initializers)
    return g.op("LayerNormalization", x, g.const(f"ln_w_{n}", weight), g.const(f"ln_b_{n}", bias), axis=-1, epsilon=eps)


def _dense(g: _Graph, x: str, weight: np.ndarray, bias: np.ndarray, name: str) -> str:
    """x @ weight.T + bias: a MatMul over a constant, the op dynamic quantisation turns into int8."""
    return g.op("Add", g.op("MatMul", x, g.const(f"{name}_w", weight.T)), g.const(f"{name}_b", bias))


def _layer(g: _Graph, x: str, padding: str, heads: int, get: Any, p: str, eps: float) -> str:
    att = p + "attention."
    qkv_w = np.concatenate([get(att + f"self.{n}.weight") for n in ("query", "key", "value")])
    qkv_b = np.concatenate([get(att + f"self.{n}.bias") for n in ("query", "key", "value")])
    qkv = g.op("MatMul", x, g.const(f"{p}qkv_w", qkv_w.T))  # int8 once quantised; the bias is added below
    split = [f"{p}q", f"{p}k", f"{p}v"]
    width = g.const(f"{p}qkv_split", np.array([qkv_w.shape[0] // 3] * 3, np.int64))
    g.nodes.append(g.helper.make_node("Split", [qkv, width], split, axis=-1))
    # softmax(q k^T / sqrt(head_dim)) v per head, padding keys left out: one kernel in place of eleven
    context = g.op("MultiHeadAttention", *split, g.const(f"{p}qkv_b", qkv_b), padding, num_heads=heads, domain=CONTRIB)
    out = _dense(g, context, get(att + "output.dense.weight"), get(att + "output.dense.bias"), p + "out")
    x = _norm(g, g.op("Add", x, out), get(att + "output.LayerNorm.weight"), get(att + "output.LayerNorm.bias"), eps)
    inner = _dense(g, x, get(p + "intermediate.dense.weight"), get(p + "intermediate.dense.bias"), p + "inter")
    # exact erf GELU, x * (1 + erf(x / sqrt 2)) * 0.5: onnxruntime fuses this form (not x * 0.7071) into one Gelu
    erf = g.op("Erf", g.op("Div", inner, g.const(f"{p}sqrt2", np.array(np.sqrt(2.0), np.float32))))
    inner = g.op("Mul", inner, g.op("Add", erf, g.const(f"{p}one", np.array(1.0, np.float32))))
    inner = g.op("Mul", inner, g.const(f"{p}half", np.array(0.5, np.float32)))
    out = _dense(g, inner, get(p + "output.dense.weight"), get(p + "output.dense.bias"), p + "ffn")
    return _norm(g, g.op("Add", x, out), get(p + "output.LayerNorm.weight"), get(p + "output.LayerNorm.bias"), eps)
