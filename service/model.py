"""The served SavedModel: finding it, loading it, calling it.

This is the only module of the service that imports TensorFlow, and only inside
:class:`LoadedModel`, so the command line can check for a model without paying for it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mnist_core.modeldir import (
    INPUT_NAME,
    METADATA_FILE,
    SIGNATURE,
    SIGNATURE_NAME,
    latest_version_dir,
    read_metadata,
)

MODEL_NAME = "mnist"
TRAIN_HINT = "train one with `make train` or `mnist-train --model-dir {root}`"


class ModelUnavailable(Exception):
    """There is no usable model to serve; the message says what is missing and what to do."""


@dataclass(frozen=True)
class ModelInfo:
    """What the service tells clients about the model it serves."""

    path: Path
    version: int
    implementation: str
    test_accuracy: float | None
    metadata: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        return {
            "name": MODEL_NAME,
            "version": self.version,
            "implementation": self.implementation,
            "test_accuracy": self.test_accuracy,
            "hyperparameters": self.metadata.get("hyperparameters", {}),
            "signature": SIGNATURE,
        }


def find_model(model_root: str | Path) -> ModelInfo:
    """The highest version under ``model_root``, checked for its files without TensorFlow."""
    root = Path(model_root)
    version_dir = latest_version_dir(root)
    if version_dir is None:
        raise ModelUnavailable(
            f"no model found under {root}/ (expected {root}/<version>/saved_model.pb); "
            + TRAIN_HINT.format(root=root)
        )
    for required in ("saved_model.pb", "variables", METADATA_FILE):
        if not (version_dir / required).exists():
            raise ModelUnavailable(
                f"model {version_dir} is incomplete: {required} is missing; "
                + TRAIN_HINT.format(root=root)
            )
    try:
        metadata = read_metadata(version_dir)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(
            f"model {version_dir} has an unreadable {METADATA_FILE} ({exc}); "
            + TRAIN_HINT.format(root=root)
        ) from None
    accuracy = metadata.get("test_accuracy")
    return ModelInfo(
        path=version_dir,
        version=int(version_dir.name),
        implementation=str(metadata.get("implementation", "unknown")),
        test_accuracy=float(accuracy) if isinstance(accuracy, int | float) else None,
        metadata=metadata,
    )


KERAS_EAGER_IMPORT = "keras.src.optimizers"


def _import_tensorflow() -> Any:
    """``import tensorflow``, without the Keras import it does on the side.

    TensorFlow's ``__init__`` imports all of Keras (and through it matplotlib) so that
    SavedModels written by ``keras.Model.save`` find their classes registered; it skips
    that when the import fails. Our SavedModel is a plain ``tf.Module`` signature and
    needs none of it: leaving it out saves about 1 s of start-up and 50 MB per worker,
    with identical outputs. The block is lifted again right after, so a later
    ``import keras`` in the same process works as usual.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    blocked = KERAS_EAGER_IMPORT not in sys.modules
    if blocked:
        sys.modules[KERAS_EAGER_IMPORT] = None  # type: ignore[assignment]
    try:
        import tensorflow as tf
    finally:
        if blocked and sys.modules.get(KERAS_EAGER_IMPORT, False) is None:
            del sys.modules[KERAS_EAGER_IMPORT]
    return tf


class LoadedModel:
    """The ``serving_default`` signature of one SavedModel, callable on uint8 batches."""

    def __init__(self, info: ModelInfo, *, threads: int) -> None:
        tf = _import_tensorflow()

        # Must happen before TensorFlow creates its thread pools, i.e. before any op runs.
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        try:
            loaded = tf.saved_model.load(str(info.path))
            self._signature = loaded.signatures[SIGNATURE_NAME]
        except Exception as exc:
            raise ModelUnavailable(
                f"model {info.path} could not be loaded ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); "
                + TRAIN_HINT.format(root=info.path.parent)
            ) from exc
        self._loaded = loaded  # keeps the signature's variables alive
        self._tf = tf
        self.info = info

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``uint8 [N, 28, 28]`` -> (probabilities float32 ``[N, 10]``, labels int64 ``[N]``)."""
        outputs = self._signature(**{INPUT_NAME: self._tf.constant(images, dtype=self._tf.uint8)})
        return outputs["probabilities"].numpy(), outputs["label"].numpy()

    def warm_up(self, batch_sizes: tuple[int, ...] = (1, 8, 64)) -> None:
        """Run the graph once per size so the first client does not pay for allocations."""
        for size in batch_sizes:
            probabilities, _ = self(np.zeros((size, 28, 28), dtype=np.uint8))
            if probabilities.shape != (size, 10):
                raise ModelUnavailable(
                    f"model {self.info.path} returned probabilities of shape "
                    f"{probabilities.shape} for {size} images; expected ({size}, 10)"
                )
