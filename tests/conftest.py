"""Fixtures shared by the whole suite.

The model under test is real: a session fixture trains the chapter-2 network on the
MNIST data in ``$MNIST_DATA_DIR`` once (about 20 s on 2 cores) and exports it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from server import ServiceProcess

from mnist_core.dataset import DATA_DIR_ENV, load_dir


@pytest.fixture(scope="session")
def mnist_data_dir() -> Path:
    value = os.environ.get(DATA_DIR_ENV)
    if not value:
        pytest.fail(f"{DATA_DIR_ENV} must point at the MNIST IDX files (see README)")
    return Path(value)


@pytest.fixture(scope="session")
def mnist_test_set(mnist_data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    _, test = load_dir(mnist_data_dir)
    return test


@pytest.fixture(scope="session")
def trained_model_root(tmp_path_factory: pytest.TempPathFactory, mnist_data_dir: Path) -> Path:
    """A model root holding version 1 of the default Keras model trained on full MNIST."""
    from training.cli import main

    root = tmp_path_factory.mktemp("models") / "mnist"
    assert main(["--data-dir", str(mnist_data_dir), "--model-dir", str(root)]) == 0
    return root


@pytest.fixture(scope="session")
def service(trained_model_root: Path) -> Iterator[ServiceProcess]:
    """The real ``mnist-serve`` (two workers) serving ``trained_model_root``, for the session."""
    with ServiceProcess.start(trained_model_root, workers=2) as server:
        yield server


@pytest.fixture(scope="session")
def service_url(service: ServiceProcess) -> str:
    """Base URL of the session's server, e.g. ``http://127.0.0.1:40123``."""
    return service.url
