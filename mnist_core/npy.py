"""The ``.npy`` format: one header parser, and client-supplied bytes read safely.

The header is parsed first and checked against the bytes actually present, so a header
that claims a huge shape allocates nothing, and object (pickled) arrays are refused
before any of their bytes are looked at. The pixels are then a zero-copy view.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy_format

from .errors import InputError
from .validation import images_from_array

MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class NpyHeader:
    """What a ``.npy`` header declares; the data follows it."""

    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype[Any]


def read_header(stream: IO[bytes]) -> NpyHeader:
    """The header at the start of ``stream``, leaving the stream at the first data byte.

    Raises ``ValueError`` with NumPy's explanation for anything but a valid header.
    """
    try:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_1_0(stream)
        elif version in ((2, 0), (3, 0)):
            shape, fortran_order, dtype = npy_format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError:
        raise
    except Exception as exc:  # NumPy's header parser raises several kinds on bad input
        raise ValueError(str(exc) or type(exc).__name__) from None
    return NpyHeader(tuple(shape), bool(fortran_order), dtype)


def load_npy(data: bytes, *, field: str = "array") -> np.ndarray:
    """The array stored in ``.npy`` bytes (``allow_pickle=False`` semantics)."""
    if not data.startswith(MAGIC):
        raise InputError(
            "not a .npy file (missing the \\x93NUMPY magic)", reason="invalid_npy", field=field
        )
    stream = io.BytesIO(data)
    try:
        header = read_header(stream)
    except ValueError as exc:
        raise InputError(
            f"unreadable .npy header: {exc}", reason="invalid_npy", field=field
        ) from None
    if header.dtype.hasobject:
        raise InputError(
            ".npy holds Python objects (a pickle); only numeric arrays are accepted",
            reason="pickled_npy",
            field=field,
        )
    offset = stream.tell()
    count = math.prod(header.shape)
    if count * header.dtype.itemsize != len(data) - offset:
        raise InputError(
            f".npy header declares shape {list(header.shape)} of {header.dtype}, "
            f"which does not match the {len(data) - offset} data bytes",
            reason="invalid_npy",
            field=field,
        )
    flat = np.frombuffer(data, dtype=header.dtype, count=count, offset=offset)
    return flat.reshape(header.shape, order="F" if header.fortran_order else "C")


def images_from_npy(data: bytes, *, max_images: int, field: str = "array") -> np.ndarray:
    """``.npy`` bytes of ``[N, 28, 28]`` or ``[N, 784]`` pixels as ``uint8 [N, 28, 28]``."""
    return images_from_array(load_npy(data, field=field), max_images=max_images)
