"""The MiniLM ONNX graphs (fp32, and int8 for queries) built once and kept in a cache folder on disk.

Files are named by the weights' sha256 and the graph version, written to a temporary file and renamed
(concurrent processes each write a whole file; the last rename wins), and built in memory when the
folder cannot be written (the quantiser alone works in a temporary folder of the system's).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from memscope.llm.onnx_graph import GRAPH_VERSION
from memscope.llm.ort_import import import_onnxruntime

__all__ = ["Precision", "build_count", "cache_dir", "graph_bytes"]

log = logging.getLogger(__name__)

Precision = Literal["fp32", "int8"]

_builds = {"fp32": 0, "int8": 0}
_lock = threading.Lock()


def cache_dir() -> Path:
    """`$MEMSCOPE_CACHE_DIR`, else `$XDG_CACHE_HOME/memscope`, else `~/.cache/memscope`."""
    if os.environ.get("MEMSCOPE_CACHE_DIR"):
        return Path(os.environ["MEMSCOPE_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "memscope"


def build_count(precision: Precision) -> int:
    """How many times this process built the graph of `precision` (a cache hit builds nothing)."""
    return _builds[precision]


def _file_name(weights_sha256: str, precision: Precision) -> str:
    name = f"all-MiniLM-L6-v2-{weights_sha256[:16]}-g{GRAPH_VERSION}-{precision}"
    if precision == "int8":  # the quantiser's output may change between onnxruntime releases
        name += f"-ort{import_onnxruntime().__version__}"
    return name + ".onnx"


def graph_bytes(precision: Precision, weights_sha256: str, build_fp32: Callable[[], Any]) -> bytes:
    """The serialized graph of `precision`, from the cache folder, else built (and cached when possible).

    `build_fp32` returns the fp32 onnx ModelProto; the int8 graph is its dynamic quantisation.
    """
    with _lock:  # threads of one process build once; other processes are covered by the rename
        path = cache_dir() / _file_name(weights_sha256, precision)
        try:
            return path.read_bytes()
        except OSError:
            pass
        data = _build(precision, weights_sha256, build_fp32)
        try:
            _write_atomic(path, data)
        except OSError as exc:
            log.warning("cannot cache the %s embedding graph in %s (%s); built in memory", precision, path.parent, exc)
        else:
            _remove_older_graphs(path.parent, weights_sha256)
        return data


def _remove_older_graphs(folder: Path, weights_sha256: str) -> None:
    """Delete this model's cached graphs of older graph versions (about 110 MB each), once a newer one is cached.

    Only older ones: an older memscope still installed elsewhere rebuilds its own once, and never deletes ours.
    """
    prefix = f"all-MiniLM-L6-v2-{weights_sha256[:16]}-g"
    for old in folder.glob(prefix + "*.onnx"):
        version = old.name[len(prefix) :].split("-", 1)[0]
        if version.isdigit() and int(version) < GRAPH_VERSION:
            old.unlink(missing_ok=True)


def _build(precision: Precision, weights_sha256: str, build_fp32: Callable[[], Any]) -> bytes:
    _builds[precision] += 1
    if precision == "fp32":
        return bytes(build_fp32().SerializeToString())
    import_onnxruntime()
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="memscope-onnx-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(_fp32_bytes(weights_sha256, build_fp32))
        # Per-channel int8 weights of the dense layers only: cosine to fp32 ~0.99 on real sentences, where
        # per-tensor int8 gave ~0.96; the word-embedding table stays fp32.
        root = logging.getLogger()
        root.addFilter(_no_preprocess_advice)  # onnxruntime's root-logger advice for image models: not ours
        try:
            quantize_dynamic(
                source,
                target,
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul"],
                # shape inference cannot type an onnxruntime operator's output (MultiHeadAttention's): float
                extra_options={"DefaultTensorType": TensorProto.FLOAT},
            )
        finally:
            root.removeFilter(_no_preprocess_advice)
        return target.read_bytes()


def _no_preprocess_advice(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Please consider to run pre-processing before quantization")


def _fp32_bytes(weights_sha256: str, build_fp32: Callable[[], Any]) -> bytes:
    path = cache_dir() / _file_name(weights_sha256, "fp32")
    try:
        return path.read_bytes()
    except OSError:
        _builds["fp32"] += 1
        return bytes(build_fp32().SerializeToString())


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the cache from the user's other accounts' processes
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
