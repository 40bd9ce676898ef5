"""Input files of batch jobs, read as ordered chunks of uint8 28x28 images.

Formats: IDX image files (gzipped or raw), ``.npy``, ``.npz``, CSV with 784 pixel columns
and an optional label column (header or not), and directories of PNG/JPEG files.
Large inputs are never loaded whole when the format allows it: raw IDX and ``.npy`` are
memory-mapped; gzipped IDX, ``.npz`` members and CSV are streamed chunk by chunk, so a
job's memory is bounded by its chunk size.

Every problem with an input file is a ``DataFileError`` naming the file and, where it
applies, the image index or line.
"""

from __future__ import annotations

import abc
import gzip
import hashlib
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from .errors import DataFileError, MnistError
from .idx import GZIP_MAGIC, UINT8_TYPE, read_idx
from .pixel_csv import CsvLayout, parse_csv_rows, sniff_csv

IMAGE_SHAPE = (28, 28)
PIXELS = 28 * 28
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
IMAGE_LABEL_NAMES = ("images", "x", "x_test", "x_train", "arr_0")
LABEL_NAMES = ("labels", "y", "y_test", "y_train", "arr_1")


@dataclass(frozen=True)
class Chunk:
    """Consecutive inputs ``start .. start + len(chunk)`` of a source.

    ``images`` are decoded uint8 (n, 28, 28); a directory read without a decoder gives
    the files' bytes in ``files`` instead (and ``images`` is empty), for a service to
    decode. ``names`` are file names, ``labels`` the input's own labels, if any.
    """

    start: int
    images: np.ndarray
    labels: np.ndarray | None = None
    names: tuple[str, ...] | None = None
    files: tuple[bytes, ...] | None = None

    def __len__(self) -> int:
        return len(self.files) if self.files is not None else len(self.images)

    @property
    def stop(self) -> int:
        return self.start + len(self)


class ImageSource(abc.ABC):
    """A sized, ordered collection of images read in chunks.

    Labels that come with the input (an .npz labels array, a CSV label column) travel
    with each chunk.
    """

    #: Name of the column that identifies a row in outputs: a position or a file name.
    key = "index"

    def __init__(self, path: Path, count: int, labels: np.ndarray | None = None) -> None:
        self.path = path
        self.count = count
        self.labels = labels

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    @abc.abstractmethod
    def chunks(self, start: int, size: int) -> Iterator[Chunk]:
        """Chunks of at most ``size`` images from ``start`` to the end, in order."""

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this input, so an interrupted job resumes only on the same data."""
        stat = self.path.stat()
        return {
            "format": type(self).__name__,
            "path": str(self.path.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "count": self.count,
        }

    def _check_range(self, start: int, size: int) -> None:
        if size < 1:
            raise ValueError(f"chunk size must be positive, got {size}")
        if not 0 <= start <= self.count:
            raise ValueError(f"start {start} is outside 0..{self.count}")

    def _labels_for(self, start: int, stop: int) -> np.ndarray | None:
        return None if self.labels is None else self.labels[start:stop]


def as_uint8_images(block: np.ndarray, start: int, path: object) -> np.ndarray:
    """``block`` (n, 28, 28) or (n, 784) of any numeric dtype as uint8 (n, 28, 28).

    Non-uint8 data is accepted only when every value is a whole number in 0..255; the
    error names the first offending image.
    """
    n = len(block)
    if block.dtype != np.uint8:
        if block.dtype.kind not in "iuf":
            raise DataFileError(path, f"dtype {block.dtype} does not hold pixel values")
        flat = block.reshape(n, -1)
        with np.errstate(invalid="ignore"):
            ok = (flat >= 0) & (flat <= 255) & (flat == np.floor(flat))
        bad = np.flatnonzero(~ok.all(axis=1))
        if bad.size:
            raise DataFileError(
                path, f"image {start + int(bad[0])}: pixel values must be whole numbers in 0..255"
            )
        block = block.astype(np.uint8)
    return block.reshape(n, *IMAGE_SHAPE)


def check_image_shape(shape: tuple[int, ...], path: object) -> None:
    if tuple(shape[1:]) not in (IMAGE_SHAPE, (PIXELS,)):
        raise DataFileError(path, f"array shape {tuple(shape)} is not (N, 28, 28) or (N, 784)")


def check_labels(labels: np.ndarray, count: int, path: object) -> np.ndarray:
    """Labels as int64, checked to be one digit per image."""
    if labels.ndim != 1 or len(labels) != count:
        raise DataFileError(path, f"{labels.shape} labels do not match {count} images")
    if labels.dtype.kind not in "iu" or (count and (labels.min() < 0 or labels.max() > 9)):
        raise DataFileError(path, "labels must be integers in 0..9")
    return labels.astype(np.int64)


class ArraySource(ImageSource):
    """Images held by an array that supports slicing: a memory map or a loaded array."""

    def __init__(self, path: Path, array: np.ndarray, labels: np.ndarray | None = None) -> None:
        check_image_shape(array.shape, path)
        if array.dtype.kind not in "iuf":
            raise DataFileError(path, f"dtype {array.dtype} does not hold pixel values")
        super().__init__(path, len(array), labels)
        self._array = array

    def chunks(self, start: int, size: int) -> Iterator[Chunk]:
        self._check_range(start, size)
        for lo in range(start, self.count, size):
            hi = min(lo + size, self.count)
            images = as_uint8_images(np.asarray(self._array[lo:hi]), lo, self.path)
            yield Chunk(lo, images, self._labels_for(lo, hi))


class StreamSource(ImageSource):
    """Row-major images read sequentially from a stream (gzip data, a zip member)."""

    def __init__(
        self,
        path: Path,
        opener: Callable[[], IO[bytes]],
        shape: tuple[int, ...],
        dtype: np.dtype[Any],
        labels: np.ndarray | None = None,
    ) -> None:
        check_image_shape(shape, path)
        if dtype.kind not in "iuf":
            raise DataFileError(path, f"dtype {dtype} does not hold pixel values")
        super().__init__(path, shape[0], labels)
        self._opener = opener
        self._dtype = dtype
        self._row_shape = shape[1:]
        self._row_bytes = PIXELS * dtype.itemsize

    def _read_exact(self, stream: IO[bytes], nbytes: int, first: int) -> bytes:
        try:
            data = stream.read(nbytes)
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataFileError(self.path, f"corrupt data near image {first} ({exc})") from None
        if len(data) != nbytes:
            have = first + len(data) // self._row_bytes
            raise DataFileError(
                self.path, f"truncated data: header says {self.count} images, data ends at {have}"
            )
        return data

    def _check_end(self, stream: IO[bytes]) -> None:
        """Reading past the last image verifies the stream's checksum and finds trailing data."""
        try:
            extra = stream.read(1)
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataFileError(self.path, f"corrupt data ({exc})") from None
        if extra:
            raise DataFileError(self.path, f"trailing data after {self.count} images")

    def chunks(self, start: int, size: int) -> Iterator[Chunk]:
        self._check_range(start, size)
        with self._opener() as stream:
            skip_rows = start
            while skip_rows:
                step = min(skip_rows, 4096)
                self._read_exact(stream, step * self._row_bytes, start - skip_rows)
                skip_rows -= step
            for lo in range(start, self.count, size):
                hi = min(lo + size, self.count)
                data = self._read_exact(stream, (hi - lo) * self._row_bytes, lo)
                if hi == self.count:
                    self._check_end(stream)
                block = np.frombuffer(data, dtype=self._dtype).reshape(hi - lo, *self._row_shape)
                yield Chunk(lo, as_uint8_images(block, lo, self.path), self._labels_for(lo, hi))


class CsvSource(ImageSource):
    """CSV rows of 784 pixels, with an optional label column, streamed line by line."""

    def __init__(self, path: Path) -> None:
        self._layout: CsvLayout = sniff_csv(path)
        super().__init__(path, self._layout.rows)

    @property
    def has_labels(self) -> bool:
        return self._layout.label_column is not None

    def chunks(self, start: int, size: int) -> Iterator[Chunk]:
        self._check_range(start, size)
        for lo, lines in self._layout.batches(path=self.path, start=start, size=size):
            pixels, labels = parse_csv_rows(lines, self._layout, self.path)
            yield Chunk(lo, as_uint8_images(pixels, lo, self.path), labels)


class DirectorySource(ImageSource):
    """The files of one directory in name order (hidden files and subdirectories aside).

    With ``decode`` each file becomes an image here; without, chunks carry the files'
    bytes so the service's image endpoint decodes them exactly as it decodes uploads.
    """

    key = "file"

    def __init__(self, path: Path, decode: Callable[[bytes, int], np.ndarray] | None) -> None:
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DataFileError(path, "the directory holds no image files")
        super().__init__(path, len(files))
        self.files = files
        self._decode = decode

    def chunks(self, start: int, size: int) -> Iterator[Chunk]:
        self._check_range(start, size)
        for lo in range(start, self.count, size):
            batch = self.files[lo : lo + size]
            names = tuple(p.name for p in batch)
            data = [self._read(p) for p in batch]
            if self._decode is None:
                empty = np.zeros((0, *IMAGE_SHAPE), np.uint8)
                yield Chunk(lo, empty, None, names, tuple(data))
                continue
            images = np.stack(
                [
                    self._decoded(d, lo + i, p)
                    for i, (d, p) in enumerate(zip(data, batch, strict=True))
                ]
            )
            yield Chunk(lo, images, None, names)

    @staticmethod
    def _read(file: Path) -> bytes:
        try:
            return file.read_bytes()
        except OSError as exc:
            raise DataFileError(file, f"cannot read file ({exc.strerror})") from None

    def _decoded(self, data: bytes, index: int, file: Path) -> np.ndarray:
        assert self._decode is not None
        try:
            return self._decode(data, index)
        except MnistError as exc:  # the decoder's errors are problems of this file
            raise DataFileError(file, str(exc)) from None

    def fingerprint(self) -> dict[str, Any]:
        digest = hashlib.sha256()
        for file in self.files:
            stat = file.stat()
            digest.update(f"{file.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return {
            "format": type(self).__name__,
            "path": str(self.path.resolve()),
            "files": digest.hexdigest(),
            "count": self.count,
        }


def _idx_header(head: bytes, path: Path) -> tuple[int, tuple[int, ...]]:
    """Header length and shape of IDX uint8 data starting with ``head``."""
    if len(head) < 4:
        raise DataFileError(path, "too short for an IDX header")
    zero, dtype_code, dims = struct.unpack(">HBB", head[:4])
    if zero != 0 or dtype_code != UINT8_TYPE or dims not in (2, 3):
        raise DataFileError(path, "not an IDX file of uint8 images (bad magic number)")
    header_len = 4 + 4 * dims
    if len(head) < header_len:
        raise DataFileError(path, "truncated IDX header")
    return header_len, struct.unpack(f">{dims}I", head[4:header_len])


def open_idx(path: Path) -> ImageSource:
    """Raw IDX is memory-mapped; gzipped IDX is streamed, its size checked from the trailer."""
    with path.open("rb") as raw:
        compressed = raw.read(2) == GZIP_MAGIC
    if not compressed:
        with path.open("rb") as raw:
            header_len, shape = _idx_header(raw.read(16), path)
        check_image_shape(shape, path)
        expected = header_len + int(np.prod(shape))
        actual = path.stat().st_size
        if actual != expected:
            problem = "truncated" if actual < expected else "trailing bytes after"
            raise DataFileError(path, f"{problem} data: shape {shape} needs {expected} bytes")
        array = np.memmap(path, dtype=np.uint8, mode="r", offset=header_len, shape=shape)
        return ArraySource(path, array)
    try:
        with gzip.open(path, "rb") as stream:
            header_len, shape = _idx_header(stream.read(16), path)
    except (OSError, EOFError) as exc:
        raise DataFileError(path, f"corrupt gzip data ({exc})") from None
    check_image_shape(shape, path)
    # The gzip trailer holds the uncompressed size modulo 2**32: a cheap early check for a
    # truncated file (its CRC is only verified once the whole stream has been read).
    with path.open("rb") as raw:
        raw.seek(-4, 2)
        (isize,) = struct.unpack("<I", raw.read(4))
    if isize != (header_len + int(np.prod(shape))) % 2**32:
        raise DataFileError(path, f"gzip data does not match the IDX header's shape {shape}")

    def opener() -> IO[bytes]:
        stream = gzip.open(path, "rb")  # noqa: SIM115 (the caller closes it)
        stream.read(header_len)
        return cast(IO[bytes], stream)

    return StreamSource(path, opener, shape, np.dtype(np.uint8))


def open_npy(path: Path) -> ImageSource:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataFileError(path, f"not a readable .npy file ({exc})") from None
    return ArraySource(path, array)


def _pick(names: list[str], preferred: tuple[str, ...]) -> str | None:
    return next((n for n in preferred if n in names), None)


def open_npz(path: Path) -> ImageSource:
    """The images array of an .npz (the only one, or a conventional name) plus its labels."""
    try:
        archive = np.load(path, allow_pickle=False)
        names = list(archive.files)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFileError(path, f"not a readable .npz file ({exc})") from None
    images_name = names[0] if len(names) == 1 else _pick(names, IMAGE_LABEL_NAMES)
    if images_name is None:
        raise DataFileError(path, f"which array holds the images? found {names}")
    labels_name = None if len(names) == 1 else _pick(names, LABEL_NAMES)
    member = f"{images_name}.npy"

    def opener() -> IO[bytes]:
        stream = archive.zip.open(member)
        version = np.lib.format.read_magic(stream)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        read_header(stream)
        return cast(IO[bytes], stream)

    try:
        with archive.zip.open(member) as stream:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        labels = None
        if labels_name is not None:
            labels = check_labels(np.asarray(archive[labels_name]), shape[0], path)
        if fortran:  # column-major data cannot be streamed by rows: rare, so load it
            return ArraySource(path, np.asarray(archive[images_name]), labels)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFileError(path, f"array {images_name!r} is not readable ({exc})") from None
    return StreamSource(path, opener, tuple(shape), dtype, labels)


def read_labels(path: str | Path, count: int) -> np.ndarray:
    """A labels file (IDX, gzipped or raw, or .npy) checked against ``count`` images."""
    path = Path(path)
    with _opened(path) as raw:
        head = raw.read(6)
    labels = np.load(path, allow_pickle=False) if head == NPY_MAGIC else read_idx(path, ndim=1)
    return check_labels(labels, count, path)


def _opened(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise DataFileError(path, "file not found") from None
    except OSError as exc:
        raise DataFileError(path, f"cannot read file ({exc.strerror})") from None


def open_source(
    path: str | Path, *, decode_image: Callable[[bytes, int], np.ndarray] | None = None
) -> ImageSource:
    """The reader for ``path``, chosen by its content (and, for CSV, its name).

    ``decode_image(data, index)`` turns one image file into uint8 (28, 28); directories
    read without it yield the files' bytes (see :class:`DirectorySource`).
    """
    path = Path(path)
    if path.is_dir():
        return DirectorySource(path, decode_image)
    with _opened(path) as raw:
        head = raw.read(8)
    if not head:
        raise DataFileError(path, "empty file")
    if head.startswith(NPY_MAGIC):
        return open_npy(path)
    if head.startswith(ZIP_MAGIC):
        return open_npz(path)
    if head.startswith(GZIP_MAGIC) or head[:3] == b"\x00\x00\x08":
        return open_idx(path)
    if path.suffix.lower() in (".csv", ".txt"):
        return CsvSource(path)
    raise DataFileError(
        path, "unrecognised format (expected IDX, .npy, .npz, .csv or a directory of images)"
    )
