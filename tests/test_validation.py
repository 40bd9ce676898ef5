"""Strict input checks: JSON images, arrays and .npy bytes (mnist_core.validation, .npy)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from mnist_core.errors import InputError, PayloadTooLarge
from mnist_core.npy import images_from_npy, load_npy
from mnist_core.validation import (
    check_count,
    fast_json_images,
    images_from_array,
    images_from_json,
    to_pixels,
)

RNG = np.random.default_rng(0)
BATCH = RNG.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
ZERO = [0] * 784


def with_value(value: object, at: int = 3) -> list[object]:
    image: list[object] = list(ZERO)
    image[at] = value
    return image


def error_of(images: object, **kwargs: object) -> InputError:
    with pytest.raises(InputError) as caught:
        images_from_json(images, max_images=100, **kwargs)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize("may_hold_booleans", [True, False])
@pytest.mark.parametrize("form", ["nested", "flat", "mixed"])
def test_valid_json_images_round_trip(form: str, may_hold_booleans: bool) -> None:
    nested, flat = BATCH.tolist(), BATCH.reshape(5, 784).tolist()
    images = {"nested": nested, "flat": flat, "mixed": [nested[0], *flat[1:]]}[form]
    result = images_from_json(images, max_images=5, may_hold_booleans=may_hold_booleans)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, BATCH)


def test_whole_floats_are_pixels_and_fractions_are_refused() -> None:
    image = [float(v) for v in range(200)] + [255.0] * 584
    result = images_from_json([image], max_images=1)
    assert result[0].reshape(-1)[:200].tolist() == list(range(200))
    assert result[0].reshape(-1)[-1] == 255
    error = error_of([[0] * 784, [*image[:-1], 254.5]])
    assert (error.reason, error.details) == ("not_integer", {"index": 1})
    assert "multiplied by 255" in error.message


@pytest.mark.parametrize(
    ("images", "reason", "index"),
    [
        ([ZERO, [ZERO]], "invalid_shape", 1),
        ([ZERO, ZERO, [0] * 785], "invalid_shape", 2),
        ([[[0] * 28] * 27 + [[0] * 27]], "invalid_shape", 0),
        ([ZERO, 5], "invalid_shape", 1),
        ([ZERO, {"pixels": ZERO}], "invalid_shape", 1),
        ([with_value("1")], "non_numeric", 0),
        ([ZERO, with_value(None)], "non_numeric", 1),
        ([with_value([1])], "invalid_shape", 0),
        ([ZERO, with_value(float("nan"))], "not_finite", 1),
        ([with_value(float("-inf"))], "not_finite", 0),
        ([ZERO, with_value(256)], "out_of_range", 1),
        ([with_value(-1)], "out_of_range", 0),
        ([with_value(255.6)], "out_of_range", 0),
        ([with_value(10**30)], "out_of_range", 0),
    ],
)
@pytest.mark.parametrize("may_hold_booleans", [True, False])
def test_bad_images_name_the_first_offender(
    images: list[object], reason: str, index: int, may_hold_booleans: bool
) -> None:
    error = error_of(images, may_hold_booleans=may_hold_booleans)
    assert error.reason == reason
    assert error.to_dict()["index"] == index
    assert f"image {index}" in error.message


def test_booleans_are_not_numbers() -> None:
    # The caller passes may_hold_booleans=True whenever the JSON text spells true/false.
    error = error_of([ZERO, ZERO, with_value(True)], may_hold_booleans=True)
    assert (error.reason, error.to_dict()["index"]) == ("non_numeric", 2)


@pytest.mark.parametrize(
    ("images", "reason"),
    [([], "empty_batch"), ("zeros", "invalid_type"), ({"0": ZERO}, "invalid_type")],
)
def test_bad_batches(images: object, reason: str) -> None:
    error = error_of(images)
    assert error.reason == reason
    assert error.to_dict()["field"] == "images"


def test_too_many_images_is_payload_too_large() -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        images_from_json([ZERO] * 3, max_images=2)
    assert caught.value.to_dict() == {
        "error": "3 images in one request; the limit is 2",
        "reason": "too_many_images",
        "field": "images",
        "count": 3,
        "limit": 2,
    }
    check_count(2, 2)


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.float32, np.uint16])
@pytest.mark.parametrize("shape", [(5, 28, 28), (5, 784)])
def test_arrays_of_numeric_types(dtype: type, shape: tuple[int, ...]) -> None:
    result = images_from_array(BATCH.astype(dtype).reshape(shape), max_images=5)
    np.testing.assert_array_equal(result, BATCH)


@pytest.mark.parametrize(
    ("array", "reason"),
    [
        (np.zeros((2, 28, 27), np.uint8), "invalid_shape"),
        (np.zeros((784,), np.uint8), "invalid_shape"),
        (np.zeros((1, 1, 28, 28), np.uint8), "invalid_shape"),
        (np.zeros((2, 784), bool), "invalid_dtype"),
        (np.zeros((2, 784), "U1"), "invalid_dtype"),
        (np.zeros((0, 784), np.uint8), "empty_batch"),
        (np.full((2, 784), 300, np.int32), "out_of_range"),
    ],
)
def test_bad_arrays(array: np.ndarray, reason: str) -> None:
    with pytest.raises(InputError) as caught:
        images_from_array(array, max_images=10)
    assert caught.value.reason == reason


def test_to_pixels_reports_offset_indices() -> None:
    batch = np.zeros((3, 28, 28), np.float64)
    batch[2, 0, 0] = np.nan
    with pytest.raises(InputError) as caught:
        to_pixels(batch, first_index=10)
    assert caught.value.to_dict()["index"] == 12


# --- fast_json_images: must agree exactly with the general path, or decline -------------


def body(images: object, **dump_options: object) -> bytes:
    return json.dumps({"images": images}, **dump_options).encode()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "encoded",
    [
        body(BATCH.tolist()),
        body(BATCH.reshape(5, 784).tolist()),
        body(BATCH.tolist(), separators=(",", ":")),
        body(BATCH.tolist(), indent=2),
        b'\n {"images" :' + body(BATCH.tolist())[11:-1] + b"}\r\n",
    ],
    ids=["nested", "flat", "compact", "indented", "odd-spacing"],
)
def test_fast_reader_matches_the_general_path(encoded: bytes) -> None:
    fast = fast_json_images(encoded)
    assert fast is not None
    general = images_from_json(json.loads(encoded)["images"], max_images=10)
    np.testing.assert_array_equal(fast, general)


@pytest.mark.parametrize("value", [0, 7, 10, 99, 100, 255])
@pytest.mark.parametrize("at", [0, 1, 27, 28, 782, 783])
@pytest.mark.parametrize("nested", [True, False], ids=["nested", "flat"])
def test_fast_reader_reads_every_width_of_number_in_every_corner(
    value: int, at: int, nested: bool
) -> None:
    # The reader finds each number by its last digit and the digits just before it, so
    # the first and last slots of the first and last image are where it could misread.
    images = np.zeros((3, 784), np.uint8)
    images[0, at] = images[2, at] = value
    images[1, 783 - at] = value
    listed = images.reshape(3, 28, 28).tolist() if nested else images.tolist()
    encoded = body(listed, separators=(",", ":"))
    fast = fast_json_images(encoded)
    assert fast is not None
    np.testing.assert_array_equal(fast, images.reshape(3, 28, 28))


@pytest.mark.parametrize(
    "encoded",
    [
        body([]),
        body([ZERO[:-1]]),
        body([BATCH[0].tolist(), BATCH[1].reshape(-1).tolist()]),  # mixed forms
        body([with_value(256)]),
        body([with_value(1000)]),
        body([with_value(1.5)]),
        body([with_value(-1)]),
        body([with_value(True)]),
        body([with_value("7")]),
        b'{"images": [' + b",".join([b"0"] * 783) + b",007]}",  # leading zeros are not JSON
        b'{"images": [[05,' + b",".join([b"0"] * 783) + b"]]}",  # ... in the very first slot
        b'{"images": [[' + b",".join([b"0"] * 783) + b",0255]]}",  # four digits, value <= 255
        b'{"images": [[' + b",".join([b"0"] * 783) + b",00]]}",
        b'{"images": [[' + b",".join([b"0"] * 784) + b']], "extra": 1}',
        b'{"images": [[' + b",".join([b"0"] * 784) + b"],]}",  # trailing comma
        b'{"images": [[' + b",".join([b"0"] * 784) + b"]]",  # unterminated
        b'{"images": [[' + b",,".join([b"0"] * 392) + b"]]}",  # 392 numbers, double commas
        b'{"images": [[' + b" ".join([b"0"] * 784) + b"]]}",  # spaces instead of commas
        b'{"images": [[' + b",".join([b"0"] * 1568) + b"]]}",  # two images in one list
        b'{"images": [[,' + b",".join([b"0"] * 783) + b"]5]}",  # empty slot, run moved out
        b'{"images": [5[,' + b",".join([b"0"] * 783) + b"]]}",  # the same, before a bracket
        (b'{"images": [[' + b",".join([b"0"] * 784) + b"]]}").replace(b"0,0", b"0 0,", 1),
        b"[]",
        b"",
    ],
)
def test_fast_reader_declines_anything_unusual(encoded: bytes) -> None:
    assert fast_json_images(encoded) is None


def test_fast_reader_keeps_a_trailing_space_body() -> None:
    # Trailing whitespace after the object is valid JSON and still fast.
    assert fast_json_images(body([ZERO]) + b"  \n") is not None


# --- .npy --------------------------------------------------------------------------------


def npy(array: np.ndarray, **save_options: object) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, **save_options)  # type: ignore[arg-type]
    return buffer.getvalue()


@pytest.mark.parametrize("shape", [(5, 28, 28), (5, 784)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_npy_round_trip(shape: tuple[int, ...], order: str) -> None:
    array = np.asarray(BATCH.reshape(shape), order=order)
    loaded = load_npy(npy(array))
    np.testing.assert_array_equal(loaded, array)
    np.testing.assert_array_equal(images_from_npy(npy(array), max_images=5), BATCH)


def test_npy_version_2_header() -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, BATCH, version=(2, 0))
    np.testing.assert_array_equal(load_npy(buffer.getvalue()), BATCH)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (npy(np.array([{"a": 1}, None]), allow_pickle=True), "pickled_npy"),
        (npy(BATCH)[:-1], "invalid_npy"),
        (npy(BATCH) + b"\x00", "invalid_npy"),
        (b"\x93NUMPY\x01\x00garbage", "invalid_npy"),
        (b"\x93NUMPY\x09\x00" + npy(BATCH)[8:], "invalid_npy"),
        (b"PK\x03\x04 an npz archive", "invalid_npy"),
        (b"", "invalid_npy"),
    ],
    ids=["pickle", "truncated", "trailing-bytes", "bad-header", "bad-version", "npz", "empty"],
)
def test_bad_npy(data: bytes, reason: str) -> None:
    with pytest.raises(InputError) as caught:
        load_npy(data)
    assert caught.value.reason == reason
    assert caught.value.to_dict()["field"] == "array"


def test_npy_header_claiming_a_huge_shape_allocates_nothing() -> None:
    buffer = io.BytesIO()
    header = {"descr": "|u1", "fortran_order": False, "shape": (10**11, 784)}
    np.lib.format.write_array_header_1_0(buffer, header)
    with pytest.raises(InputError) as caught:
        load_npy(buffer.getvalue() + bytes(784))
    assert caught.value.reason == "invalid_npy"
