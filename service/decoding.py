"""Request bodies to validated ``uint8 [N, 28, 28]`` batches, one function per body kind.

Each function raises :class:`~mnist_core.errors.InputError` (or a subclass) naming what
is wrong and where; nothing here knows about HTTP statuses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import orjson
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from mnist_core.errors import InputError, UnsupportedMedia
from mnist_core.npy import images_from_npy
from mnist_core.validation import check_count, fast_json_images, images_from_json

JSON = ("application/json", "")
MULTIPART = ("multipart/form-data",)
NPY = ("multipart/form-data", "application/octet-stream", "application/x-npy")
MAX_FORM_PARTS = 100_000
"""Upper bound on form parts; images per request and the body size limit bind first."""


@dataclass(frozen=True)
class RawFiles:
    """Uploaded files as received: (file name, bytes), in the order sent."""

    files: list[tuple[str, bytes]]


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def require_media(request: Request, accepted: Sequence[str]) -> str:
    """The request's media type, if ``accepted`` lists it (``""`` allows none given)."""
    found = media_type(request)
    if found not in accepted:
        raise UnsupportedMedia(
            f"content type {found or 'none'} is not accepted here; send one of "
            + ", ".join(t for t in accepted if t),
            field="content-type",
        )
    return found


async def form_files(request: Request, field: str) -> RawFiles:
    """The files of multipart field ``field``; a plain value there is a client mistake.

    A value that is not a file is never fetched or interpreted (a URL stays a string).
    """
    try:
        form: FormData = await request.form(max_files=MAX_FORM_PARTS, max_fields=MAX_FORM_PARTS)
    except (MultiPartException, HTTPException, ValueError, KeyError) as exc:
        message = getattr(exc, "detail", None) or getattr(exc, "message", None) or str(exc)
        raise InputError(f"unreadable multipart form: {message}", reason="bad_request") from None
    values = form.getlist(field)
    if not values:
        raise InputError(
            f"multipart field '{field}' is missing", reason="missing_field", field=field
        )
    files: list[tuple[str, bytes]] = []
    for item in values:
        if not isinstance(item, UploadFile):
            raise InputError(
                f"multipart field '{field}' must hold uploaded files, not a plain value",
                reason="missing_field",
                field=field,
            )
        files.append((item.filename or "", await item.read()))
    return RawFiles(files)


SMALL_JSON_BYTES = 4096
"""Up to this size (one image is about 2 KB) orjson and NumPy read a body faster than the
byte-level reader, whose fixed cost only pays off over many images."""


def json_images(body: bytes, *, max_images: int) -> np.ndarray:
    """``{"images": [...]}`` as a batch."""
    if len(body) > SMALL_JSON_BYTES:
        batch = fast_json_images(body)
        if batch is not None:
            check_count(len(batch), max_images)
            return batch
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            # The stdlib reads NaN and Infinity, so those get their own precise error.
            payload = json.loads(body)
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
            raise InputError(f"body is not valid JSON: {exc}", reason="invalid_json") from None
    if not isinstance(payload, dict) or "images" not in payload:
        raise InputError(
            'body must be a JSON object with an "images" list',
            reason="missing_field",
            field="images",
        )
    # NumPy's inference reads JSON booleans as numbers; only a body that spells one
    # needs the slow value-by-value type check.
    may_hold_booleans = b"true" in body or b"false" in body
    return images_from_json(
        payload["images"], max_images=max_images, may_hold_booleans=may_hold_booleans
    )


def npy_images(upload: RawFiles, *, max_images: int) -> np.ndarray:
    """One ``.npy`` file (multipart field ``array`` or the raw body) as a batch."""
    if len(upload.files) != 1:
        raise InputError(
            f"expected exactly one .npy file in field 'array', got {len(upload.files)}",
            reason="missing_field",
            field="array",
        )
    return images_from_npy(upload.files[0][1], max_images=max_images)


def uploaded_images(
    upload: RawFiles, *, max_images: int, max_pixels: int
) -> tuple[np.ndarray, list[str]]:
    """Image files (multipart field ``images``) as a batch, with their file names."""
    from mnist_core.images import to_mnist

    check_count(len(upload.files), max_images)
    batch = np.stack(
        [
            to_mnist(data, max_pixels=max_pixels, index=index)
            for index, (_, data) in enumerate(upload.files)
        ]
    )
    return batch, [name for name, _ in upload.files]
