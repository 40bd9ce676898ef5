"""What every input reader yields: ordered chunks of uint8 28x28 images, and their checks."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataFileError, InputError
from .validation import to_pixels

IMAGE_SHAPE = (28, 28)
PIXELS = 28 * 28


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

    Values follow the one pixel rule (:func:`~.validation.to_pixels`); the error names
    the file and the first offending image by its position in the file.
    """
    n = len(block)
    if block.dtype.kind not in "iuf":
        raise DataFileError(path, f"dtype {block.dtype} does not hold pixel values")
    try:
        return to_pixels(block.reshape(n, *IMAGE_SHAPE), first_index=start)
    except InputError as exc:
        raise DataFileError(path, exc.message) from None


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
