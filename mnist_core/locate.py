"""Finding the digit in a real picture: the paper, the ink, and which ink is the digit.

Photos and scans are not white-on-black: the paper is lit unevenly and shadowed, it has
grain, the camera adds noise and JPEG adds blocks, and the digit shares the page with
ruled lines or a frame. The steps, each kept because switching it off lowered the
accuracy of some style of ``harness.realworld`` (see README, "Real pictures"):

1. Polarity from the picture's own levels: the background is what most pixels are, so
   the ink lies on the far side of the median (a rule on the border alone flipped on
   frames drawn at the edge and on shadowed borders).
2. Ink as the relative darkening ``1 - pixel / paper`` against the paper's level, and
   Otsu's threshold for the ink mask (a fixed fraction of the darkest ink took noise
   and shadow for ink).
3. Long thin horizontal and vertical runs (ruled and squared paper, frames) removed.
4. Connected components on a coarse copy of the mask: the largest is the digit, with
   the pieces near it that are big enough to be strokes (a detached bar of a 5 or 7).

Two steps were tried and dropped, as switching them off changed no style by more than
one picture in 200: the paper's level estimated locally (a grey closing on a coarse
grid) rather than once, and a blur against noise before the threshold.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .morphology import Component, components, otsu, paint, run_lengths

STATS_SIDE = 128
"""Polarity is judged on a copy at most this many pixels a side."""
MIN_PAPER = 16.0
"""Darker than this the paper gives no reliable scale; ink is measured against it then."""
LABEL_SIDE = 160
"""Components are found on a copy of the mask at most about this many pixels a side."""
LINE_RUN = 0.7
"""A run of ink this fraction of the picture's width (or height) long is a ruled line..."""
LINE_THICKNESS = 0.04
"""...if it is at most this fraction of the picture thick where it runs."""
NEAR = 0.5
"""Pieces within this fraction of the digit's size from its box belong to it..."""
MIN_PIECE = 0.03
"""...if their area is at least this fraction of the largest piece's."""


def ink_level(gray: np.ndarray) -> np.ndarray:
    """Float32 0..1: how much darker than the paper (or brighter than the background, for
    light ink) every pixel is."""
    # The background is the majority: light ink sits far above the median, dark ink far
    # below it. Turn light-on-dark pictures into dark-on-light ones. The levels are read
    # from an area-averaged copy, so single noisy pixels do not decide.
    small = shrunk(gray, STATS_SIDE)
    low, median, high = float(small.min()), float(np.median(small)), float(small.max())
    light_ink = (high - median) > (median - low)
    page = 255.0 - gray if light_ink else gray
    paper = max(255.0 - median if light_ink else median, MIN_PAPER)
    ink: np.ndarray = np.clip((paper - page) / paper, 0.0, 1.0).astype(np.float32)
    return ink


def shrunk(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` area-averaged to at most ``side`` pixels a side."""
    height, width = image.shape
    factor = max(height, width) / side
    if factor <= 1:
        return image
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    resized = Image.fromarray(image.astype(np.float32), mode="F").resize(size, Image.Resampling.BOX)
    return np.asarray(resized, dtype=np.float32)


def levels(ink: np.ndarray) -> np.ndarray:
    """Ink 0..1 as uint8 0..255: eight bits are plenty to find the digit's outline."""
    return np.rint(ink * 255.0).astype(np.uint8)


def threshold(levels: np.ndarray) -> int:
    """Otsu's cut between paper and ink (uint8 levels), never below a tenth of the
    strongest ink."""
    return max(otsu(np.bincount(levels.ravel(), minlength=256)), int(levels.max()) // 10)


def without_lines(mask: np.ndarray) -> np.ndarray:
    """``mask`` minus long thin horizontal and vertical runs: ruled lines, grids, frames.

    A pixel on a long horizontal run stays if the ink is thick vertically there: that is
    a stroke the line crosses, not the line.
    """
    height, width = mask.shape
    thin = max(2, round(LINE_THICKNESS * max(height, width)))
    across = run_lengths(mask, axis=1)
    down = run_lengths(mask, axis=0)
    long_across = across >= LINE_RUN * width
    long_down = down >= LINE_RUN * height
    # Where two lines cross (a grid, a frame's corner) both runs are long.
    lines = (
        (long_across & (down <= thin)) | (long_down & (across <= thin)) | (long_across & long_down)
    )
    kept: np.ndarray = mask & ~lines
    return kept


def digit_mask(ink: np.ndarray, cut: float | int) -> np.ndarray | None:
    """Pixels of the digit (the chosen components) at the size of ``ink``; None if none."""
    height, width = ink.shape
    block = max(1, -(-max(height, width) // LABEL_SIDE))
    # The coarse copy keeps a pixel if any pixel of its block is ink, so thin strokes
    # survive and pieces a hair apart join.
    coarse = any_in_blocks(ink > cut, block)
    found = components(without_lines(coarse))
    if not found:
        # Nothing but "lines": a lone 1 drawn from edge to edge is one, so keep them.
        found = components(coarse)
    if not found:
        return None
    chosen = choose(found)
    selected = paint(coarse.shape, chosen)
    if block > 1:
        selected = np.repeat(np.repeat(selected, block, axis=0), block, axis=1)
        selected = selected[:height, :width]
    result: np.ndarray = selected & (ink > cut)
    return result


def any_in_blocks(mask: np.ndarray, block: int) -> np.ndarray:
    """A coarse mask: a pixel per ``block`` x ``block`` tile, set if any of its pixels is."""
    if block <= 1:
        return mask
    tiles = Image.fromarray(mask.astype(np.uint8) * 255, mode="L").reduce(block)
    return np.asarray(tiles) > 0


def choose(found: list[Component]) -> list[Component]:
    """The largest component and the pieces near it big enough to be part of the digit."""
    main = found[0]
    reach = NEAR * max(main.height, main.width)
    chosen = [main]
    for piece in found[1:]:
        if piece.area < MIN_PIECE * main.area:
            break  # sorted by area: the rest are smaller still
        if (
            piece.bottom >= main.top - reach
            and piece.top <= main.bottom + reach
            and piece.right >= main.left - reach
            and piece.left <= main.right + reach
        ):
            chosen.append(piece)
    return chosen
