"""``POST /predict_image`` on pictures rendered from MNIST test digits."""

from __future__ import annotations

import io
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from PIL import Image


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def plain(digit: np.ndarray) -> bytes:
    return encode(Image.fromarray(digit, mode="L"))


def dark_on_light_rgba(digit: np.ndarray) -> bytes:
    ink = 255 - digit
    opaque = np.full_like(digit, 255)
    return encode(Image.fromarray(np.dstack([ink, ink, ink, opaque]), mode="RGBA"))


def upscaled_10x(digit: np.ndarray) -> bytes:
    return encode(Image.fromarray(digit, mode="L").resize((280, 280), Image.Resampling.BILINEAR))


def palette_gif(digit: np.ndarray) -> bytes:
    return encode(Image.fromarray(digit, mode="L").convert("P"), "GIF")


def rgb_jpeg(digit: np.ndarray) -> bytes:
    return encode(Image.fromarray(np.dstack([digit] * 3), mode="RGB"), "JPEG")


RENDERERS: dict[str, Callable[[np.ndarray], bytes]] = {
    "png-l": plain,
    "png-rgba-dark-on-light": dark_on_light_rgba,
    "png-10x-upscale": upscaled_10x,
    "gif-p": palette_gif,
    "jpeg-rgb": rgb_jpeg,
}
COUNT = 1000


@pytest.mark.parametrize("render", RENDERERS.values(), ids=RENDERERS.keys())
def test_rendered_test_digits_are_recognised(
    service_url: str, mnist_test_set: tuple[np.ndarray, np.ndarray], render: Callable[..., bytes]
) -> None:
    # Every 10th test digit, so the sample spans the whole test set.
    digits, labels = mnist_test_set[0][::10][:COUNT], mnist_test_set[1][::10][:COUNT]
    files = [
        ("images", (f"digit-{i}.img", render(digit), "application/octet-stream"))
        for i, digit in enumerate(digits)
    ]
    response = httpx.post(f"{service_url}/predict_image", files=files, timeout=60)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["filename"] for p in predictions] == [f"digit-{i}.img" for i in range(COUNT)]
    predicted = np.array([p["label"] for p in predictions])
    accuracy = float((predicted == labels).mean())
    assert accuracy >= 0.97, accuracy
    for prediction in predictions:
        assert abs(sum(prediction["probabilities"]) - 1.0) < 1e-5
