"""What scoring a chunk returns, whoever scores it (the service or the local model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mnist_core.sources import Chunk


@dataclass(frozen=True)
class Scores:
    """Predictions for one chunk, in its order."""

    labels: np.ndarray
    """int64 (n,)"""
    probabilities: np.ndarray
    """float (n, 10)"""
    model_version: int


class Scorer(Protocol):
    """Scores chunks; ``retries`` counts requests sent again after a transient failure."""

    retries: int

    async def score(self, chunk: Chunk) -> Scores: ...

    async def aclose(self) -> None: ...


def pad_single(images: np.ndarray) -> np.ndarray:
    """A one-image batch doubled.

    A model call on a single image takes TensorFlow's matrix-vector kernel, whose
    float results differ from the matrix-matrix kernel's in the last bits. Never
    calling the model with one image keeps every row's bytes independent of how the
    input happened to be chunked (and so of where a resumed job restarted).
    """
    return np.concatenate([images, images]) if len(images) == 1 else images
