"""Where the training data comes from: a data directory if one is set, else Keras' download."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mnist_core.dataset import DATA_DIR_ENV, Split, load_dir
from mnist_core.errors import DataFileError


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    """The ``--data-dir`` flag wins over ``MNIST_DATA_DIR``; neither means Keras' copy."""
    if data_dir:
        return Path(data_dir)
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else None


def load_data(data_dir: str | Path | None = None) -> tuple[Split, Split]:
    """Exactly what ``keras.datasets.mnist.load_data()`` returns."""
    resolved = resolve_data_dir(data_dir)
    if resolved is not None:
        return load_dir(resolved)
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as exc:  # urllib, zipfile and numpy errors alike: report one line
        raise DataFileError(
            "keras.datasets.mnist.load_data()",
            f"download failed ({type(exc).__name__}: {exc}); set {DATA_DIR_ENV} or --data-dir",
        ) from exc
    return (np.asarray(x_train), np.asarray(y_train)), (np.asarray(x_test), np.asarray(y_test))
