"""The chapter-2 network rebuilt from scratch: plain variables, a GradientTape and SGD.

Follows the second half of "Deep Learning with Python" ch. 2: ``NaiveDense`` layers
(W uniform in [0, 0.1), b zeros), a ``NaiveSequential`` container, a ``BatchGenerator``
that walks the data in order, and a training step that applies ``w -= lr * grad``.
The step is a ``tf.function`` so an epoch runs as one graph call per batch instead of
eager op-by-op execution.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class NaiveConfig:
    hidden_units: int = 512
    learning_rate: float = 1e-3
    epochs: int = 10
    batch_size: int = 128
    seed: int = 0


class NaiveDense(tf.Module):
    """``activation(inputs @ W + b)`` with W uniform in [0, 0.1) and b zeros, as in the book."""

    def __init__(
        self,
        input_size: int,
        output_size: int,
        activation: Callable[[tf.Tensor], tf.Tensor],
        *,
        seed: tuple[int, int],
    ) -> None:
        super().__init__()
        self.activation = activation
        initial = tf.random.stateless_uniform(
            (input_size, output_size), seed=seed, minval=0.0, maxval=1e-1
        )
        self.W = tf.Variable(initial, name="W")
        self.b = tf.Variable(tf.zeros((output_size,)), name="b")

    def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
        return self.activation(tf.matmul(inputs, self.W) + self.b)

    @property
    def weights(self) -> list[tf.Variable]:
        return [self.W, self.b]


class NaiveSequential(tf.Module):
    """Calls its layers in order; ``weights`` lists every trainable variable."""

    def __init__(self, layers: list[NaiveDense]) -> None:
        super().__init__()
        self.layers = layers

    def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
        x = inputs
        for layer in self.layers:
            x = layer(x)
        return x

    @property
    def weights(self) -> list[tf.Variable]:
        return [w for layer in self.layers for w in layer.weights]


class BatchGenerator:
    """Consecutive slices of ``batch_size`` examples; the last batch may be shorter."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int = 128) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.images = images
        self.labels = labels
        self.batch_size = batch_size
        self.num_batches = math.ceil(len(images) / batch_size)

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(self.images), self.batch_size):
            stop = start + self.batch_size
            yield self.images[start:stop], self.labels[start:stop]


def build(config: NaiveConfig) -> NaiveSequential:
    return NaiveSequential(
        [
            NaiveDense(28 * 28, config.hidden_units, tf.nn.relu, seed=(config.seed, 0)),
            NaiveDense(config.hidden_units, 10, tf.nn.softmax, seed=(config.seed, 1)),
        ]
    )


def make_training_step(
    model: NaiveSequential, learning_rate: float
) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """One SGD step: mean sparse cross-entropy, gradients by tape, ``w -= lr * g``."""
    weights = model.weights

    @tf.function(reduce_retracing=True)
    def step(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            predictions = model(images)
            per_example = keras.losses.sparse_categorical_crossentropy(labels, predictions)
            loss = tf.reduce_mean(per_example)
        gradients = tape.gradient(loss, weights)
        for w, g in zip(weights, gradients, strict=True):
            w.assign_sub(g * learning_rate)
        correct = tf.reduce_sum(
            tf.cast(tf.equal(tf.argmax(predictions, axis=1), labels), tf.float32)
        )
        return loss, correct

    return step


def fit(
    model: NaiveSequential,
    images: np.ndarray,
    labels: np.ndarray,
    config: NaiveConfig,
    *,
    verbose: int = 1,
) -> dict[str, list[float]]:
    """Train in place on float32 (N, 784) pixels; returns per-epoch mean loss and accuracy."""
    step = make_training_step(model, config.learning_rate)
    labels = labels.astype(np.int64)
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    for epoch in range(config.epochs):
        started = time.perf_counter()
        total_loss = 0.0
        total_correct = 0.0
        for batch_images, batch_labels in BatchGenerator(images, labels, config.batch_size):
            loss, correct = step(tf.constant(batch_images), tf.constant(batch_labels))
            total_loss += float(loss) * len(batch_images)
            total_correct += float(correct)
        history["loss"].append(total_loss / len(images))
        history["accuracy"].append(total_correct / len(images))
        if verbose:
            print(
                f"Epoch {epoch + 1}/{config.epochs} - {time.perf_counter() - started:.1f}s"
                f" - loss: {history['loss'][-1]:.4f} - accuracy: {history['accuracy'][-1]:.4f}",
                file=sys.stdout,
                flush=True,
            )
    return history


def train(
    config: NaiveConfig, images: np.ndarray, labels: np.ndarray, *, verbose: int = 1
) -> tuple[NaiveSequential, dict[str, list[float]]]:
    model = build(config)
    history = fit(model, images, labels, config, verbose=verbose)
    return model, history


def forward(model: NaiveSequential) -> Callable[[tf.Tensor], tf.Tensor]:
    """The function the exporter wraps: float32 (N, 784) -> probabilities."""

    def call(pixels: tf.Tensor) -> tf.Tensor:
        return model(pixels)

    return call
