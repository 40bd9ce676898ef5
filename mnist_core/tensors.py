"""Tensors as the standard protocols send them: typed, shaped, as JSON lists or raw bytes.

The Open Inference Protocol (V2) names datatypes (``UINT8``, ``FP32``...) and sends a
tensor either as JSON ``data`` (flat or nested, row-major) or, with Triton's binary
extension, as raw little-endian bytes after the JSON header. TensorFlow Serving sends
nested JSON lists. Whatever the form, the images that reach the model pass the one
pixel rule of :mod:`mnist_core.validation`: a datatype other than UINT8 is accepted only
where every value is a whole number 0..255.

Errors are :class:`~mnist_core.errors.InputError` naming the tensor (``field``).
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import numpy as np

from .errors import InputError
from .validation import PIXELS, SIDE, check_count, skeleton_values, to_pixels

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
"""V2 datatype names and their little-endian NumPy types (``BYTES`` is not a pixel type)."""

NUMERIC = tuple(name for name in DATATYPES if name != "BOOL")
IMAGE_SHAPES = "[N, 28, 28] or [N, 784]"


def datatype_of(name: object, *, field: str) -> np.dtype[Any]:
    """The NumPy type of a V2 datatype name that can hold pixels."""
    if not isinstance(name, str) or name not in NUMERIC:
        raise InputError(
            f"input '{field}' has datatype {name!r}: pixels need a numeric datatype "
            f"({', '.join(NUMERIC)}; UINT8 is the model's own)",
            reason="invalid_datatype",
            field=field,
        )
    return DATATYPES[name]


def image_shape(shape: object, *, field: str, max_images: int) -> tuple[int, ...]:
    """A declared ``[N, 28, 28]`` or ``[N, 784]`` shape, checked (N within the limit)."""
    if (
        not isinstance(shape, list)
        or not all(type(d) is int for d in shape)
        or len(shape) not in (2, 3)
        or tuple(shape[1:]) not in ((SIDE, SIDE), (PIXELS,))
        or shape[0] < 0
    ):
        raise InputError(
            f"input '{field}' has shape {shape!r}: expected {IMAGE_SHAPES}",
            reason="invalid_shape",
            field=field,
        )
    check_count(shape[0], max_images, field=field)
    return tuple(shape)


def from_bytes(
    raw: bytes | memoryview, dtype: np.dtype[Any], shape: tuple[int, ...], *, field: str
) -> np.ndarray:
    """A binary tensor (row-major, little-endian) of ``shape``, without copying."""
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise InputError(
            f"input '{field}' has {len(raw)} bytes of binary data; shape {list(shape)} of "
            f"{dtype.name} needs {expected}",
            reason="invalid_binary_size",
            field=field,
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def from_json(
    data: object,
    dtype: np.dtype[Any],
    shape: tuple[int, ...],
    *,
    field: str,
    may_hold_booleans: bool = True,
) -> np.ndarray:
    """JSON ``data`` (flat or nested, row-major) as an array of ``shape``.

    Only numbers are taken (``true`` is not 1, ``"7"`` is not 7); the count of values
    must match the shape exactly. NumPy reads JSON booleans as numbers: unless the caller
    has seen that the source text spells no ``true``/``false`` (``may_hold_booleans``),
    the values are looked at once more.
    """
    if not isinstance(data, list):
        raise InputError(
            f"input '{field}' data must be a list of numbers", reason="invalid_type", field=field
        )
    try:
        array = np.array(data)
    except (ValueError, TypeError, OverflowError):
        array = None  # ragged, or numbers too large for any NumPy type
    if (
        array is None
        or array.dtype.kind not in "iuf"
        or (may_hold_booleans and _has_booleans(data))
    ):
        raise InputError(
            f"input '{field}' data must hold only numbers, nested evenly",
            reason="non_numeric",
            field=field,
        )
    if array.size != math.prod(shape):
        raise InputError(
            f"input '{field}' has {array.size} values; shape {list(shape)} needs "
            f"{math.prod(shape)}",
            reason="shape_mismatch",
            field=field,
        )
    if dtype.kind in "iu" and array.dtype.kind == "f":
        array = _exact_integers(array, dtype, field)
    return array.reshape(shape)


def _has_booleans(data: list[Any]) -> bool:
    text = json.dumps(data)
    return "true" in text or "false" in text


def _exact_integers(array: np.ndarray, dtype: np.dtype[Any], field: str) -> np.ndarray:
    finite = np.isfinite(array)
    if not finite.all() or (array != np.floor(array)).any():
        raise InputError(
            f"input '{field}' is declared {dtype.name} but holds values that are not whole numbers",
            reason="not_integer",
            field=field,
        )
    return array


def to_images(tensor: np.ndarray, *, field: str) -> np.ndarray:
    """A ``[N, 28, 28]`` or ``[N, 784]`` numeric tensor as the model's ``uint8 [N, 28, 28]``."""
    try:
        return to_pixels(tensor.reshape(len(tensor), SIDE, SIDE))
    except InputError as exc:  # the same error, naming the tensor
        exc.message = f"input '{field}': {exc.message}"
        exc.args = (exc.message,)
        exc.details["field"] = field
        raise


def json_uint8(text: bytes, shape: tuple[int, ...]) -> np.ndarray | None:
    """The JSON array ``text`` of integers 0..255 as ``uint8`` of ``shape``, or None.

    The same byte-level reading as :func:`mnist_core.validation.fast_json_images`, for a
    tensor's ``data``: flat, or nested exactly as ``shape``; integers without signs,
    fractions or leading zeros. Anything else returns None and the caller parses the
    JSON in full (which also names any problem). Turning a million-value list into
    Python objects costs several times the model call.
    """
    count = math.prod(shape)
    if count == 0 or not (text.startswith(b"[") and text.endswith(b"]")):
        return None
    if any(space in text for space in b" \t\r\n"):
        return None  # our own clients send compact JSON; the general path reads the rest
    skeleton = text.translate(None, b"0123456789")
    if skeleton != _skeleton((count,)) and skeleton != _skeleton(shape):
        return None
    values = skeleton_values(text, count)
    return None if values is None else values.reshape(shape)


@functools.lru_cache(maxsize=16)
def _skeleton(shape: tuple[int, ...]) -> bytes:
    """The brackets and commas of a JSON array of ``shape``, digits removed."""
    inner = b""
    for size in reversed(shape):
        inner = b"[" + (inner + b",") * (size - 1) + inner + b"]"
    return inner


def to_bytes(array: np.ndarray) -> bytes:
    """A tensor's raw form for the binary extension: row-major, little-endian."""
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return np.ascontiguousarray(little).tobytes()


def datatype_name(dtype: np.dtype[Any]) -> str:
    """The V2 datatype name of a NumPy type."""
    for name, known in DATATYPES.items():
        if known == dtype.newbyteorder("<"):
            return name
    raise ValueError(f"no V2 datatype for {dtype}")
