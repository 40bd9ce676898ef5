"""Reading client-supplied ``.npy`` bytes safely.

The header is parsed first and checked against the bytes actually present, so a header
that claims a huge shape allocates nothing, and object (pickled) arrays are refused
before any of their bytes are looked at. The pixels are then a zero-copy view.
"""

from __future__ import annotations

import io
import math

import numpy as np
from numpy.lib import format as npy_format

from .errors import InputError
from .validation import images_from_array

MAGIC = b"\x93NUMPY"


def load_npy(data: bytes, *, field: str = "array") -> np.ndarray:
    """The array stored in ``.npy`` bytes (``allow_pickle=False`` semantics)."""
    if not data.startswith(MAGIC):
        raise InputError(
            "not a .npy file (missing the \\x93NUMPY magic)", reason="invalid_npy", field=field
        )
    stream = io.BytesIO(data)
    try:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_1_0(stream)
        elif version in ((2, 0), (3, 0)):
            shape, fortran_order, dtype = npy_format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except Exception as exc:  # NumPy's header parser raises several kinds on bad input
        raise InputError(
            f"unreadable .npy header: {exc}", reason="invalid_npy", field=field
        ) from None
    if dtype.hasobject:
        raise InputError(
            ".npy holds Python objects (a pickle); only numeric arrays are accepted",
            reason="pickled_npy",
            field=field,
        )
    offset = stream.tell()
    count = math.prod(shape)
    if count * dtype.itemsize != len(data) - offset:
        raise InputError(
            f".npy header declares shape {list(shape)} of {dtype}, "
            f"which does not match the {len(data) - offset} data bytes",
            reason="invalid_npy",
            field=field,
        )
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order="F" if fortran_order else "C")


def images_from_npy(data: bytes, *, max_images: int, field: str = "array") -> np.ndarray:
    """``.npy`` bytes of ``[N, 28, 28]`` or ``[N, 784]`` pixels as ``uint8 [N, 28, 28]``."""
    return images_from_array(load_npy(data, field=field), max_images=max_images)
