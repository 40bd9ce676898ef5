"""Readers of array files: IDX (raw: memory-mapped; gzipped: streamed), .npy, .npz."""

from __future__ import annotations

import gzip
import struct
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from .chunks import PIXELS, Chunk, ImageSource, as_uint8_images, check_image_shape, check_labels
from .errors import DataFileError
from .files import open_binary
from .idx import GZIP_MAGIC, MAX_HEADER, parse_header
from .npy import read_header

IMAGE_LABEL_NAMES = ("images", "x", "x_test", "x_train", "arr_0")
LABEL_NAMES = ("labels", "y", "y_test", "y_train", "arr_1")


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


def open_idx(path: Path) -> ImageSource:
    """Raw IDX is memory-mapped; gzipped IDX is streamed, its size checked from the trailer."""
    with open_binary(path) as raw:
        compressed = raw.read(2) == GZIP_MAGIC
    if not compressed:
        with open_binary(path) as raw:
            header_len, shape = parse_header(raw.read(MAX_HEADER), name=path)
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
            header_len, shape = parse_header(stream.read(MAX_HEADER), name=path)
    except (OSError, EOFError) as exc:
        raise DataFileError(path, f"corrupt gzip data ({exc})") from None
    check_image_shape(shape, path)
    # The gzip trailer holds the uncompressed size modulo 2**32: a cheap early check for a
    # truncated file (its CRC is only verified once the whole stream has been read).
    with open_binary(path) as raw:
        raw.seek(-4, 2)
        (isize,) = struct.unpack("<I", raw.read(4))
    if isize != (header_len + int(np.prod(shape))) % 2**32:
        raise DataFileError(
            path, f"truncated or corrupt: the gzip size does not fit the IDX shape {shape}"
        )

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
        # Only the archive's .npy members are arrays; any other file in the zip is not.
        names = [n.removesuffix(".npy") for n in archive.zip.namelist() if n.endswith(".npy")]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFileError(path, f"not a readable .npz file ({exc})") from None
    if not names:
        raise DataFileError(path, "a zip archive without .npy arrays, not an .npz file")
    images_name = names[0] if len(names) == 1 else _pick(names, IMAGE_LABEL_NAMES)
    if images_name is None:
        raise DataFileError(path, f"which array holds the images? found {names}")
    labels_name = None if len(names) == 1 else _pick(names, LABEL_NAMES)
    member = f"{images_name}.npy"

    def opener() -> IO[bytes]:
        stream = archive.zip.open(member)
        read_header(stream)
        return cast(IO[bytes], stream)

    try:
        with archive.zip.open(member) as stream:
            header = read_header(stream)
        labels = None
        if labels_name is not None:
            labels = check_labels(np.asarray(archive[labels_name]), header.shape[0], path)
        if header.fortran_order:  # column-major data cannot be streamed by rows: rare, so load it
            return ArraySource(path, np.asarray(archive[images_name]), labels)
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFileError(path, f"array {images_name!r} is not readable ({exc})") from None
    return StreamSource(path, opener, header.shape, header.dtype, labels)
