"""Scoring in process on the exported SavedModel, with no server (``mnist-batch --local``)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from mnist_core.errors import MnistError
from mnist_core.modeldir import INPUT_NAME, SIGNATURE_NAME, latest_version_dir, read_metadata
from mnist_core.sources import Chunk

from .scores import Scores, pad_single


class ModelNotFound(MnistError):
    """``--local`` points at no exported model."""


def resolve_version_dir(model_dir: Path) -> Path:
    """A version directory as given, or the highest version under a model root."""
    if (model_dir / "saved_model.pb").is_file():
        return model_dir
    version_dir = latest_version_dir(model_dir)
    if version_dir is None or not (version_dir / "saved_model.pb").is_file():
        raise ModelNotFound(
            f"no SavedModel in {model_dir} (expected {model_dir}/<version>/saved_model.pb)"
        )
    return version_dir


class LocalModel:
    """The ``serving_default`` signature of one exported version, called in batches."""

    retries = 0

    def __init__(self, model_dir: Path) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        self.path = resolve_version_dir(model_dir)
        try:
            metadata = read_metadata(self.path)
            self.version = int(metadata.get("version", self.path.name))
        except (OSError, ValueError) as exc:
            raise ModelNotFound(f"{self.path}: unreadable metadata.json ({exc})") from None
        try:
            self._loaded: Any = tf.saved_model.load(str(self.path))
            self._signature = self._loaded.signatures[SIGNATURE_NAME]
        except Exception as exc:  # TensorFlow raises many types for a damaged SavedModel
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            raise ModelNotFound(
                f"{self.path}: not a loadable SavedModel ({type(exc).__name__}: {first_line})"
            ) from None
        self._tf = tf
        # TensorFlow already spreads one call over every core; the job overlaps reading
        # and writing with it, not a second model call.
        self._one_call = threading.Lock()

    def predict(self, images: np.ndarray) -> Scores:
        n = len(images)
        outputs = self._signature(
            **{INPUT_NAME: self._tf.constant(pad_single(images), dtype=self._tf.uint8)}
        )
        return Scores(
            labels=outputs["label"].numpy()[:n].astype(np.int64),
            probabilities=outputs["probabilities"].numpy()[:n],
            model_version=self.version,
        )

    def _predict_alone(self, images: np.ndarray) -> Scores:
        with self._one_call:
            return self.predict(images)

    async def score(self, chunk: Chunk) -> Scores:
        return await asyncio.to_thread(self._predict_alone, chunk.images)

    async def aclose(self) -> None:
        return None
