"""CSV files of images: one row of 784 pixel values per image, optionally a label column.

The common (Kaggle) layout: a header ``label,pixel0,...,pixel783`` or ``pixel0,...``, or
no header at all with the label, if any, first. Blank lines are not rows. Rows are
numbered from 0 in file order, skipping the header; errors name the file's line number.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .chunks import PIXELS, Chunk, ImageSource, as_uint8_images
from .errors import DataFileError
from .files import open_text

Lines = list[tuple[int, str]]


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based line numbers."""
    with open_text(path) as text:
        try:
            for number, line in enumerate(text, start=1):
                if line.strip():
                    yield number, line
        except UnicodeDecodeError:
            raise DataFileError(path, "not a text CSV file (undecodable bytes)") from None


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class CsvLayout:
    """What a scan of the file found: header, label column, row and column counts."""

    header: bool
    columns: int
    label_column: int | None
    rows: int

    def batches(self, *, path: Path, start: int, size: int) -> Iterator[tuple[int, Lines]]:
        """``(index of the first row, [(line number, line), ...])`` from row ``start`` on."""
        lines = _lines(path)
        if self.header:
            next(lines, None)
        batch: Lines = []
        first = start
        for row, numbered in enumerate(lines):
            if row < start:
                continue
            batch.append(numbered)
            if len(batch) == size:
                yield first, batch
                first, batch = first + size, []
        if batch:
            yield first, batch


def sniff_csv(path: Path) -> CsvLayout:
    """Scan the whole file once: header, label column, number of rows."""
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        raise DataFileError(path, "empty CSV file")
    fields = [f.strip().strip('"').strip() for f in first[1].split(",")]
    header = not all(_is_number(f) for f in fields)
    columns = len(fields)
    label_column: int | None = None
    if columns == PIXELS + 1:
        names = [f.lower() for f in fields]
        if header and "label" not in names:
            raise DataFileError(path, f"{columns} columns, but none of them is named 'label'")
        label_column = names.index("label") if header else 0
    elif columns != PIXELS:
        raise DataFileError(
            path,
            f"line {first[0]}: {columns} columns; expected {PIXELS} pixel columns, "
            "optionally plus one label column",
        )
    rows = sum(1 for _ in lines) + (0 if header else 1)
    return CsvLayout(header=header, columns=columns, label_column=label_column, rows=rows)


def _locate_bad_line(lines: Lines, columns: int, path: Path) -> DataFileError:
    for number, line in lines:
        fields = line.split(",")
        if len(fields) != columns:
            return DataFileError(path, f"line {number}: {len(fields)} columns, expected {columns}")
        for field in fields:
            if not _is_number(field.strip().strip('"')):
                return DataFileError(path, f"line {number}: {field.strip()!r} is not a number")
    return DataFileError(path, f"unparsable rows at lines {lines[0][0]}..{lines[-1][0]}")


def parse_csv_rows(
    lines: Lines, layout: CsvLayout, path: Path
) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels (n, 784) as float64 and labels (n,) as int64 (None without a label column)."""
    try:
        table = np.loadtxt(
            [line for _, line in lines],
            delimiter=",",
            dtype=np.float64,
            ndmin=2,
            quotechar='"',
        )
    except ValueError:
        raise _locate_bad_line(lines, layout.columns, path) from None
    if table.shape[1] != layout.columns:
        raise _locate_bad_line(lines, layout.columns, path)
    if layout.label_column is None:
        return table, None
    labels = table[:, layout.label_column]
    bad = np.flatnonzero((labels != np.floor(labels)) | (labels < 0) | (labels > 9))
    if bad.size:
        number = lines[int(bad[0])][0]
        raise DataFileError(path, f"line {number}: label {labels[bad[0]]:g} is not a digit 0..9")
    pixels = np.delete(table, layout.label_column, axis=1)
    return pixels, labels.astype(np.int64)


class CsvSource(ImageSource):
    """CSV rows of 784 pixels, with an optional label column, streamed line by line."""

    def __init__(self, path: Path) -> None:
        self._layout: CsvLayout = sniff_csv(path)
        super().__init__(path, self._layout.rows)

    @property
    def has_labels(self) -> bool:
        return self._layout.label_column is not None

    def chunks(self, start: int, size: int) -> Iterator[Chunk]:
        self._check_range(start, size)
        for lo, lines in self._layout.batches(path=self.path, start=start, size=size):
            pixels, labels = parse_csv_rows(lines, self._layout, self.path)
            yield Chunk(lo, as_uint8_images(pixels, lo, self.path), labels)
