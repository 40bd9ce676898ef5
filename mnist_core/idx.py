"""Reading and writing IDX files, the format MNIST ships in.

Layout: a big-endian int32 magic ``0x00000800 | (type code << 8) | ndim`` (only uint8
data, type code 0x08, is used by MNIST), one big-endian int32 per dimension, then the
raw data. Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import DataFileError
from .files import read_bytes

UINT8_TYPE = 0x08
GZIP_MAGIC = b"\x1f\x8b"
MAX_HEADER = 4 + 4 * 255


def _read_bytes(path: Path) -> bytes:
    raw = read_bytes(path)
    if raw[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFileError(path, f"corrupt gzip data ({exc})") from None
    return raw


def parse_header(
    head: bytes, *, name: object, ndim: int | None = None
) -> tuple[int, tuple[int, ...]]:
    """The header length and shape of IDX uint8 data that starts with ``head``.

    ``head`` need only hold the header (at most 4 + 4 x 255 bytes); the data is not read.
    """
    if len(head) < 4:
        raise DataFileError(name, f"too short for an IDX header ({len(head)} bytes)")
    zero, dtype_code, dims = struct.unpack(">HBB", head[:4])
    if zero != 0 or dtype_code != UINT8_TYPE:
        magic = int.from_bytes(head[:4], "big")
        raise DataFileError(name, f"bad magic number 0x{magic:08x} (not a uint8 IDX file)")
    if ndim is not None and dims != ndim:
        raise DataFileError(name, f"expected {ndim} dimensions, header says {dims}")
    header_len = 4 + 4 * dims
    if len(head) < header_len:
        raise DataFileError(name, f"truncated header ({len(head)} of {header_len} bytes)")
    return header_len, struct.unpack(f">{dims}I", head[4:header_len])


def parse_idx(data: bytes, *, name: object = "<bytes>", ndim: int | None = None) -> np.ndarray:
    """Decode IDX bytes (not compressed) to a uint8 array, checking header and size.

    The array is a writable copy, as ``keras.datasets.mnist.load_data()`` returns.
    """
    header_len, shape = parse_header(data[:MAX_HEADER], name=name, ndim=ndim)
    expected = int(np.prod(shape, dtype=np.int64))
    actual = len(data) - header_len
    if actual != expected:
        problem = "truncated" if actual < expected else "trailing bytes after"
        raise DataFileError(
            name, f"{problem} data: shape {tuple(shape)} needs {expected} bytes, found {actual}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(shape).copy()


def read_idx(path: str | Path, *, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file, gzipped or raw, into a uint8 array."""
    path = Path(path)
    return parse_idx(_read_bytes(path), name=path, ndim=ndim)


def encode_idx(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX bytes (not compressed)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, UINT8_TYPE, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file; gzip it when asked or when the name ends in .gz."""
    path = Path(path)
    data = encode_idx(array)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path
