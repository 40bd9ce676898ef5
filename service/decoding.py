"""Request bodies to validated ``uint8 [N, 28, 28]`` batches, one function per endpoint."""

from __future__ import annotations

import json

import numpy as np
import orjson

from mnist_core.errors import InputError
from mnist_core.npy import images_from_npy
from mnist_core.validation import check_count, fast_json_images, images_from_json

from .schemas import RawFiles


def json_images(body: bytes, *, max_images: int) -> np.ndarray:
    """``{"images": [...]}`` as a batch."""
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
    if upload.problem is not None:
        raise InputError(upload.problem, reason="missing_field", field="array")
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

    if upload.problem is not None:
        raise InputError(upload.problem, reason="missing_field", field="images")
    check_count(len(upload.files), max_images)
    batch = np.stack(
        [
            to_mnist(data, max_pixels=max_pixels, index=index)
            for index, (_, data) in enumerate(upload.files)
        ]
    )
    return batch, [name for name, _ in upload.files]
