"""Request bodies built from the real MNIST test images, each paired with its true labels.

Bodies are encoded once, before the load starts, so the load generator spends its CPU on
sending requests rather than on encoding them. Pixel values travel as integers 0..255,
the smallest and fastest JSON form the service accepts.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
from PIL import Image

from mnist_core.dataset import DATA_DIR_ENV, FILES, find_file
from mnist_core.errors import DataFileError
from mnist_core.idx import read_idx


@dataclass(frozen=True)
class TestImages:
    """The MNIST test split: uint8 images (N, 28, 28) and their labels (N,)."""

    __test__ = False  # a data class, not a pytest test class

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def window(self, start: int, count: int) -> TestImages:
        """``count`` consecutive images from ``start``, wrapping around the end of the set."""
        index = (np.arange(count) + start) % len(self)
        return TestImages(self.images[index], self.labels[index])


JSON = "application/json"
BOUNDARY = "mnist-load-boundary-7d41c0"


@dataclass(frozen=True)
class Payload:
    """One encoded request body, its content type and the true label of every image in it."""

    body: bytes
    content_type: str
    labels: tuple[int, ...]
    filenames: tuple[str, ...] = ()

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Type": self.content_type}


def multipart(field: str, files: Sequence[tuple[str, str, bytes]]) -> tuple[str, bytes]:
    """``(content type, body)`` of a multipart/form-data upload of ``(name, type, bytes)``."""
    chunks = []
    for filename, content_type, content in files:
        chunks.append(
            f"--{BOUNDARY}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n".encode()
        )
        chunks.append(content)
        chunks.append(b"\r\n")
    chunks.append(f"--{BOUNDARY}--\r\n".encode())
    return f"multipart/form-data; boundary={BOUNDARY}", b"".join(chunks)


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """``data_dir``, else ``$MNIST_DATA_DIR``; the error says which one is missing."""
    value = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    if not value:
        raise DataFileError(DATA_DIR_ENV, "not set: point it at the MNIST IDX files")
    return Path(value)


def load_test_images(data_dir: str | Path | None = None) -> TestImages:
    """Read only the two test files (the training split is not needed to make load)."""
    directory = resolve_data_dir(data_dir)
    images = read_idx(find_file(directory, FILES["test_images"]), ndim=3)
    labels = read_idx(find_file(directory, FILES["test_labels"]), ndim=1)
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise DataFileError(directory, f"test images {images.shape} and labels {labels.shape}")
    return TestImages(images, labels)


def _labels(images: TestImages) -> tuple[int, ...]:
    return tuple(int(v) for v in images.labels)


def json_payload(images: TestImages) -> Payload:
    """``{"images": [28x28 nested lists of ints]}`` for ``POST /predict``."""
    return Payload(orjson.dumps({"images": images.images.tolist()}), JSON, _labels(images))


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_payload(images: TestImages) -> Payload:
    """A ``.npy`` file of uint8 ``[N, 28, 28]`` in the multipart field ``array``."""
    content = npy_bytes(np.ascontiguousarray(images.images))
    content_type, body = multipart("array", [("images.npy", "application/octet-stream", content)])
    return Payload(body, content_type, _labels(images))


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_payload(images: TestImages, *, first_index: int = 0) -> Payload:
    """Every image as its own PNG file in the multipart field ``images``."""
    names = tuple(f"t10k-{first_index + i:05d}.png" for i in range(len(images)))
    files = [
        (name, "image/png", png_bytes(image))
        for name, image in zip(names, images.images, strict=True)
    ]
    content_type, body = multipart("images", files)
    return Payload(body, content_type, _labels(images), names)


def batch_sizes(low: int, high: int, count: int, *, seed: int = 0) -> list[int]:
    """``count`` batch sizes spread over ``[low, high]``, both ends included when count > 1."""
    if not 1 <= low <= high:
        raise ValueError(f"batch sizes need 1 <= low <= high, got {low}..{high}")
    if count <= 0:
        return []
    if count == 1 or low == high:
        return [low] * count
    rng = random.Random(seed)
    inner = [rng.randint(low, high) for _ in range(count - 2)]
    return [low, high, *inner]


def batch_payloads(
    test: TestImages, sizes: Sequence[int], encode: str, *, seed: int = 0
) -> list[Payload]:
    """One body per size, from random windows of the test set; ``encode``: json, npy or png."""
    rng = random.Random(seed)
    payloads = []
    for size in sizes:
        start = rng.randrange(len(test))
        window = test.window(start, size)
        if encode == "json":
            payloads.append(json_payload(window))
        elif encode == "npy":
            payloads.append(npy_payload(window))
        elif encode == "png":
            payloads.append(png_payload(window, first_index=start))
        else:
            raise ValueError(f"unknown encoding {encode!r} (json, npy or png)")
    return payloads
