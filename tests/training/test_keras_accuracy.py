"""The default Keras job on the full MNIST data, as exported by the session fixture."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_core.modeldir import SIGNATURE, read_metadata

REQUIRED_METADATA = {
    "version",
    "created",
    "implementation",
    "hyperparameters",
    "seed",
    "data_sha256",
    "test_loss",
    "test_accuracy",
    "per_class_accuracy",
    "confusion_matrix",
    "software",
    "train_seconds",
    "signature",
    "history",
    "report",
}


def test_reloaded_savedmodel_reaches_book_accuracy(
    trained_model_root: Path, reloaded_accuracy: Callable[[Path], float]
) -> None:
    version_dir = trained_model_root / "1"
    accuracy = reloaded_accuracy(version_dir)
    assert accuracy >= 0.978
    # metadata.json records the in-memory model's score; the exported graph agrees to
    # within float rounding, which could flip at most a near-tie.
    assert abs(read_metadata(version_dir)["test_accuracy"] - accuracy) <= 1e-4


def test_metadata_describes_the_run(
    trained_model_root: Path, mnist_data_dir: Path, mnist_test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    meta = read_metadata(trained_model_root / "1")
    assert meta.keys() >= REQUIRED_METADATA
    assert meta["version"] == 1
    assert meta["implementation"] == "keras"
    assert meta["signature"] == SIGNATURE
    assert meta["seed"] == 0
    assert meta["hyperparameters"]["epochs"] == 5
    assert meta["hyperparameters"]["batch_size"] == 128
    assert meta["hyperparameters"]["hidden_units"] == 512
    assert meta["hyperparameters"]["optimizer"] == "rmsprop"
    assert meta["software"]["tensorflow"].startswith("2.21")
    assert meta["software"]["keras"].startswith("3.")
    assert meta["train_seconds"] > 0
    assert len(meta["history"]["loss"]) == 5
    published = dict(
        reversed(line.split()) for line in (mnist_data_dir / "SHA256SUMS").read_text().splitlines()
    )
    assert meta["data_sha256"] == published

    _, y_test = mnist_test_set
    confusion = np.array(meta["confusion_matrix"])
    assert confusion.shape == (10, 10)
    np.testing.assert_array_equal(confusion.sum(axis=1), np.bincount(y_test, minlength=10))
    assert np.trace(confusion) / len(y_test) == meta["test_accuracy"]
    np.testing.assert_allclose(
        meta["per_class_accuracy"], np.diag(confusion) / confusion.sum(axis=1), atol=1e-6
    )
    assert 0 < meta["test_loss"] < 0.2


def test_report_pictures_are_published_with_the_version(trained_model_root: Path) -> None:
    version_dir = trained_model_root / "1"
    names = read_metadata(version_dir)["report"]
    assert sorted(names) == ["confusion_matrix.png", "learning_curves.png", "misclassified.png"]
    for name in names:
        with Image.open(version_dir / name) as image:
            assert image.format == "PNG"
            assert min(image.size) >= 300


def test_version_is_readable_by_other_users(trained_model_root: Path) -> None:
    version_dir = trained_model_root / "1"
    assert stat.S_IMODE(version_dir.stat().st_mode) == 0o755
    for path in version_dir.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), path


def test_export_holds_the_weights_and_no_optimizer_state(trained_model_root: Path) -> None:
    import tensorflow as tf

    checkpoint = trained_model_root / "1" / "variables" / "variables"
    shapes = sorted(
        tuple(shape) for name, shape in tf.train.list_variables(str(checkpoint)) if shape
    )
    assert shapes == [(10,), (512,), (512, 10), (784, 512)]
