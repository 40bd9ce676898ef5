"""Strict checks that turn client input into the model's ``uint8 [N, 28, 28]`` batch.

Every problem raises :class:`~mnist_core.errors.InputError` naming the first offending
image by its index.

The pixel rule, the same on every path (JSON, ``.npy`` bodies and files, IDX, CSV, the
async jobs and ``mnist-batch``): values are whole numbers 0..255, 0 being the background
as in MNIST, in any numeric type (``3`` and ``3.0`` are the same pixel). A fraction, NaN,
an infinity or a value outside 0..255 is refused, never rounded or clipped: the usual
cause is an image scaled to [0, 1], which would otherwise be read as nearly black.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np

from .errors import InputError, PayloadTooLarge

SIDE = 28
PIXELS = SIDE * SIDE
IMAGE_FORMS = "a 28x28 nested list or a flat list of 784 numbers"


def check_count(count: int, max_images: int, *, field: str = "images") -> None:
    """Refuse an empty batch or one larger than ``max_images``."""
    if count == 0:
        raise InputError("no images given: send at least one", reason="empty_batch", field=field)
    if count > max_images:
        raise PayloadTooLarge(
            f"{count} images in one request; the limit is {max_images}",
            reason="too_many_images",
            field=field,
            count=count,
            limit=max_images,
        )


def images_from_json(
    images: object, *, max_images: int, may_hold_booleans: bool = True
) -> np.ndarray:
    """The parsed JSON value of ``"images"`` as ``uint8 [N, 28, 28]``.

    Each image is 28x28 nested or 784 flat; a request may mix both. NumPy's own type
    inference catches strings, nulls, objects and ragged lists; only JSON booleans mixed
    with numbers slip through it (``[1, true]`` becomes ``[1, 1]``), so unless the caller
    has seen that the source text holds no ``true``/``false`` (``may_hold_booleans``),
    every value's type is checked one by one.
    """
    if not isinstance(images, list):
        raise InputError(
            f"'images' must be a list of images, each {IMAGE_FORMS}",
            reason="invalid_type",
            field="images",
        )
    check_count(len(images), max_images)
    if not may_hold_booleans:
        batch = _byte_batch(images)
        if batch is None:
            batch = _fast_batch(images)
        if batch is not None:
            return batch
    return np.stack([_one_image(image, index) for index, image in enumerate(images)])


def images_from_array(array: np.ndarray, *, max_images: int) -> np.ndarray:
    """A numeric array of ``[N, 28, 28]`` or ``[N, 784]`` pixels as ``uint8 [N, 28, 28]``."""
    if array.ndim not in (2, 3) or array.shape[1:] not in ((SIDE, SIDE), (PIXELS,)):
        raise InputError(
            f"array of shape {list(array.shape)}: expected [N, 28, 28] or [N, 784]",
            reason="invalid_shape",
            field="array",
            shape=list(array.shape),
        )
    if array.dtype.kind not in "uif":
        raise InputError(
            f"array of dtype {array.dtype}: expected uint8 (or another integer or float type)",
            reason="invalid_dtype",
            field="array",
        )
    check_count(len(array), max_images, field="array")
    return to_pixels(array.reshape(len(array), SIDE, SIDE))


def to_pixels(batch: np.ndarray, *, first_index: int = 0) -> np.ndarray:
    """A numeric ``[N, 28, 28]`` array checked against the pixel rule, as uint8.

    Errors name the offending image as ``first_index`` plus its position in ``batch``.
    """
    if batch.dtype == np.uint8:
        return batch
    if batch.dtype.kind == "f":
        bad = ~np.isfinite(batch)
        if bad.any():
            index = first_index + _first_image(bad)
            raise InputError(
                f"image {index} holds NaN or infinity", reason="not_finite", index=index
            )
    bad = (batch < 0) | (batch > 255)
    if bad.any():
        index = first_index + _first_image(bad)
        raise InputError(
            f"image {index} has pixel values outside 0..255",
            reason="out_of_range",
            index=index,
        )
    if batch.dtype.kind == "f":
        bad = batch != np.floor(batch)
        if bad.any():
            index = first_index + _first_image(bad)
            raise InputError(
                f"image {index} has fractional pixel values: pixels are whole numbers 0..255 "
                "(an image scaled to [0, 1] must be multiplied by 255 and rounded first)",
                reason="not_integer",
                index=index,
            )
    return batch.astype(np.uint8)


def _first_image(bad: np.ndarray) -> int:
    return int(np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1))[0])


def _byte_batch(images: list[object]) -> np.ndarray | None:
    """Images of whole numbers 0..255 through ``bytes()``, or None for anything else.

    ``bytes(values)`` accepts exactly Python integers 0..255 (and booleans, which the
    caller has ruled out), so it checks the pixel rule for the usual integer body in a
    quarter of the time NumPy's type inference takes; floats, strings, nulls, nested
    lists and values out of range raise, and the general path handles those.
    """
    pixels = bytearray()
    try:
        for image in images:
            if type(image) is not list:
                return None
            if len(image) == PIXELS:
                pixels += bytes(image)
            elif len(image) == SIDE:
                for row in image:
                    if type(row) is not list or len(row) != SIDE:
                        return None
                    pixels += bytes(row)
            else:
                return None
    except (TypeError, ValueError):
        return None
    return np.frombuffer(pixels, dtype=np.uint8).reshape(len(images), SIDE, SIDE)


def _fast_batch(images: list[object]) -> np.ndarray | None:
    """The whole batch in one NumPy conversion, or None when anything is unusual."""
    try:
        batch = np.array(images)
    except (ValueError, TypeError, OverflowError):
        return None
    if batch.dtype.kind not in "iuf" or batch.shape[1:] not in ((SIDE, SIDE), (PIXELS,)):
        return None
    return to_pixels(batch.reshape(len(batch), SIDE, SIDE))


def _one_image(image: object, index: int) -> np.ndarray:
    """One image checked value by value; slow but exact about what is wrong."""
    values = _flatten(image, index)
    for value in values:
        if type(value) not in (int, float):
            raise InputError(
                f"image {index} holds a non-numeric value ({type(value).__name__})",
                reason="non_numeric",
                index=index,
            )
    try:
        pixels = np.array(values, dtype=np.float64)
    except OverflowError:
        raise InputError(
            f"image {index} has pixel values outside 0..255", reason="out_of_range", index=index
        ) from None
    checked: np.ndarray = to_pixels(pixels.reshape(1, SIDE, SIDE), first_index=index)[0]
    return checked


def _flatten(image: object, index: int) -> Sequence[object]:
    if not isinstance(image, list):
        raise InputError(
            f"image {index} is a {type(image).__name__}: expected {IMAGE_FORMS}",
            reason="invalid_shape",
            index=index,
        )
    if len(image) == PIXELS and not any(isinstance(row, list) for row in image):
        return image
    if len(image) == SIDE and all(isinstance(row, list) and len(row) == SIDE for row in image):
        return [value for row in image for value in row]
    raise InputError(
        f"image {index} has the wrong size or is ragged: expected {IMAGE_FORMS}",
        reason="invalid_shape",
        index=index,
    )


_JSON_PREFIX = re.compile(rb'\s*\{\s*"images"\s*:\s*')
_WHITESPACE = b" \t\r\n"
_DIGITS = b"0123456789"


def fast_json_images(body: bytes) -> np.ndarray | None:
    """``uint8 [N, 28, 28]`` straight from the bytes of a plain ``{"images": [...]}`` body.

    Parsing JSON into Python lists and converting those costs far more than the model
    (about 45 ms per 1,000 images). This reads the common case with byte operations and
    vectorised NumPy instead: only the key ``"images"``, integers 0..255 without leading
    zeros, every image in the same form (all 28x28 or all flat). Anything else (floats,
    signs, other keys, strings, a mix of forms, a bad value) returns None, and the
    caller takes the general path, which also names the problem.

    With whitespace removed, a valid body is a fixed skeleton of brackets and commas
    (which depends only on N and the form) with exactly one digit run in each of its
    784 x N number slots. The skeleton's length gives N; checked as: the skeleton
    matches, there are exactly 784 x N runs, and no run touches a bracket from outside
    (``1[`` or ``]1``), the only other places a run could be; then no slot can be empty
    or hold two.
    """
    prefix = _JSON_PREFIX.match(body)
    if prefix is None:
        return None
    tail = body.rstrip()
    if not tail.endswith(b"}"):
        return None
    text = tail[prefix.end() : -1].rstrip()
    if any(space in text for space in _WHITESPACE):
        runs = _digit_runs(text)
        text = text.translate(None, _WHITESPACE)
        if _digit_runs(text) != runs:  # whitespace split a number: "1 2" is not "12"
            return None
    if not (text.startswith(b"[[") and text.endswith(b"]")):
        return None
    skeleton = text.translate(None, _DIGITS)
    nested = skeleton.startswith(b"[[[")
    count, rest = divmod(len(skeleton) - 1, _NESTED_SLOTS if nested else _FLAT_SLOTS)
    if count == 0 or rest or skeleton != _skeleton(count, nested=nested):
        return None
    values = skeleton_values(text, count * PIXELS)
    return None if values is None else values.reshape(count, SIDE, SIDE)


# Skeleton characters per image, with the comma that follows it: "[" + 28 rows of
# "[" + 27 commas + "]" joined by 27 commas + "]", or "[" + 783 commas + "]".
_NESTED_SLOTS = 1 + SIDE * (SIDE + 1) + (SIDE - 1) + 1 + 1
_FLAT_SLOTS = 1 + (PIXELS - 1) + 1 + 1


def skeleton_values(text: bytes, count: int) -> np.ndarray | None:
    """The ``count`` numbers of compact JSON ``text`` whose skeleton is already checked.

    ``uint8``, flat, in order; None unless every slot holds one whole number 0..255
    without a sign or leading zero (the caller then takes the general path).

    Every step is one pass over the text's bytes or one gather at the runs' last
    digits: a boolean-mask selection or arithmetic on int64 index arrays costs several
    times as much at a million values.
    """
    # Two non-digits in front, so the digits before any position can be read by shifting.
    chars = np.frombuffer(b"  " + text, dtype=np.uint8)
    digits = chars - np.uint8(48)  # wraps around for non-digits, so digit <=> value < 10
    is_digit = digits < 10
    if (is_digit[:-1] & (chars[1:] == ord("["))).any() or (
        (chars[:-1] == ord("]")) & is_digit[1:]
    ).any():
        return None
    pair = is_digit[1:] & is_digit[:-1]
    if (pair[2:] & pair[:-2]).any():  # four digits in a row
        return None
    if ((chars[1:-1] == ord("0")) & ~is_digit[:-2] & is_digit[2:]).any():  # leading zero
        return None
    digits *= is_digit  # non-digits count as 0 from here on
    wide = digits.astype(np.uint16)
    # ending[i]: the number whose last digit is at i + 2, read from up to three digits
    ending = wide[2:] + np.uint16(10) * wide[1:-1]
    ending += np.uint16(100) * wide[:-2] * is_digit[1:-1]
    ends = np.flatnonzero(is_digit[2:-1] > is_digit[3:])  # digit, then not a digit
    if len(ends) != count:  # a slot without a number, or two in one
        return None
    values = ending[ends]
    if values.max() > 255:
        return None
    flat: np.ndarray = values.astype(np.uint8)
    return flat


def _digit_runs(text: bytes) -> int:
    is_digit = (np.frombuffer(text, dtype=np.uint8) - np.uint8(48)) < 10
    return int(np.count_nonzero(is_digit[1:] & ~is_digit[:-1])) + int(is_digit[:1].sum())


@functools.lru_cache(maxsize=8)
def _skeleton(count: int, *, nested: bool) -> bytes:
    """The brackets and commas of ``count`` images, all nested or all flat."""
    row = b"[" + b"," * (SIDE - 1) + b"]"
    image = b"[" + b",".join([row] * SIDE) + b"]" if nested else b"[" + b"," * (PIXELS - 1) + b"]"
    return b"[" + b",".join([image] * count) + b"]"
