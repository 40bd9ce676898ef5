"""The real-world test pictures (harness.realworld) are reproducible and readable."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from harness.realworld import STYLES, render


def test_the_same_seed_renders_the_same_files(
    mnist_test_set: tuple[np.ndarray, np.ndarray],
) -> None:
    images, labels = mnist_test_set
    first = render(images, labels, per_style=2, seed=3)
    again = render(images, labels, per_style=2, seed=3)
    other = render(images, labels, per_style=2, seed=4)
    assert [p.data for p in first] == [p.data for p in again]
    assert [p.data for p in first] != [p.data for p in other]
    assert [p.style for p in first] == [name for name in STYLES for _ in range(2)]
    for picture in first:
        assert picture.label == labels[picture.index]
        with Image.open(io.BytesIO(picture.data)) as image:
            assert min(image.size) >= 90
    # Styles have generators of their own: one style alone renders as it does among all.
    alone = render(images, labels, per_style=2, seed=3, styles={"frame": STYLES["frame"]})
    assert [p.data for p in alone] == [p.data for p in first if p.style == "frame"]
