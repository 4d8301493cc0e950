"""The offline sentence-transformers embedder with the packaged all-MiniLM-L6-v2 model."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from memscope.errors import ModelError
from memscope.llm.local_embedding import LocalEmbedder


@pytest.mark.slow
def test_real_model_puts_similar_sentences_closer() -> None:
    emb = LocalEmbedder()
    assert (emb.name, emb.dim) == ("all-MiniLM-L6-v2", 384)

    vectors = emb.embed(
        ["The cat is sleeping on the sofa.", "A cat naps on the couch.", "Quarterly revenue grew by five percent.", ""]
    )

    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, rtol=1e-5)
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > unrelated + 0.3
    assert emb.embed([]).shape == (0, 384)


@pytest.mark.unit
def test_constructing_does_not_load_the_model() -> None:
    code = (
        "import sys; from memscope.llm.local_embedding import LocalEmbedder; e = LocalEmbedder(); "
        "assert e.dim == 384 and e.name == 'all-MiniLM-L6-v2'; "
        "assert 'sentence_transformers' not in sys.modules and 'torch' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.unit
def test_missing_sentence_transformers_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # makes the import fail
    with pytest.raises(ModelError, match=r"pip install 'memscope\[local\]'") as info:
        LocalEmbedder().embed(["hello"])
    assert "torch" in str(info.value)


@pytest.mark.unit
def test_missing_model_folder_is_a_clear_error(tmp_path: object) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        LocalEmbedder(model_path=f"{tmp_path}/nowhere").embed(["hello"])
