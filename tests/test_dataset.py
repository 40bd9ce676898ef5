"""The data directory loader: tiny directories the tests write, broken ones, and the real MNIST."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from mnist_core.dataset import FILES, file_digests, load_dir
from mnist_core.errors import DataFileError
from mnist_core.idx import encode_idx, write_idx

RNG = np.random.default_rng(3)
TINY = {
    "train_images": RNG.integers(0, 256, size=(12, 28, 28), dtype=np.uint8),
    "train_labels": RNG.integers(0, 10, size=12, dtype=np.uint8),
    "test_images": RNG.integers(0, 256, size=(4, 28, 28), dtype=np.uint8),
    "test_labels": RNG.integers(0, 10, size=4, dtype=np.uint8),
}


def write_tiny(directory: Path, *, compress: bool, **overrides: np.ndarray) -> Path:
    """The four files, with ``overrides`` (keyed like ``FILES``) replacing the tiny arrays."""
    directory.mkdir(parents=True, exist_ok=True)
    for key, stem in FILES.items():
        name = f"{stem}.gz" if compress else stem
        write_idx(directory / name, overrides.get(key, TINY[key]), compress=compress)
    return directory


def load_error(directory: Path) -> DataFileError:
    with pytest.raises(DataFileError) as caught:
        load_dir(directory)
    return caught.value


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzipped"])
def test_loads_what_keras_datasets_returns(tmp_path: Path, compress: bool) -> None:
    (x_train, y_train), (x_test, y_test) = load_dir(write_tiny(tmp_path, compress=compress))
    for got, key in [
        (x_train, "train_images"),
        (y_train, "train_labels"),
        (x_test, "test_images"),
        (y_test, "test_labels"),
    ]:
        assert isinstance(got, np.ndarray)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, TINY[key])


def test_gzipped_and_raw_files_can_be_mixed(tmp_path: Path) -> None:
    write_tiny(tmp_path, compress=True)
    labels = tmp_path / f"{FILES['test_labels']}.gz"
    labels.rename(tmp_path / FILES["test_labels"])
    (_, _), (_, y_test) = load_dir(tmp_path)
    np.testing.assert_array_equal(y_test, TINY["test_labels"])


def test_missing_file_is_named(tmp_path: Path) -> None:
    write_tiny(tmp_path, compress=True)
    (tmp_path / f"{FILES['train_labels']}.gz").unlink()
    error = load_error(tmp_path)
    assert error.path == str(tmp_path / f"{FILES['train_labels']}.gz")
    assert "file not found" in error.problem


def test_missing_directory(tmp_path: Path) -> None:
    error = load_error(tmp_path / "nowhere")
    assert error.path == str(tmp_path / "nowhere")
    assert error.problem == "data directory not found"


def test_count_mismatch_names_both_files(tmp_path: Path) -> None:
    write_tiny(tmp_path, compress=True, test_labels=TINY["test_labels"][:3])
    error = load_error(tmp_path)
    assert error.path == str(tmp_path / f"{FILES['test_labels']}.gz")
    assert error.problem == f"3 labels for 4 images in {FILES['test_images']}.gz"


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzipped"])
def test_bad_magic_names_the_file(tmp_path: Path, compress: bool) -> None:
    write_tiny(tmp_path, compress=compress)
    data = bytearray(encode_idx(TINY["train_images"]))
    data[0] = 0x12
    name = FILES["train_images"] + (".gz" if compress else "")
    (tmp_path / name).write_bytes(gzip.compress(bytes(data)) if compress else bytes(data))
    error = load_error(tmp_path)
    assert error.path == str(tmp_path / name)
    assert error.problem.startswith("bad magic number 0x1200")


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzipped"])
def test_truncated_file_names_the_file(tmp_path: Path, compress: bool) -> None:
    write_tiny(tmp_path, compress=compress)
    name = FILES["test_images"] + (".gz" if compress else "")
    path = tmp_path / name
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    error = load_error(tmp_path)
    assert error.path == str(path)
    assert error.problem.startswith("corrupt gzip data" if compress else "truncated data")


def test_labels_file_where_images_belong(tmp_path: Path) -> None:
    write_tiny(tmp_path, compress=False, train_images=TINY["train_labels"])
    assert load_error(tmp_path).problem == "expected 3 dimensions, header says 1"


def test_images_of_the_wrong_size(tmp_path: Path) -> None:
    write_tiny(tmp_path, compress=False, test_images=np.zeros((4, 28, 27), np.uint8))
    assert load_error(tmp_path).problem == "images are (28, 27), expected (28, 28)"


def test_label_outside_0_to_9(tmp_path: Path) -> None:
    write_tiny(tmp_path, compress=False, train_labels=np.full(12, 10, np.uint8))
    assert load_error(tmp_path).problem == "label 10 is outside 0..9"


def test_file_digests_are_sha256_of_the_stored_bytes(tmp_path: Path) -> None:
    write_tiny(tmp_path, compress=True)
    digests = file_digests(tmp_path)
    assert sorted(digests) == sorted(f"{stem}.gz" for stem in FILES.values())
    for name, digest in digests.items():
        assert digest == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()


# The md5 of each uncompressed file as published with MNIST (and listed in the data README).
PUBLISHED_MD5 = {
    "train_images": "6bbc9ace898e44ae57da46a324031adb",
    "train_labels": "a25bea736e30d166cdddb491f175f624",
    "test_images": "2646ac647ad5339dbf082846283269ea",
    "test_labels": "27ae3e4e09519cfbb04c329615203637",
}


def test_real_mnist_is_the_published_data(mnist_data_dir: Path) -> None:
    (x_train, y_train), (x_test, y_test) = load_dir(mnist_data_dir)
    assert (x_train.shape, y_train.shape) == ((60000, 28, 28), (60000,))
    assert (x_test.shape, y_test.shape) == ((10000, 28, 28), (10000,))
    arrays = {
        "train_images": x_train,
        "train_labels": y_train,
        "test_images": x_test,
        "test_labels": y_test,
    }
    for key, array in arrays.items():
        assert array.dtype == np.uint8
        assert hashlib.md5(encode_idx(array)).hexdigest() == PUBLISHED_MD5[key], key
