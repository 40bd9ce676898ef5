"""Opening input files, with every failure a :class:`~.errors.DataFileError` naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from .errors import DataFileError


def _problem(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    return f"cannot read file ({exc.strerror or exc})"


def open_binary(path: Path) -> IO[bytes]:
    """``path`` opened for reading bytes."""
    try:
        return path.open("rb")
    except OSError as exc:
        raise DataFileError(path, _problem(exc)) from None


def open_text(path: Path) -> IO[str]:
    """``path`` opened as UTF-8 text (a byte-order mark is skipped), newlines untranslated."""
    try:
        return path.open("r", encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise DataFileError(path, _problem(exc)) from None


def read_bytes(path: Path) -> bytes:
    """The whole content of ``path``."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataFileError(path, _problem(exc)) from None
