"""Scoring in process on the exported SavedModel, with no server (``mnist-batch --local``)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np

from mnist_core.sources import Chunk
from runtime import savedmodel

from .scores import Scores


class LocalModel:
    """One exported version (a version directory, or the highest under a model root)."""

    retries = 0

    def __init__(self, model_dir: Path) -> None:
        self._model = savedmodel.load(model_dir)
        self.version = self._model.version
        self.path = self._model.info.path
        # TensorFlow already spreads one call over every core; the job overlaps reading
        # and writing with it, not a second model call.
        self._one_call = threading.Lock()

    def predict(self, images: np.ndarray) -> Scores:
        with self._one_call:
            probabilities, labels = self._model(images)
        return Scores(
            labels=labels.astype(np.int64), probabilities=probabilities, model_version=self.version
        )

    async def score(self, chunk: Chunk) -> Scores:
        return await asyncio.to_thread(self.predict, chunk.images)

    async def aclose(self) -> None:
        return None
