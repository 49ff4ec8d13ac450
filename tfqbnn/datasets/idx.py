"""Reader for (optionally gzipped) IDX files, the MNIST / Fashion-MNIST container format.

IDX layout: 2 zero bytes, a type code (0x08 = uint8), the number of dimensions,
then one big-endian uint32 per dimension, then the raw data.
"""

import gzip
import zlib

import numpy as np

from tfqbnn.datasets.errors import DatasetFileError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path):
    path = str(path)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise DatasetFileError(path, "file not found") from None
    except EOFError as e:  # gzip stream cut short
        raise DatasetFileError(path, f"truncated gzip file ({e})") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as e:
        raise DatasetFileError(path, f"not a readable gzip/IDX file ({e})") from None


def parse_idx(data, path="<bytes>", expected_shape=None, expected_dtype=np.uint8):
    """Parses IDX bytes into a numpy array, validating magic, dimensions and length.

    Args:
        data: the uncompressed IDX bytes.
        path: name used in error messages.
        expected_shape: optional tuple; `None` entries match any size.
        expected_dtype: required element type (default uint8, as in MNIST).
    """
    if len(data) < 4:
        raise DatasetFileError(path, f"too short for an IDX header ({len(data)} bytes)")
    zero, type_code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or type_code not in _DTYPES or ndim == 0:
        raise DatasetFileError(path, f"wrong IDX magic 0x{data[:4].hex()} (expected 0x0000080N)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetFileError(path, f"truncated IDX header ({len(data)} bytes for {ndim} dimensions)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[type_code])
    if expected_dtype is not None and dtype != np.dtype(expected_dtype):
        raise DatasetFileError(path, f"IDX element type {dtype} but expected {np.dtype(expected_dtype)}")
    expected_len = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected_len:
        raise DatasetFileError(
            path, f"IDX header says shape {shape} ({expected_len} bytes) but the file holds {len(data)} bytes"
        )
    if expected_shape is not None:
        ok = len(expected_shape) == len(shape) and all(e is None or e == s for e, s in zip(expected_shape, shape))
        if not ok:
            raise DatasetFileError(path, f"wrong shape {shape}, expected {tuple(expected_shape)}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path, expected_shape=None, expected_dtype=np.uint8):
    """Reads an IDX file (`.gz` or raw) into a numpy array; see `parse_idx`."""
    return parse_idx(_read_bytes(path), str(path), expected_shape, expected_dtype)
