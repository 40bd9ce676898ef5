"""Small image operations in NumPy for finding a digit in a picture.

Square max/min filters (separable, so a window of k costs k per pixel and axis, not k*k
as Pillow's rank filters do), block maxima, run lengths, Otsu's threshold and connected
components found from row runs. SciPy has all of these; these few lines save the
serving install a dependency of about 100 MB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def running(image: np.ndarray, size: int, *, grow: bool) -> np.ndarray:
    """Max (``grow``) or min over a ``size`` x ``size`` square round every pixel.

    The edge is padded with the image's own edge values, so a border does not bleed in.
    """
    if size <= 1:
        return image
    reduce = np.max if grow else np.min
    before, after = (size - 1) // 2, size // 2
    out = image
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (before, after)
        padded = np.pad(out, pad, mode="edge")
        out = reduce(np.lib.stride_tricks.sliding_window_view(padded, size, axis=axis), axis=-1)
    return np.ascontiguousarray(out)


def box_mean(image: np.ndarray, size: int) -> np.ndarray:
    """The mean over a ``size`` x ``size`` square round every pixel (edges repeated)."""
    if size <= 1:
        return image
    before, after = (size - 1) // 2, size // 2
    out = image.astype(np.float32)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (before + 1, after)
        sums = np.cumsum(np.pad(out, pad, mode="edge"), axis=axis, dtype=np.float64)
        upper = np.take(sums, np.arange(size, sums.shape[axis]), axis=axis)
        lower = np.take(sums, np.arange(0, sums.shape[axis] - size), axis=axis)
        out = ((upper - lower) / size).astype(np.float32)
    return out


def _tiles(image: np.ndarray, block: int) -> np.ndarray:
    height, width = image.shape
    rows, cols = -(-height // block), -(-width // block)
    padded = np.pad(image, ((0, rows * block - height), (0, cols * block - width)), mode="edge")
    return padded.reshape(rows, block, cols, block)


def block_max(image: np.ndarray, block: int) -> np.ndarray:
    """The maximum of each ``block`` x ``block`` tile (the last partial tiles included)."""
    if block <= 1:
        return image
    reduced: np.ndarray = _tiles(image, block).max(axis=(1, 3))
    return reduced


def block_mean(image: np.ndarray, block: int) -> np.ndarray:
    """The mean of each ``block`` x ``block`` tile (the last partial tiles edge-padded)."""
    if block <= 1:
        return image
    reduced: np.ndarray = _tiles(image, block).mean(axis=(1, 3), dtype=np.float32)
    return reduced


def run_lengths(mask: np.ndarray, axis: int) -> np.ndarray:
    """For every set pixel, the length of the run of set pixels along ``axis`` through it."""
    m = mask if axis == 1 else mask.T
    flat = np.pad(m, ((0, 0), (1, 0))).astype(bool)
    starts = flat[:, 1:] & ~flat[:, :-1]
    ids = np.cumsum(starts.ravel()).reshape(m.shape) * m
    counts = np.bincount(ids.ravel())
    counts[0] = 0
    lengths: np.ndarray = counts[ids]
    return lengths if axis == 1 else lengths.T


def otsu(histogram: np.ndarray) -> int:
    """Otsu's threshold of a 256-bin histogram: levels above it are the brighter class."""
    weights = histogram.astype(np.float64)
    levels = np.arange(len(weights), dtype=np.float64)
    below = np.cumsum(weights)
    total = below[-1]
    if total == 0:
        return len(weights) // 2
    mass = np.cumsum(weights * levels)
    above = total - below
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mass[-1] * below - mass * total) ** 2 / (below * above)
    return int(np.argmax(np.nan_to_num(between, nan=0.0, posinf=0.0)))


@dataclass
class Component:
    """An 8-connected set of pixels: its size, bounding box (end exclusive) and runs."""

    area: int
    top: int
    left: int
    bottom: int
    right: int
    runs: list[tuple[int, int, int]]
    """(row, start, end) of every run of the component, end exclusive."""

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left


def components(mask: np.ndarray) -> list[Component]:
    """The 8-connected components of ``mask``, largest first.

    Runs of set pixels are found per row with NumPy; a union-find joins runs of
    neighbouring rows that touch, so Python loops over runs, not pixels.
    """
    padded = np.pad(mask.astype(np.int8), ((0, 0), (1, 1)))
    edges = np.diff(padded, axis=1)
    starts = np.argwhere(edges == 1)
    ends = np.argwhere(edges == -1)[:, 1]
    rows, begins = starts[:, 0].tolist(), starts[:, 1].tolist()
    stops = ends.tolist()
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    previous_row_start = previous_row_end = 0  # runs of row r-1 are [start, end)
    current_start = 0
    for i, row in enumerate(rows):
        if i == 0 or row != rows[i - 1]:
            if i > 0 and row == rows[i - 1] + 1:
                previous_row_start, previous_row_end = current_start, i
            else:
                previous_row_start = previous_row_end = i
            current_start = i
        for j in range(previous_row_start, previous_row_end):
            # 8-connectivity: runs touch when they overlap or meet at a corner.
            if begins[j] <= stops[i] and begins[i] <= stops[j]:
                a, b = find(i), find(j)
                if a != b:
                    parent[a] = b
    groups: dict[int, list[int]] = {}
    for i in range(len(rows)):
        groups.setdefault(find(i), []).append(i)
    found = []
    for members in groups.values():
        runs = [(rows[i], begins[i], stops[i]) for i in members]
        found.append(
            Component(
                area=sum(end - start for _, start, end in runs),
                top=min(r for r, _, _ in runs),
                bottom=max(r for r, _, _ in runs) + 1,
                left=min(s for _, s, _ in runs),
                right=max(e for _, _, e in runs),
                runs=runs,
            )
        )
    found.sort(key=lambda c: c.area, reverse=True)
    return found


def paint(shape: tuple[int, int], chosen: list[Component]) -> np.ndarray:
    """A mask with the pixels of the ``chosen`` components set."""
    mask = np.zeros(shape, bool)
    for component in chosen:
        for row, start, end in component.runs:
            mask[row, start:end] = True
    return mask
