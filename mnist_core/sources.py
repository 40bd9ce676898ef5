"""Input files of batch jobs, read as ordered chunks of uint8 28x28 images.

Formats: IDX image files (gzipped or raw), ``.npy``, ``.npz``, CSV with 784 pixel columns
and an optional label column (header or not), and directories of PNG/JPEG files.
Large inputs are never loaded whole when the format allows it: raw IDX and ``.npy`` are
memory-mapped; gzipped IDX, ``.npz`` members and CSV are streamed chunk by chunk, so a
job's memory is bounded by its chunk size.

Every problem with an input file is a ``DataFileError`` naming the file and, where it
applies, the image index or line. :func:`open_source` picks the reader by content; the
readers live in :mod:`.array_sources` (IDX, .npy, .npz), :mod:`.pixel_csv` and here
(directories), all yielding the :class:`~.chunks.Chunk` of :mod:`.chunks`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .array_sources import ArraySource, StreamSource, open_idx, open_npy, open_npz
from .chunks import IMAGE_SHAPE, Chunk, ImageSource, check_labels
from .errors import DataFileError, MnistError
from .files import open_binary, read_bytes
from .idx import GZIP_MAGIC, read_idx
from .npy import MAGIC as NPY_MAGIC
from .pixel_csv import CsvSource

__all__ = [
    "ArraySource",
    "Chunk",
    "CsvSource",
    "DirectorySource",
    "ImageSource",
    "StreamSource",
    "open_source",
    "read_labels",
]

ZIP_MAGIC = b"PK\x03\x04"


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
            data = [read_bytes(p) for p in batch]
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


def read_labels(path: str | Path, count: int) -> np.ndarray:
    """A labels file (IDX, gzipped or raw, or .npy) checked against ``count`` images."""
    path = Path(path)
    with open_binary(path) as raw:
        head = raw.read(6)
    labels = np.load(path, allow_pickle=False) if head == NPY_MAGIC else read_idx(path, ndim=1)
    return check_labels(labels, count, path)


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
    with open_binary(path) as raw:
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
