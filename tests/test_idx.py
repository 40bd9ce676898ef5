"""IDX decoding and encoding on files the tests write, valid and broken."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from mnist_core.errors import DataFileError
from mnist_core.idx import encode_idx, parse_idx, read_idx, write_idx

RNG = np.random.default_rng(7)
IMAGES = RNG.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
LABELS = RNG.integers(0, 10, size=5, dtype=np.uint8)


@pytest.mark.parametrize("array", [IMAGES, LABELS, np.zeros((0, 28, 28), np.uint8)])
def test_encode_then_parse_gives_the_same_array(array: np.ndarray) -> None:
    decoded = parse_idx(encode_idx(array))
    assert decoded.dtype == np.uint8
    assert decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)


def test_header_is_big_endian_magic_then_dimensions() -> None:
    data = encode_idx(IMAGES)
    assert data[:4] == b"\x00\x00\x08\x03"
    assert struct.unpack(">3I", data[4:16]) == (5, 28, 28)
    assert len(data) == 16 + IMAGES.size


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_read_idx_reads_raw_and_gzipped_files(tmp_path: Path, name: str) -> None:
    path = write_idx(tmp_path / name, IMAGES)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    np.testing.assert_array_equal(read_idx(path, ndim=3), IMAGES)


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "labels-idx1-ubyte", LABELS, compress=True)
    np.testing.assert_array_equal(read_idx(path), LABELS)


def test_arrays_are_writable_like_keras_datasets(tmp_path: Path) -> None:
    array = read_idx(write_idx(tmp_path / "x.gz", IMAGES))
    array[0, 0, 0] = 1  # keras.datasets.mnist returns ordinary, writable arrays
    assert array.flags.writeable


def _error(path: Path, **kwargs: int) -> DataFileError:
    with pytest.raises(DataFileError) as caught:
        read_idx(path, **kwargs)
    assert caught.value.path == str(path)
    assert str(caught.value).startswith(f"{path}: ")
    return caught.value


@pytest.mark.parametrize("compress", [False, True])
def test_bad_magic_number(tmp_path: Path, compress: bool) -> None:
    data = bytearray(encode_idx(LABELS))
    data[2] = 0x0D  # the IDX type code of float32
    path = tmp_path / "labels"
    path.write_bytes(gzip.compress(bytes(data)) if compress else bytes(data))
    assert "bad magic number 0x00000d01" in _error(path).problem


def test_text_file_is_not_idx(tmp_path: Path) -> None:
    path = tmp_path / "labels"
    path.write_text("<html>not found</html>")
    assert "bad magic number" in _error(path).problem


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_data(tmp_path: Path, compress: bool) -> None:
    data = encode_idx(IMAGES)[:-100]
    path = tmp_path / "images"
    path.write_bytes(gzip.compress(data) if compress else data)
    problem = _error(path).problem
    assert problem == "truncated data: shape (5, 28, 28) needs 3920 bytes, found 3820"


def test_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "images"
    path.write_bytes(encode_idx(IMAGES)[:10])
    assert _error(path).problem == "truncated header (10 of 16 bytes)"


@pytest.mark.parametrize("size", [0, 3])
def test_too_short_for_a_header(tmp_path: Path, size: int) -> None:
    path = tmp_path / "images"
    path.write_bytes(b"\x00" * size)
    assert _error(path).problem == f"too short for an IDX header ({size} bytes)"


def test_trailing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "labels"
    path.write_bytes(encode_idx(LABELS) + b"\x00\x01")
    assert "trailing bytes after data" in _error(path).problem


def test_wrong_number_of_dimensions(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "labels", LABELS)
    assert _error(path, ndim=3).problem == "expected 3 dimensions, header says 1"


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(encode_idx(IMAGES))[:-20])
    assert _error(path).problem.startswith("corrupt gzip data")


def test_corrupt_gzip_body(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(encode_idx(IMAGES)))
    data[20:40] = b"\xff" * 20
    path = tmp_path / "images.gz"
    path.write_bytes(bytes(data))
    assert _error(path).problem.startswith("corrupt gzip data")


def test_missing_file(tmp_path: Path) -> None:
    assert _error(tmp_path / "absent.gz").problem == "file not found"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert _error(tmp_path).problem.startswith("cannot read file")
