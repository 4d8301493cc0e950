"""The built-in all-MiniLM-L6-v2 embedder (tokenizers + onnxruntime or numpy, no torch); sentence-transformers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from memscope.errors import ModelError
from memscope.llm import model_files
from memscope.llm.blas_threads import _state as blas_state
from memscope.llm.local_embedding import LocalEmbedder
from memscope.llm.model_files import MODEL_SHA256, find_minilm, sha256_of
from memscope.llm.st_embedding import SentenceTransformerEmbedder

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(scope="module", params=["onnx", "numpy"])
def embedder(request: pytest.FixtureRequest) -> LocalEmbedder:
    emb = LocalEmbedder(batch_size=8, backend=request.param)
    emb.warm_up()
    return emb


@pytest.mark.unit
def test_vectors_equal_sentence_transformers_reference(embedder: LocalEmbedder) -> None:
    """Stores filled by the sentence-transformers embedder keep working: same vectors, one by one or batched."""
    sentences = json.loads((FIXTURES / "minilm_reference.json").read_text())
    reference = np.load(FIXTURES / "minilm_reference.npy")
    assert len(sentences) >= 20 and reference.shape == (len(sentences), 384)
    assert any(len(s) > 2000 for s in sentences), "the fixture must hold text beyond 256 tokens"

    batched = embedder.embed(sentences)  # batches of 8 sorted by length, written back in input order
    single = np.vstack([embedder.embed([s]) for s in sentences])

    for vectors in (batched, single):
        assert vectors.shape == reference.shape and vectors.dtype == np.float32
        cosine = (vectors * reference).sum(axis=1)
        worst = int(np.argmin(cosine))
        assert cosine[worst] >= 0.9999, f"{sentences[worst][:60]!r}: cosine {cosine[worst]:.6f}"


@pytest.mark.unit
def test_similar_sentences_are_closer_and_empty_input_is_empty(embedder: LocalEmbedder) -> None:
    vectors = embedder.embed(["The cat is sleeping on the sofa.", "A cat naps on the couch.", "Revenue grew 5%."])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2]) + 0.3
    assert embedder.embed([]).shape == (0, 384)


@pytest.mark.unit
@pytest.mark.parametrize("backend", ["auto", "numpy"])
def test_runs_without_torch_and_constructing_loads_nothing(backend: str) -> None:
    code = (
        f"import sys; from memscope.llm.local_embedding import LocalEmbedder; e = LocalEmbedder(backend={backend!r}); "
        "assert (e.name, e.dim) == ('all-MiniLM-L6-v2', 384); "
        "assert not {'tokenizers', 'onnxruntime'} & set(sys.modules), 'constructing loaded the model'; "
        "v = e.embed(['hello world']); assert v.shape == (1, 384); "
        "heavy = {'torch', 'transformers', 'sentence_transformers'} & set(sys.modules); "
        "assert not heavy, heavy; "
        f"assert e.backend == {('onnx' if backend == 'auto' else 'numpy')!r}, e.backend; "
        f"assert ('onnxruntime' in sys.modules) == {backend == 'auto'}"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.unit
def test_weights_are_the_published_files() -> None:
    files = find_minilm()
    assert sha256_of(files.weights) == MODEL_SHA256["model.safetensors"]
    assert sha256_of(files.tokenizer) == MODEL_SHA256["tokenizer.json"]


@pytest.mark.unit
def test_altered_weights_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = find_minilm(verify=False)
    folder = tmp_path / "fake_minilm_pkg" / "files"
    folder.mkdir(parents=True)
    (folder.parent / "__init__.py").write_text("raise RuntimeError('the model package must never be imported')\n")
    weights = bytearray(real.weights.read_bytes())
    weights[-1] ^= 0xFF  # one flipped bit in the last tensor
    (folder / "model.safetensors").write_bytes(bytes(weights))
    (folder / "tokenizer.json").write_bytes(real.tokenizer.read_bytes())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(model_files, "MODEL_PACKAGES", (("fake_minilm_pkg", "files"),))

    with pytest.raises(ModelError, match=r"model\.safetensors has sha256 .* expected 53aa5117"):
        find_minilm()
    with pytest.raises(ModelError, match="sha256"):
        LocalEmbedder().embed(["hello"])


@pytest.mark.unit
def test_missing_weights_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_files, "MODEL_PACKAGES", (("no_such_model_pkg", "files"),))
    with pytest.raises(ModelError, match=r"pip install memscope-ai"):
        LocalEmbedder().embed(["hello"])


@pytest.mark.unit
def test_sentence_transformers_backend_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # makes the import fail, installed or not
    with pytest.raises(ModelError, match=r"pip install 'memscope-ai\[sentence-transformers\]'") as info:
        SentenceTransformerEmbedder().embed(["hello"])
    assert "torch" in str(info.value)


@pytest.mark.unit
def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        SentenceTransformerEmbedder(model_path=tmp_path / "nowhere").embed(["hello"])


@pytest.mark.unit
def test_blas_runs_on_one_thread_once_the_local_embedder_embeds() -> None:
    from threadpoolctl import ThreadpoolController, threadpool_limits

    def blas_threads() -> set[int]:
        return {info["num_threads"] for info in ThreadpoolController().info() if info["user_api"] == "blas"}

    blas_state["done"] = False  # as in a fresh process
    with threadpool_limits(limits=2, user_api="blas"):
        assert blas_threads() == {2}
        LocalEmbedder(backend="numpy").embed(["hello"])
        assert blas_threads() == {1}
        LocalEmbedder(backend="numpy").embed(["hello again"])  # set once, not toggled per call
        assert blas_threads() == {1}
