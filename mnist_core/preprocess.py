"""Pixel preprocessing for training: the same scaling the SavedModel applies inside its graph."""

from __future__ import annotations

import numpy as np


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 784) in [0, 1], as the chapter-2 network expects."""
    return images.reshape(len(images), 28 * 28).astype(np.float32) / 255.0
