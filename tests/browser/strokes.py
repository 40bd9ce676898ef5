"""Pen strokes from an MNIST digit, to draw it on the demo page as a person would.

The digit's ink is thinned to a one-pixel skeleton (Zhang and Suen's thinning), the
skeleton is walked into ordered paths (from end points first, so a path follows the pen
rather than the raster order), and the stroke width is the ink area over the skeleton
length: a thick digit is drawn thick, a thin one thin.
"""

from __future__ import annotations

import itertools

import numpy as np

INK = 128
"""Pixels at least this bright are ink (MNIST digits are white on black)."""
NEIGHBOURS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
"""P2..P9 of Zhang and Suen, clockwise from north."""

Path = list[tuple[int, int]]


def skeleton(image: np.ndarray) -> np.ndarray:
    """The one-pixel-wide skeleton of ``image``'s ink, as booleans."""
    grid = np.pad(image >= INK, 1)
    while True:
        changed = False
        for step in (0, 1):
            p = [np.roll(grid, (-dy, -dx), axis=(0, 1)) for dy, dx in NEIGHBOURS]
            count = sum(x.astype(int) for x in p)
            ring = [*p, p[0]]
            transitions = sum((~a & b).astype(int) for a, b in itertools.pairwise(ring))
            if step == 0:
                first, second = p[0] & p[2] & p[4], p[2] & p[4] & p[6]
            else:
                first, second = p[0] & p[2] & p[6], p[0] & p[4] & p[6]
            remove = grid & (count >= 2) & (count <= 6) & (transitions == 1) & ~first & ~second
            if remove.any():
                grid &= ~remove
                changed = True
        if not changed:
            return grid[1:-1, 1:-1]


def paths(bones: np.ndarray) -> list[Path]:
    """The skeleton walked into pen paths of (row, column) points."""
    pixels = {(int(y), int(x)) for y, x in zip(*np.nonzero(bones), strict=True)}

    def around(point: tuple[int, int]) -> list[tuple[int, int]]:
        y, x = point
        # Straight neighbours first: the walk then follows the line, not its corners.
        order = sorted(NEIGHBOURS, key=lambda d: abs(d[0]) + abs(d[1]))
        return [(y + dy, x + dx) for dy, dx in order if (y + dy, x + dx) in pixels]

    unvisited = set(pixels)
    found: list[Path] = []
    while unvisited:
        ends = [p for p in unvisited if len(around(p)) == 1]
        start = min(ends or unvisited)
        path = [start]
        unvisited.discard(start)
        while True:
            ahead = [n for n in around(path[-1]) if n in unvisited]
            if not ahead:
                # Join a branch to the junction it grew from, so no gap is left.
                behind = [n for n in around(path[-1]) if len(path) < 2 or n != path[-2]]
                joined = [n for n in behind if n not in path]
                if joined:
                    path.append(joined[0])
                break
            path.append(ahead[0])
            unvisited.discard(ahead[0])
        found.append(path)
    return found


def strokes(image: np.ndarray) -> tuple[list[Path], float]:
    """Pen paths of a 28x28 digit and its stroke width, both in image pixels."""
    bones = skeleton(image)
    width = float((image >= INK).sum()) / max(1, int(bones.sum()))
    return paths(bones), width
