"""Pure logic shared by training, the service, batch jobs, load tests and tests.

It depends on NumPy and Pillow only: never on TensorFlow or BentoML.
"""

from __future__ import annotations

from .errors import DataFileError, InputError, MnistError, PayloadTooLarge, UnsupportedMedia
from .idx import encode_idx, parse_idx, read_idx, write_idx

__all__ = [
    "DataFileError",
    "InputError",
    "MnistError",
    "PayloadTooLarge",
    "UnsupportedMedia",
    "encode_idx",
    "parse_idx",
    "read_idx",
    "write_idx",
]
