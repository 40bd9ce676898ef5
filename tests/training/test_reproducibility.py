"""Same seed, same model: two short runs of each implementation into one model root."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mnist_core.modeldir import existing_versions, read_metadata


@pytest.mark.parametrize("impl", ["keras", "naive"])
def test_two_runs_with_the_same_seed_give_the_same_model(
    impl: str,
    tmp_path: Path,
    mnist_data_dir: Path,
    mnist_test_set: tuple[np.ndarray, np.ndarray],
    signature_outputs: Callable[[Path, np.ndarray], dict[str, np.ndarray]],
) -> None:
    from training.cli import main

    root = tmp_path / "mnist"
    # A cheaper configuration than the default; reproducibility does not depend on size.
    argv = ["--impl", impl, "--data-dir", str(mnist_data_dir), "--model-dir", str(root)]
    argv += ["--epochs", "1", "--train-limit", "6000", "--seed", "7", "--no-report"]
    argv += ["--verbose", "0"]
    if impl == "naive":
        # The book's 1e-3 needs all 10 epochs; a larger step shows learning in one.
        argv += ["--learning-rate", "0.05"]
    assert main(argv) == 0
    assert main(argv) == 0
    assert existing_versions(root) == [1, 2]

    x_test, y_test = mnist_test_set
    first = signature_outputs(root / "1", x_test)
    second = signature_outputs(root / "2", x_test)
    np.testing.assert_array_equal(first["probabilities"], second["probabilities"])
    accuracy = float((first["label"] == y_test).mean())
    assert accuracy == float((second["label"] == y_test).mean())
    assert accuracy > 0.3  # well above chance (0.1): it learned in one short epoch
    meta = [read_metadata(root / v) for v in ("1", "2")]
    assert meta[0]["test_accuracy"] == meta[1]["test_accuracy"]
    assert meta[0]["train_examples"] == 6000
    assert [m["version"] for m in meta] == [1, 2]
    assert meta[0]["report"] == []
    assert not (root / "1" / "confusion_matrix.png").exists()


def test_another_seed_gives_another_model(
    tmp_path: Path,
    mnist_data_dir: Path,
    mnist_test_set: tuple[np.ndarray, np.ndarray],
    signature_outputs: Callable[[Path, np.ndarray], dict[str, np.ndarray]],
) -> None:
    from training.cli import main

    root = tmp_path / "mnist"
    base = ["--impl", "naive", "--data-dir", str(mnist_data_dir), "--model-dir", str(root)]
    base += ["--epochs", "1", "--train-limit", "2000", "--no-report", "--verbose", "0"]
    assert main([*base, "--seed", "1"]) == 0
    assert main([*base, "--seed", "2"]) == 0
    x_test, _ = mnist_test_set
    first = signature_outputs(root / "1", x_test[:100])["probabilities"]
    second = signature_outputs(root / "2", x_test[:100])["probabilities"]
    assert not np.array_equal(first, second)
