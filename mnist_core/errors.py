"""Domain errors of the MNIST project.

They know nothing of HTTP: the service translates them to statuses in one place.

    MnistError
    ├── DataFileError        an IDX data file is missing, truncated or corrupt
    └── InputError           a client sent input we cannot score
        ├── PayloadTooLarge  too many images or bytes
        └── UnsupportedMedia a content type or image format we do not read
"""

from __future__ import annotations

from typing import Any


class MnistError(Exception):
    """Base of every error this project raises on purpose."""


class DataFileError(MnistError):
    """An IDX data file is missing, truncated or corrupt."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


class InputError(MnistError):
    """Client input that cannot be scored.

    ``reason`` is a short stable token (used as a metrics label); ``details`` names
    where the problem is, for example ``{"index": 3}`` or ``{"field": "images"}``.
    """

    reason = "invalid_input"

    def __init__(self, message: str, *, reason: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, "reason": self.reason, **self.details}


class PayloadTooLarge(InputError):
    """More images or bytes than the configured maximum."""

    reason = "too_large"


class UnsupportedMedia(InputError):
    """A content type or file format we do not read."""

    reason = "unsupported_media_type"
