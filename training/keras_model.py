"""The chapter-2 network in Keras: 784 -> Dense(512, relu) -> Dense(10, softmax)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

OPTIMIZERS: dict[str, type[keras.optimizers.Optimizer]] = {
    "rmsprop": keras.optimizers.RMSprop,
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
}


@dataclass(frozen=True)
class KerasConfig:
    hidden_units: int = 512
    optimizer: str = "rmsprop"
    # RMSprop's own default, so the defaults reproduce the book's ``optimizer="rmsprop"``.
    learning_rate: float = 1e-3
    epochs: int = 5
    batch_size: int = 128
    seed: int = 0


def build(config: KerasConfig) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input(shape=(28 * 28,)),
            keras.layers.Dense(config.hidden_units, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=OPTIMIZERS[config.optimizer](learning_rate=config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def train(
    config: KerasConfig, x_train: np.ndarray, y_train: np.ndarray, *, verbose: int | str = "auto"
) -> tuple[keras.Model, dict[str, Any]]:
    """Fit on pixels already scaled to float32 [0, 1] and flattened to (N, 784).

    ``verbose`` is Keras' own: 1 draws a progress bar, 2 prints one line per epoch.
    """
    keras.utils.set_random_seed(config.seed)
    model = build(config)
    history = model.fit(
        x_train, y_train, epochs=config.epochs, batch_size=config.batch_size, verbose=verbose
    )
    return model, history.history


def forward(model: keras.Model) -> Any:
    """The function the exporter wraps: float32 (N, 784) -> probabilities."""

    def call(pixels: tf.Tensor) -> tf.Tensor:
        return model(pixels, training=False)

    return call
