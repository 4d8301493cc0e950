"""Test embedders that stand in for a remote model where what is sent matters, not the vectors."""

from __future__ import annotations

import numpy as np


class RecordingEmbedder:
    """An embedder with no query path or pooling pass of its own (as a remote one), recording each batch sent."""

    name, dim = "recording", 2

    def __init__(self) -> None:
        self.sent: list[list[str]] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.sent.append(list(texts))
        return np.eye(2, dtype=np.float32)[: len(texts)]
