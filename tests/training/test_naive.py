"""The from-scratch implementation: its parts, and the full default run through export."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mnist_core.modeldir import read_metadata


def test_naive_dense_starts_as_in_the_book() -> None:
    import tensorflow as tf

    from training.naive import NaiveDense

    layer = NaiveDense(784, 512, tf.nn.relu, seed=(0, 0))
    w, b = (v.numpy() for v in layer.weights)
    assert w.shape == (784, 512)
    assert w.min() >= 0.0
    assert w.max() < 0.1
    assert w.std() > 0.02  # spread over the interval, not a constant
    np.testing.assert_array_equal(b, np.zeros(512, np.float32))
    out = layer(tf.ones((3, 784))).numpy()
    np.testing.assert_allclose(out, np.maximum(np.ones((3, 784)) @ w + b, 0), rtol=1e-5)


def test_same_seed_same_initial_weights_and_layers_differ() -> None:
    from training.naive import NaiveConfig, build

    first = [w.numpy() for w in build(NaiveConfig(hidden_units=16)).weights]
    second = [w.numpy() for w in build(NaiveConfig(hidden_units=16)).weights]
    other = [w.numpy() for w in build(NaiveConfig(hidden_units=16, seed=1)).weights]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    assert first[0].shape == (784, 16)
    assert first[2].shape == (16, 10)
    assert not np.array_equal(first[0][:16, :10], first[2][:16, :10])


def test_batch_generator_walks_every_example_once_in_order() -> None:
    from training.naive import BatchGenerator

    images = np.arange(10 * 3).reshape(10, 3)
    labels = np.arange(10)
    batches = list(BatchGenerator(images, labels, batch_size=4))
    assert len(BatchGenerator(images, labels, batch_size=4)) == len(batches) == 3
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), labels)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), images)


@pytest.mark.parametrize(
    ("images", "labels", "batch_size"),
    [(np.zeros((3, 2)), np.zeros(2), 1), (np.zeros((3, 2)), np.zeros(3), 0)],
)
def test_batch_generator_rejects_bad_arguments(
    images: np.ndarray, labels: np.ndarray, batch_size: int
) -> None:
    from training.naive import BatchGenerator

    with pytest.raises(ValueError):
        BatchGenerator(images, labels, batch_size)


def test_training_step_is_plain_sgd() -> None:
    import tensorflow as tf

    from training.naive import NaiveConfig, build, make_training_step

    model = build(NaiveConfig(hidden_units=8))
    rng = np.random.default_rng(0)
    images = tf.constant(rng.random((5, 784), dtype=np.float32))
    labels = tf.constant(rng.integers(0, 10, 5))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(
            tf.keras.losses.sparse_categorical_crossentropy(labels, model(images))
        )
    gradients = [g.numpy() for g in tape.gradient(loss, model.weights)]
    before = [w.numpy() for w in model.weights]

    step_loss, _ = make_training_step(model, learning_rate=0.5)(images, labels)

    assert float(step_loss) == pytest.approx(float(loss), rel=1e-6)
    for w, w0, g in zip(model.weights, before, gradients, strict=True):
        np.testing.assert_allclose(w.numpy(), w0 - 0.5 * g, rtol=1e-5, atol=1e-6)


def test_default_naive_run_reaches_the_books_accuracy_through_export(
    tmp_path: Path, mnist_data_dir: Path, reloaded_accuracy: Callable[[Path], float]
) -> None:
    from training.cli import main

    root = tmp_path / "mnist"
    assert (
        main(
            [
                "--impl",
                "naive",
                "--data-dir",
                str(mnist_data_dir),
                "--model-dir",
                str(root),
                "--verbose",
                "2",
            ]
        )
        == 0
    )
    version_dir = root / "1"
    meta = read_metadata(version_dir)
    assert meta["implementation"] == "naive"
    assert meta["hyperparameters"]["epochs"] == 10
    assert meta["hyperparameters"]["learning_rate"] == 1e-3
    assert len(meta["history"]["loss"]) == 10
    assert meta["history"]["loss"][-1] < meta["history"]["loss"][0]
    assert (version_dir / "learning_curves.png").is_file()
    accuracy = reloaded_accuracy(version_dir)
    assert accuracy >= 0.80
    assert abs(meta["test_accuracy"] - accuracy) <= 1e-4
