"""The four MNIST IDX files of a data directory, read as ``keras.datasets.mnist`` returns them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .errors import DataFileError
from .idx import read_idx

DATA_DIR_ENV = "MNIST_DATA_DIR"

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

Split = tuple[np.ndarray, np.ndarray]


def find_file(data_dir: Path, stem: str) -> Path:
    """The gzipped file if present, else the raw one; the error names the gzipped one."""
    for candidate in (data_dir / f"{stem}.gz", data_dir / stem):
        if candidate.is_file():
            return candidate
    raise DataFileError(data_dir / f"{stem}.gz", f"file not found (nor {stem})")


def _split(data_dir: Path, images_stem: str, labels_stem: str) -> Split:
    images_path = find_file(data_dir, images_stem)
    labels_path = find_file(data_dir, labels_stem)
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.shape[1:] != (28, 28):
        raise DataFileError(images_path, f"images are {images.shape[1:]}, expected (28, 28)")
    if len(images) != len(labels):
        raise DataFileError(
            labels_path, f"{len(labels)} labels for {len(images)} images in {images_path.name}"
        )
    if labels.size and int(labels.max()) > 9:
        raise DataFileError(labels_path, f"label {int(labels.max())} is outside 0..9")
    return images, labels


def load_dir(data_dir: str | Path) -> tuple[Split, Split]:
    """``((x_train, y_train), (x_test, y_test))`` as uint8 arrays, read from ``data_dir``."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataFileError(data_dir, "data directory not found")
    train = _split(data_dir, FILES["train_images"], FILES["train_labels"])
    test = _split(data_dir, FILES["test_images"], FILES["test_labels"])
    return train, test


def load_test_split(data_dir: str | Path) -> Split:
    """``(x_test, y_test)`` alone: the 10,000 test images without decoding the 60,000."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataFileError(data_dir, "data directory not found")
    return _split(data_dir, FILES["test_images"], FILES["test_labels"])


def file_digests(data_dir: str | Path) -> dict[str, str]:
    """sha256 of each data file as stored (compressed or not), keyed by file name."""
    data_dir = Path(data_dir)
    digests = {}
    for stem in FILES.values():
        path = find_file(data_dir, stem)
        digests[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests
