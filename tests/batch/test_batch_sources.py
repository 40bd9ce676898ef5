"""Input readers of batch jobs on small files the tests write, valid and broken."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnist_core.errors import DataFileError
from mnist_core.idx import write_idx
from mnist_core.sources import ArraySource, StreamSource, open_source, read_labels

RNG = np.random.default_rng(11)
IMAGES = RNG.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
LABELS = RNG.integers(0, 10, size=7, dtype=np.uint8)


def read_all(path: Path, start: int = 0, size: int = 3) -> tuple[np.ndarray, np.ndarray | None]:
    source = open_source(path)
    chunks = list(source.chunks(start, size))
    assert [c.start for c in chunks] == list(range(start, source.count, size))
    assert all(c.images.dtype == np.uint8 and c.images.shape[1:] == (28, 28) for c in chunks)
    labels = [c.labels for c in chunks if c.labels is not None]
    return (
        np.concatenate([c.images for c in chunks]),
        np.concatenate(labels) if labels else None,
    )


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n")
    return path


def csv_rows(images: np.ndarray, labels: np.ndarray | None) -> list[str]:
    flat = images.reshape(len(images), -1)
    if labels is None:
        return [",".join(map(str, row)) for row in flat]
    return [f"{label}," + ",".join(map(str, row)) for label, row in zip(labels, flat, strict=True)]


PIXEL_HEADER = ",".join(f"pixel{i}" for i in range(784))


@pytest.mark.parametrize(
    ("name", "writer", "kind"),
    [
        ("raw-idx3-ubyte", lambda p: write_idx(p, IMAGES), ArraySource),
        ("gz-idx3-ubyte.gz", lambda p: write_idx(p, IMAGES), StreamSource),
        ("flat-idx2-ubyte", lambda p: write_idx(p, IMAGES.reshape(7, 784)), ArraySource),
        ("images.npy", lambda p: np.save(p, IMAGES), ArraySource),
        ("flat-int64.npy", lambda p: np.save(p, IMAGES.reshape(7, 784).astype(np.int64)), None),
        ("whole-floats.npy", lambda p: np.save(p, IMAGES.astype(np.float32)), None),
        ("one.npz", lambda p: np.savez(p, IMAGES), StreamSource),
        ("compressed.npz", lambda p: np.savez_compressed(p, x_test=IMAGES), StreamSource),
        ("fortran.npz", lambda p: np.savez(p, images=np.asfortranarray(IMAGES)), ArraySource),
    ],
)
@pytest.mark.parametrize("start", [0, 4])
def test_binary_formats_give_the_images_in_order(
    tmp_path: Path, name: str, writer: object, kind: type | None, start: int
) -> None:
    path = tmp_path / name
    writer(path)  # type: ignore[operator]
    if kind is not None:
        assert isinstance(open_source(path), kind)
    images, labels = read_all(path, start)
    np.testing.assert_array_equal(images, IMAGES[start:])
    assert labels is None


def test_npz_labels_travel_with_their_chunks(tmp_path: Path) -> None:
    path = tmp_path / "set.npz"
    np.savez(path, x_test=IMAGES, y_test=LABELS)
    images, labels = read_all(path, start=2)
    np.testing.assert_array_equal(images, IMAGES[2:])
    np.testing.assert_array_equal(labels, LABELS[2:])
    assert open_source(path).has_labels


@pytest.mark.parametrize(
    ("rows", "has_labels"),
    [
        (["label," + PIXEL_HEADER, *csv_rows(IMAGES, LABELS)], True),  # Kaggle train.csv
        ([PIXEL_HEADER, *csv_rows(IMAGES, None)], False),  # Kaggle test.csv
        (csv_rows(IMAGES, LABELS), True),  # no header, label first
        (csv_rows(IMAGES, None), False),
        ([PIXEL_HEADER + ",label", *[r[2:] + "," + r[0] for r in csv_rows(IMAGES, LABELS)]], True),
        (["", *csv_rows(IMAGES[:3], LABELS[:3]), "", *csv_rows(IMAGES[3:], LABELS[3:])], True),
    ],
    ids=["header-label", "header", "label", "bare", "label-last", "blank-lines"],
)
def test_csv_layouts(tmp_path: Path, rows: list[str], has_labels: bool) -> None:
    path = write_csv(tmp_path / "digits.csv", rows)
    source = open_source(path)
    assert source.count == 7
    assert source.has_labels == has_labels
    for start in (0, 5):
        images, labels = read_all(path, start, size=2)
        np.testing.assert_array_equal(images, IMAGES[start:])
        if has_labels:
            np.testing.assert_array_equal(labels, LABELS[start:])
        else:
            assert labels is None


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def broken_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, text the error must contain)."""
    cases: dict[str, tuple[Path, str]] = {}
    raw = write_idx(tmp_path / "raw-idx3-ubyte", IMAGES)
    _truncate(raw, 16 + 784 * 3 + 5)
    cases["truncated raw IDX"] = (raw, "truncated")
    gz = write_idx(tmp_path / "gz-idx3-ubyte.gz", IMAGES)
    _truncate(gz, len(gz.read_bytes()) - 40)
    cases["truncated gzip IDX"] = (gz, "gz-idx3-ubyte.gz")
    labels = write_idx(tmp_path / "labels-idx1-ubyte", LABELS)
    cases["IDX labels as images"] = (labels, "array shape (7,) is not (N, 28, 28)")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01garbage" * 10)
    cases["unknown format"] = (junk, "unrecognised format")
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    cases["empty file"] = (empty, "empty file")
    npy = tmp_path / "cut.npy"
    np.save(npy, IMAGES)
    _truncate(npy, 200)
    cases["truncated .npy"] = (npy, "cut.npy")
    shape = tmp_path / "shape.npy"
    np.save(shape, np.zeros((3, 28, 27), np.uint8))
    cases["wrong shape"] = (shape, "(3, 28, 27)")
    floats = tmp_path / "scaled.npy"
    np.save(floats, IMAGES.astype(np.float32) / 255.0)
    cases["pixels in [0, 1]"] = (floats, "image 0 has fractional pixel values")
    big = tmp_path / "big.npy"
    values = IMAGES.astype(np.int32)
    values[5, 3, 3] = 256
    np.save(big, values)
    cases["pixel 256"] = (big, "image 5")
    zip_ = tmp_path / "many.npz"
    np.savez(zip_, a=IMAGES, b=IMAGES)
    cases["ambiguous npz"] = (zip_, "which array holds the images")
    not_arrays = tmp_path / "text.npz"
    with zipfile.ZipFile(not_arrays, "w") as archive:
        archive.writestr("a.txt", "a")
    cases["zip of text"] = (not_arrays, "a zip archive without .npy arrays")
    rows = csv_rows(IMAGES, LABELS)
    cases["short CSV row"] = (write_csv(tmp_path / "short.csv", [*rows[:4], "1,2,3"]), "line 5")
    bad = rows[:]
    bad[2] = bad[2].replace(",", ",x", 1)
    cases["non-number"] = (write_csv(tmp_path / "nan.csv", bad), "line 3: 'x")
    label = rows[:]
    label[1] = "12" + label[1][1:]
    cases["label 12"] = (write_csv(tmp_path / "label.csv", label), "line 2: label 12")
    cases["CSV width"] = (write_csv(tmp_path / "wide.csv", ["1,2,3"]), "3 columns")
    header = tmp_path / "h.csv"
    write_csv(header, [PIXEL_HEADER + ",digit", *csv_rows(IMAGES, LABELS)])
    cases["no label name"] = (header, "none of them is named 'label'")
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\xfa" * 100)
    cases["binary CSV"] = (binary, "not a text CSV file")
    return cases


def test_every_broken_file_gives_one_clear_error(tmp_path: Path) -> None:
    for name, (path, expected) in broken_files(tmp_path).items():
        with pytest.raises(DataFileError) as caught:
            read_all(path)
        message = str(caught.value)
        assert expected in message, f"{name}: {message}"
        assert path.name in message, f"{name}: {message}"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="file not found"):
        open_source(tmp_path / "nope.npy")


def test_gzipped_idx_corruption_inside_the_stream_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "flipped-idx3-ubyte.gz"
    data = bytearray(gzip.compress(write_idx(tmp_path / "raw", IMAGES).read_bytes(), mtime=0))
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataFileError, match=r"flipped-idx3-ubyte\.gz"):
        read_all(path)


def test_labels_files(tmp_path: Path) -> None:
    idx = write_idx(tmp_path / "labels-idx1-ubyte.gz", LABELS)
    np.testing.assert_array_equal(read_labels(idx, 7), LABELS)
    npy = tmp_path / "labels.npy"
    np.save(npy, LABELS.astype(np.int64))
    np.testing.assert_array_equal(read_labels(npy, 7), LABELS)
    with pytest.raises(DataFileError, match="do not match 8 images"):
        read_labels(idx, 8)
    np.save(npy, np.array([1, 2, 10]))
    with pytest.raises(DataFileError, match=r"0\.\.9"):
        read_labels(npy, 3)


def test_fingerprint_changes_when_the_input_does(tmp_path: Path) -> None:
    path = tmp_path / "images.npy"
    np.save(path, IMAGES)
    before = open_source(path).fingerprint()
    assert open_source(path).fingerprint() == before
    np.save(path, IMAGES[:6])
    assert open_source(path).fingerprint() != before
