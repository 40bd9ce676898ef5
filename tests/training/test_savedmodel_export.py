"""The exporter: signature round trip, version numbering, interrupted exports, permissions."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mnist_core.dataset import load_dir
from mnist_core.modeldir import SIGNATURE, existing_versions, latest_version_dir, read_metadata
from mnist_core.preprocess import to_model_input


@pytest.fixture(scope="module")
def small_keras_model(mnist_data_dir: Path) -> Any:
    """A real network trained briefly (1 epoch on 2,000 images): enough to have real weights."""
    from training import keras_model

    (x_train, y_train), _ = load_dir(mnist_data_dir)
    config = keras_model.KerasConfig(epochs=1)
    model, _ = keras_model.train(config, to_model_input(x_train[:2000]), y_train[:2000], verbose=0)
    return model


@pytest.fixture()
def export_small(small_keras_model: Any) -> Callable[..., Path]:
    from training import export, keras_model

    def run(root: Path, **kwargs: Any) -> Path:
        forward = keras_model.forward(small_keras_model)
        return export.export(
            forward, small_keras_model, root, {"implementation": "keras"}, **kwargs
        )

    return run


@pytest.fixture(scope="module")
def exported_small(small_keras_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training import export, keras_model

    root = tmp_path_factory.mktemp("small") / "mnist"
    forward = keras_model.forward(small_keras_model)
    return export.export(forward, small_keras_model, root, {"implementation": "keras"})


@pytest.mark.parametrize("batch_size", [1, 257])
def test_reloaded_signature_matches_in_memory_model(
    small_keras_model: Any,
    exported_small: Path,
    mnist_test_set: tuple[np.ndarray, np.ndarray],
    signature_outputs: Callable[[Path, np.ndarray], dict[str, np.ndarray]],
    batch_size: int,
) -> None:
    x_test, _ = mnist_test_set
    images = x_test[100 : 100 + batch_size]
    assert images.dtype == np.uint8
    expected = np.asarray(small_keras_model(to_model_input(images), training=False))
    outputs = signature_outputs(exported_small, images)
    assert outputs["probabilities"].dtype == np.float32
    assert outputs["probabilities"].shape == (batch_size, 10)
    np.testing.assert_allclose(outputs["probabilities"], expected, rtol=0, atol=1e-5)
    assert outputs["label"].dtype == np.int64
    np.testing.assert_array_equal(outputs["label"], expected.argmax(axis=1))


def test_signature_is_the_documented_contract(exported_small: Path) -> None:
    import tensorflow as tf

    signature = tf.saved_model.load(str(exported_small)).signatures[SIGNATURE["name"]]
    _, inputs = signature.structured_input_signature
    assert {name: (spec.dtype.name, spec.shape.as_list()) for name, spec in inputs.items()} == {
        name: (spec["dtype"], spec["shape"]) for name, spec in SIGNATURE["inputs"].items()
    }
    outputs = signature.structured_outputs
    assert {name: (spec.dtype.name, spec.shape.as_list()) for name, spec in outputs.items()} == {
        name: (spec["dtype"], spec["shape"]) for name, spec in SIGNATURE["outputs"].items()
    }
    meta = read_metadata(exported_small)
    assert meta["signature"] == SIGNATURE
    assert meta["version"] == 1
    assert meta["created"].endswith("+00:00")


class Interrupted(Exception):
    pass


def _interrupt(directory: Path) -> None:
    assert (directory / "saved_model.pb").is_file()  # midway: the model is already written
    raise Interrupted


def test_versions_count_up_and_an_interrupted_export_leaves_nothing(
    tmp_path: Path, export_small: Callable[..., Path]
) -> None:
    root = tmp_path / "mnist"
    assert export_small(root) == root / "1"
    assert export_small(root) == root / "2"
    with pytest.raises(Interrupted):
        export_small(root, before_publish=_interrupt)
    assert sorted(p.name for p in root.iterdir()) == ["1", "2"]  # no temporary left either
    third = export_small(root)
    assert third == root / "3"
    assert read_metadata(third)["version"] == 3
    assert existing_versions(root) == [1, 2, 3]
    assert latest_version_dir(root) == third


def test_hidden_temporaries_are_never_counted_as_versions(
    tmp_path: Path, export_small: Callable[..., Path]
) -> None:
    # A process killed mid-export (no chance to clean up) leaves a hidden temporary.
    root = tmp_path / "mnist"
    (root / ".export-killed").mkdir(parents=True)
    (root / "notes").mkdir()
    assert existing_versions(root) == []
    assert export_small(root) == root / "1"


@pytest.fixture()
def strict_umask() -> Iterator[None]:
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def test_export_is_world_readable_whatever_the_umask(
    tmp_path: Path, export_small: Callable[..., Path], strict_umask: None
) -> None:
    target = export_small(tmp_path / "mnist")
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    paths = list(target.rglob("*"))
    assert any(p.name == "saved_model.pb" for p in paths)
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), path
