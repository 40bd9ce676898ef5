"""The NumPy image operations behind digit finding (mnist_core.morphology, mnist_core.locate)."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_core.locate import choose, digit_mask, ink_level, without_lines
from mnist_core.morphology import (
    block_max,
    box_mean,
    components,
    otsu,
    paint,
    run_lengths,
    running,
)

RNG = np.random.default_rng(0)


def naive_window(image: np.ndarray, size: int, reduce: object) -> np.ndarray:
    before, after = (size - 1) // 2, size // 2
    padded = np.pad(image, ((before, after), (before, after)), mode="edge")
    out = np.empty_like(image)
    for y in range(image.shape[0]):
        for x in range(image.shape[1]):
            out[y, x] = reduce(padded[y : y + size, x : x + size])  # type: ignore[operator]
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_running_max_min_and_mean_match_a_direct_window(size: int) -> None:
    image = RNG.random((9, 7)).astype(np.float32)
    np.testing.assert_array_equal(
        running(image, size, grow=True), naive_window(image, size, np.max)
    )
    np.testing.assert_array_equal(
        running(image, size, grow=False), naive_window(image, size, np.min)
    )
    np.testing.assert_allclose(box_mean(image, size), naive_window(image, size, np.mean), 1e-5)


def test_block_max_covers_partial_tiles() -> None:
    image = np.arange(30, dtype=np.float32).reshape(5, 6)
    np.testing.assert_array_equal(block_max(image, 4), [[21, 23], [27, 29]])


def test_run_lengths_along_rows_and_columns() -> None:
    mask = np.array([[1, 1, 0, 1], [0, 1, 0, 1], [0, 1, 0, 0]], bool)
    np.testing.assert_array_equal(
        run_lengths(mask, axis=1), [[2, 2, 0, 1], [0, 1, 0, 1], [0, 1, 0, 0]]
    )
    np.testing.assert_array_equal(
        run_lengths(mask, axis=0), [[1, 3, 0, 2], [0, 3, 0, 2], [0, 3, 0, 0]]
    )


def test_otsu_splits_two_levels() -> None:
    histogram = np.zeros(256)
    histogram[40] = 500
    histogram[200] = 100
    assert 40 <= otsu(histogram) < 200


def test_components_are_eight_connected_and_sorted_by_area() -> None:
    mask = np.zeros((6, 8), bool)
    mask[0, 0:3] = True
    mask[1, 3] = True  # touches the run above only at a corner
    mask[4, 5:7] = True
    mask[5, 0] = True
    found = components(mask)
    assert [(c.area, c.top, c.left, c.bottom, c.right) for c in found] == [
        (4, 0, 0, 2, 4),
        (2, 4, 5, 5, 7),
        (1, 5, 0, 6, 1),
    ]
    np.testing.assert_array_equal(paint(mask.shape, found), mask)
    assert components(np.zeros((3, 3), bool)) == []


def test_pieces_near_the_digit_are_kept_and_far_specks_dropped() -> None:
    mask = np.zeros((100, 100), bool)
    mask[20:60, 40:46] = True  # the digit's main stroke
    mask[14:18, 40:60] = True  # a detached bar just above it
    mask[95:97, 2:4] = True  # a speck in a far corner
    chosen = choose(components(mask))
    assert [c.area for c in chosen] == [240, 80]


def test_ruled_lines_go_and_the_strokes_they_cross_stay() -> None:
    mask = np.zeros((100, 100), bool)
    mask[30, :] = mask[60, :] = True  # ruled lines
    mask[20:80, 45:55] = True  # a thick stroke across them
    kept = without_lines(mask)
    assert kept[20:80, 45:55].all()
    assert not kept[30, :40].any() and not kept[60, 60:].any()


def test_a_lone_edge_to_edge_stroke_is_not_taken_for_a_line() -> None:
    ink = np.zeros((28, 28), np.uint8)
    ink[1:27, 13:15] = 255  # a 1 from top to bottom
    mask = digit_mask(ink, 100)
    assert mask is not None and mask[1:27, 13:15].all()


def test_ink_is_relative_to_the_paper() -> None:
    # Dark ink on grey paper: the darkening relative to the paper, whichever the polarity.
    page = np.full((60, 120), 200.0, np.float32)
    page[20:40, 25:30] = 40.0
    ink = ink_level(page)
    assert float(ink[30, 27]) == pytest.approx(0.8) and float(ink[5, 5]) == 0.0
    # Light strokes on a dark background are found the same way.
    np.testing.assert_allclose(ink_level(255.0 - page), ink, atol=1e-5)
