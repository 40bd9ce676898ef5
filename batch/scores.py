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
    """float32 (n, 10), the model's own values, whoever scored them"""
    model_version: int


class Scorer(Protocol):
    """Scores chunks; ``retries`` counts requests sent again after a transient failure."""

    retries: int

    async def score(self, chunk: Chunk) -> Scores: ...

    async def aclose(self) -> None: ...
