"""MNIST-style preparation of uploaded pictures (mnist_core.images)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from mnist_core.errors import InputError, PayloadTooLarge
from mnist_core.images import fit_and_centre, foreground, grayscale, to_mnist

LIMIT = 10_000_000


def bar(width: int = 60, height: int = 200, side: int = 300, at: int = 20) -> np.ndarray:
    """A white bar (a '1' when upright) on black, off-centre in a square field."""
    canvas = np.zeros((side, side), np.uint8)
    canvas[at : at + height, at : at + width] = 255
    return canvas


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(image.shape)
    weight = image.astype(np.float64)
    return float((ys * weight).sum() / weight.sum()), float((xs * weight).sum() / weight.sum())


def assert_mnist_like(result: np.ndarray) -> None:
    assert result.shape == (28, 28) and result.dtype == np.uint8
    rows, cols = np.nonzero(result > 25)
    assert rows.max() - rows.min() + 1 <= 21 and cols.max() - cols.min() + 1 <= 21
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 >= 19
    cy, cx = centre_of_mass(result)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1
    assert result.max() >= 250
    assert result[0].max() == result[-1].max() == result[:, 0].max() == result[:, -1].max() == 0


DIGIT = bar()
INVERTED = 255 - DIGIT

VARIANTS = {
    "png-l": encode(Image.fromarray(DIGIT)),
    "png-l-dark-on-light": encode(Image.fromarray(INVERTED)),
    "png-rgb": encode(Image.fromarray(np.dstack([DIGIT] * 3))),
    "png-rgba-opaque-dark-on-light": encode(
        Image.fromarray(np.dstack([INVERTED] * 3 + [np.full_like(DIGIT, 255)]), mode="RGBA")
    ),
    "png-rgba-black-ink-on-transparent": encode(
        Image.fromarray(np.dstack([np.zeros_like(DIGIT)] * 3 + [DIGIT]), mode="RGBA")
    ),
    "png-rgba-white-ink-on-transparent": encode(
        Image.fromarray(np.dstack([np.full_like(DIGIT, 255)] * 3 + [DIGIT]), mode="RGBA")
    ),
    "png-p": encode(Image.fromarray(DIGIT).convert("P")),
    "png-1-bit": encode(Image.fromarray(DIGIT).convert("1")),
    "jpeg-l": encode(Image.fromarray(DIGIT), "JPEG", quality=90),
    "jpeg-rgb-dark-on-light": encode(Image.fromarray(np.dstack([INVERTED] * 3)), "JPEG"),
    "bmp-rgb": encode(Image.fromarray(np.dstack([DIGIT] * 3)), "BMP"),
    "gif-p": encode(Image.fromarray(DIGIT).convert("P"), "GIF"),
    "gray-background": encode(Image.fromarray((DIGIT // 2 + 100).astype(np.uint8))),
    "tiny-28x28": encode(Image.fromarray(bar(3, 10, side=28, at=2))),
}


@pytest.mark.parametrize("data", VARIANTS.values(), ids=VARIANTS.keys())
def test_every_format_and_mode_becomes_an_mnist_like_digit(data: bytes) -> None:
    assert_mnist_like(to_mnist(data, max_pixels=LIMIT))


def test_light_and_dark_versions_agree() -> None:
    dark_on_light = to_mnist(VARIANTS["png-l-dark-on-light"], max_pixels=LIMIT)
    light_on_dark = to_mnist(VARIANTS["png-l"], max_pixels=LIMIT)
    np.testing.assert_array_equal(dark_on_light, light_on_dark)


def test_aspect_ratio_is_kept() -> None:
    wide = to_mnist(encode(Image.fromarray(bar(200, 50))), max_pixels=LIMIT)
    rows, cols = np.nonzero(wide > 127)
    assert cols.max() - cols.min() + 1 == 20
    assert 4 <= rows.max() - rows.min() + 1 <= 6


def test_gif_first_frame_is_used() -> None:
    first = Image.fromarray(DIGIT).convert("P")
    second = Image.fromarray(bar(200, 50)).convert("P")
    buffer = io.BytesIO()
    first.save(buffer, format="GIF", save_all=True, append_images=[second])
    from_gif = to_mnist(buffer.getvalue(), max_pixels=LIMIT)
    np.testing.assert_array_equal(from_gif, to_mnist(VARIANTS["gif-p"], max_pixels=LIMIT))


def test_mnist_digits_come_back_nearly_unchanged() -> None:
    # A digit that is already MNIST-style keeps its shape and place.
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:17] = 255
    again = to_mnist(encode(Image.fromarray(digit)), max_pixels=LIMIT)
    assert np.abs(again.astype(int) - digit.astype(int)).mean() < 8


def png_claiming(width: int, height: int) -> bytes:
    data = bytearray(encode(Image.new("L", (1, 1))))
    at = data.index(b"IHDR")
    data[at + 4 : at + 12] = struct.pack(">II", width, height)
    data[at + 17 : at + 21] = struct.pack(">I", zlib.crc32(bytes(data[at : at + 17])))
    return bytes(data)


@pytest.mark.parametrize("side", [4_000, 20_000], ids=["over-our-limit", "over-pillow-limit"])
def test_decompression_bombs_are_refused_before_decoding(side: int) -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        to_mnist(png_claiming(side, side), max_pixels=LIMIT, index=4)
    assert caught.value.reason == "too_many_pixels"
    assert caught.value.to_dict()["index"] == 4


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "invalid_image"),
        (b"GIF89a nonsense", "invalid_image"),
        (VARIANTS["png-l"][:200], "invalid_image"),
        (encode(Image.fromarray(DIGIT), "TIFF"), "invalid_image"),
        (encode(Image.new("L", (50, 50), 0)), "blank_image"),
        (encode(Image.new("RGB", (50, 50), (255, 255, 255))), "blank_image"),
    ],
    ids=["empty", "bad-gif", "truncated-png", "tiff-not-accepted", "all-black", "all-white"],
)
def test_unusable_files(data: bytes, reason: str) -> None:
    with pytest.raises(InputError) as caught:
        to_mnist(data, max_pixels=LIMIT, index=2)
    assert caught.value.reason == reason
    assert caught.value.to_dict()["index"] == 2


def test_steps_individually() -> None:
    gray = grayscale(Image.fromarray(INVERTED))
    ink = foreground(gray)
    assert ink.max() == 255 and ink[0, 0] == 0
    centred = fit_and_centre(ink)
    assert_mnist_like(centred)


def test_real_world_steps_find_the_digit_on_ruled_shadowed_paper() -> None:
    # A dark bar on ruled paper, half of it in shadow: the result is the bar alone.
    page = np.full((300, 300), 235.0, np.float32)
    page[::30, :] = 180.0
    page[:, :150] *= 0.65
    page[60:260, 130:160] = 40.0
    result = to_mnist(encode(Image.fromarray(page.astype(np.uint8))), max_pixels=LIMIT)
    assert_mnist_like(result)
    cols = np.nonzero((result > 127).any(axis=0))[0]
    assert cols.max() - cols.min() + 1 <= 6  # the bar, not the lines
