"""Payloads carry real test images, encoded so that an independent decoder gets them back."""

from __future__ import annotations

import email.parser
import io

import numpy as np
import orjson
import pytest
from PIL import Image

from load.payloads import (
    TestImages,
    batch_payloads,
    batch_sizes,
    json_payload,
    load_test_images,
    npy_payload,
    png_payload,
)


@pytest.fixture(scope="module")
def test_images(mnist_test_set: tuple[np.ndarray, np.ndarray]) -> TestImages:
    return TestImages(*mnist_test_set)


def _parts(content_type: str, body: bytes) -> list[tuple[str, str | None, bytes]]:
    """(field name, filename, content) of each part, decoded by the stdlib email parser."""
    message = email.parser.BytesParser().parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    assert message.is_multipart()
    parts = []
    for part in message.get_payload():
        parts.append(
            (
                part.get_param("name", header="content-disposition"),
                part.get_filename(),
                part.get_payload(decode=True),
            )
        )
    return parts


def test_load_test_images_reads_the_labelled_test_split(
    mnist_data_dir: object, mnist_test_set: tuple[np.ndarray, np.ndarray]
) -> None:
    loaded = load_test_images(str(mnist_data_dir))
    assert loaded.images.shape == (10_000, 28, 28)
    assert loaded.images.dtype == np.uint8
    np.testing.assert_array_equal(loaded.labels, mnist_test_set[1])


def test_window_wraps_around_the_end(test_images: TestImages) -> None:
    window = test_images.window(9_998, 4)
    np.testing.assert_array_equal(window.labels, test_images.labels[[9_998, 9_999, 0, 1]])
    np.testing.assert_array_equal(window.images[2], test_images.images[0])


def test_json_payload_holds_integer_pixels_and_true_labels(test_images: TestImages) -> None:
    window = test_images.window(100, 3)
    payload = json_payload(window)
    decoded = orjson.loads(payload.body)
    assert payload.content_type == "application/json"
    np.testing.assert_array_equal(np.array(decoded["images"], dtype=np.uint8), window.images)
    assert isinstance(decoded["images"][0][14][14], int)
    assert payload.labels == tuple(int(v) for v in window.labels)


def test_npy_payload_is_a_multipart_array_field(test_images: TestImages) -> None:
    window = test_images.window(5, 64)
    payload = npy_payload(window)
    [(field, filename, content)] = _parts(payload.content_type, payload.body)
    assert field == "array"
    assert filename.endswith(".npy")
    array = np.load(io.BytesIO(content), allow_pickle=False)
    assert array.dtype == np.uint8
    np.testing.assert_array_equal(array, window.images)


def test_png_payload_has_one_named_file_per_image(test_images: TestImages) -> None:
    window = test_images.window(40, 3)
    payload = png_payload(window, first_index=40)
    parts = _parts(payload.content_type, payload.body)
    assert [p[0] for p in parts] == ["images"] * 3
    assert tuple(p[1] for p in parts) == payload.filenames
    assert len(set(payload.filenames)) == 3
    for (_, _, content), expected in zip(parts, window.images, strict=True):
        with Image.open(io.BytesIO(content)) as image:
            assert image.format == "PNG"
            np.testing.assert_array_equal(np.asarray(image), expected)


@pytest.mark.parametrize(("low", "high", "count"), [(64, 1000, 8), (1, 1, 3), (5, 6, 2)])
def test_batch_sizes_stay_in_range_and_reach_both_ends(low: int, high: int, count: int) -> None:
    sizes = batch_sizes(low, high, count)
    assert len(sizes) == count
    assert all(low <= s <= high for s in sizes)
    assert min(sizes) == low
    assert max(sizes) == (high if count > 1 else low)


def test_batch_sizes_can_be_none() -> None:
    assert batch_sizes(64, 1000, 0) == []


@pytest.mark.parametrize(("low", "high"), [(0, 5), (10, 9)])
def test_batch_sizes_reject_empty_ranges(low: int, high: int) -> None:
    with pytest.raises(ValueError, match="batch sizes"):
        batch_sizes(low, high, 4)


def test_batch_payloads_match_requested_sizes(test_images: TestImages) -> None:
    payloads = batch_payloads(test_images, [64, 200], "npy")
    assert [len(p.labels) for p in payloads] == [64, 200]
    with pytest.raises(ValueError, match="unknown encoding"):
        batch_payloads(test_images, [1], "xml")
