"""Fixtures for the training tests: scoring an exported version the way every consumer does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


def _signature_outputs(version_dir: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    import tensorflow as tf

    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    outputs = signature(images=tf.constant(images, dtype=tf.uint8))
    return {name: value.numpy() for name, value in outputs.items()}


@pytest.fixture(scope="session")
def signature_outputs() -> Callable[[Path, np.ndarray], dict[str, np.ndarray]]:
    """Reload a version from disk and run ``serving_default`` on uint8 images."""
    return _signature_outputs


@pytest.fixture(scope="session")
def reloaded_accuracy(
    mnist_test_set: tuple[np.ndarray, np.ndarray],
) -> Callable[[Path], float]:
    """Test accuracy of a version, measured by its reloaded signature on the 10,000 images."""
    x_test, y_test = mnist_test_set

    def accuracy(version_dir: Path) -> float:
        labels = _signature_outputs(version_dir, x_test)["label"]
        assert labels.shape == y_test.shape
        return float((labels == y_test).mean())

    return accuracy
