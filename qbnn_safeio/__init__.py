"""Guards shared by every tool of tfqbnn and tflite_export that writes files or reads untrusted data: the bottom
package both import (standard library only: it imports neither, nor TensorFlow).

* `atomic_path` / `write_bytes`: a file replaced atomically through a temp file created exclusively
  (``O_CREAT | O_EXCL | O_NOFOLLOW``) under a random name in the target folder: a planted link is never
  followed, a half-written file never has the target's name.
* `is_temp_name`: whether a name is one of those temp files (refusals never name them).
* `bounded_repr`: the repr of untrusted data, bounded before it is built.
* `MAX_SAMPLES` / `check_num_samples`: the sample-count bound of the C runtime, for every CLI and API;
  `check_seed`: 32-bit seeds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import reprlib
import secrets
from pathlib import Path

_TMP_TAG = ".tfqbnn-tmp-"
_TMP_NAME = re.compile(r"\..+\.tfqbnn-tmp-[0-9a-f]{16}\Z")


def sha256_file(path, chunk=1 << 20):
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def is_temp_name(name):
    return bool(_TMP_NAME.match(str(name)))


def _create_exclusive(path):
    """A new file opened for writing; never an existing file or the target of a link."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)


@contextlib.contextmanager
def atomic_path(path):
    """Yields a new, empty temp file's path beside ``path``; renamed onto ``path`` only if the block succeeds.

    The block may reopen the temp path for writing (it exists and is ours); it must not replace it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}{_TMP_TAG}{secrets.token_hex(8)}")
    os.close(_create_exclusive(tmp))
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            raise IsADirectoryError(f"{path}: is a directory; refusing to replace it with a file")
        os.replace(tmp, path)  # a link at `path` is replaced, never written through
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def make_dir(path):
    """Creates folder ``path`` (and its parents) or raises a one-line ValueError starting with it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path}: exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"{path}: cannot create it ({err.strerror or err})") from None


def open_temp(tmp):
    """The temp file of `atomic_path` opened for writing, without following a link put in its place."""
    return os.fdopen(os.open(tmp, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)), "wb")


def write_bytes(path, data):
    """``data`` into ``path`` atomically (see `atomic_path`), flushed to disk."""
    with atomic_path(path) as tmp, open_temp(tmp) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_text(path, text):
    write_bytes(path, text.encode())


_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 40, 40, 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 4
_REPR.maxlevel = 3


def bounded_repr(obj, limit=80):
    """``repr(obj)`` cut to ``limit`` characters, built with bounded work and memory whatever ``obj`` holds
    (a container's repr is never built whole: ``f"{obj!r:.80}"`` builds it whole before cutting)."""
    try:
        s = _REPR.repr(obj)
    except Exception:  # noqa: BLE001 - an int past the str conversion limit, a failing __repr__
        s = f"<{type(obj).__name__}>"
    return s if len(s) <= limit else s[: limit - 3] + "..."


# QBNN_MAX_SAMPLES of the C runtime (tflite_export/micro/qbnn_runtime.h; a test keeps the two equal): the count
# sums A[c] stay below 2^32
MAX_SAMPLES = 65536


def check_num_samples(value, name="num_samples"):
    """``value`` as an int in 1..MAX_SAMPLES (the C runtime's bound), else a one-line ValueError naming ``name``."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= value <= MAX_SAMPLES:
        raise ValueError(f"`{name}` must be an integer in 1..{MAX_SAMPLES} (the C runtime's QBNN_MAX_SAMPLES); "
                         f"received {name}={bounded_repr(value)}")
    return int(value)


def check_seed(seed, name="seed"):
    """A 32-bit seed (the samplers' and the layers': SPEC.md section 3): an int in 0..2^32-1, else a one-line ValueError naming it."""
    import numbers

    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= 0xFFFFFFFF:
        raise ValueError(f"`{name}` must be an integer in 0..{0xFFFFFFFF} (a 32-bit seed); received "
                         f"{name}={bounded_repr(seed)}")
    return int(seed)
