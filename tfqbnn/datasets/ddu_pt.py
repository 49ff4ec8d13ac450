"""Safe reader (and a fixture writer) for torch `.pt` tensor files, without torch.

torch.save (zip format, torch >= 1.6) writes a zip holding `<archive>/data.pkl` (a pickle whose
persistent ids point at storages), `<archive>/data/<key>` (raw little-endian storage bytes),
`<archive>/byteorder`, `<archive>/version` and `<archive>/.data/serialization_id`.

The pickle is read by an Unpickler whose `find_class` only resolves the tensor-rebuild globals to
local stand-ins (`torch._utils._rebuild_tensor_v2`, the typed `torch.*Storage` markers and
`collections.OrderedDict`); any other global is refused, so no pickle code ever runs.

Hostile geometry and sizes are refused before any allocation: zip members are read with a byte cap
(a deflate bomb never inflates past it), the declared elements of a file are capped, a storage
record must hold exactly its declared element count, and a tensor view must lie inside its storage
with no stride 0 and no overlap (else a tiny file could expand into a huge array).
"""

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

from tfqbnn.datasets import files
from tfqbnn.datasets.errors import DatasetFileError
from qbnn_safeio import bounded_repr

# The released DDU files (BlackHC/ddu_dirty_mnist, data-v1.0.0 == data-v0.6.0) and their MD5s.
DDU_FILES = {
    "amnist_samples.pt": ("4f7865093b1d28e34019847fab917722", (12000, 1, 28, 28), np.float32),
    "amnist_labels.pt": ("3bfc055a9f91a76d8d493e8b898c3c95", (12000, 10), np.int64),
}
DDU_URL = "https://github.com/BlackHC/ddu_dirty_mnist/releases/download/data-v1.0.0/"

# Caps for one file: the real samples file holds 9.4 M float32 elements (37.6 MB).
MAX_MEMBER_BYTES = 64 << 20  # any zip member, after decompression
MAX_PICKLE_BYTES = 1 << 20  # data.pkl of a single tensor is a few hundred bytes
MAX_ELEMENTS = 1 << 25  # all storages and tensor copies of the file together (each allocates)

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.name, self.dtype = name, np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    def __init__(self, array):
        self.array = array


def _check_geometry(path, size, stride, offset, storage_len):
    """A view that lies inside its storage, each element once: no stride 0, no overlap."""
    geometry = f"size={size} stride={stride} offset={offset}"
    if len(size) != len(stride) or min(size + stride + (offset,), default=0) < 0:
        raise DatasetFileError(path, f"bad tensor geometry {geometry}")
    numel = int(np.prod(size, dtype=object))
    if numel == 0:
        return 0
    if offset + sum((n - 1) * s for n, s in zip(size, stride)) >= storage_len:
        raise DatasetFileError(path, f"tensor {geometry} exceeds its storage of {storage_len} elements")
    # Non-overlap: with the dims of extent > 1 sorted by stride, each stride exceeds the span of the smaller ones.
    span = 0
    for n, s in sorted(((n, s) for n, s in zip(size, stride) if n > 1), key=lambda t: t[1]):
        if s <= span:
            raise DatasetFileError(path, f"tensor {geometry} is a stride-0 or overlapping view; refused "
                                         "(it would expand its storage)")
        span += (n - 1) * s
    return numel


def _make_rebuild(path, budget):
    def rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
        if not isinstance(storage, _Storage):
            raise DatasetFileError(path, "tensor rebuild without a storage")
        if not all(isinstance(v, int) for v in (offset, *size, *stride)):
            raise DatasetFileError(path, "tensor geometry is not integers")
        size, stride, offset = tuple(size), tuple(stride), int(offset)
        a = storage.array
        budget.take(_check_geometry(path, size, stride, offset, len(a)))
        it = a.itemsize
        view = np.lib.stride_tricks.as_strided(a[offset:], size, tuple(s * it for s in stride), writeable=False)
        return np.array(view)  # own, contiguous copy (bounded: no overlap, inside the storage)

    return rebuild_tensor_v2


class _Budget:
    """Elements declared so far in one file, against MAX_ELEMENTS."""

    def __init__(self, path):
        self.path, self.used = path, 0

    def take(self, n):
        self.used += int(n)
        if self.used > MAX_ELEMENTS:
            raise DatasetFileError(self.path, f"declares more than {MAX_ELEMENTS} elements (MAX_ELEMENTS); refused")


def _read_member(path, zf, name, cap):
    """A zip member's bytes, refusing (before inflating) anything larger than ``cap``."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise DatasetFileError(path, f"missing record {name}") from None
    if info.file_size > cap:
        raise DatasetFileError(path, f"record {name} declares {info.file_size} bytes, over the cap of {cap}")
    try:
        with zf.open(info) as f:
            data = f.read(cap + 1)  # the declared size may lie: never inflate more than the cap
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:  # noqa: B014 (zlib errors are ValueErrors)
        raise DatasetFileError(path, f"corrupt record {name} ({type(e).__name__}: {e})") from None
    if len(data) > cap:
        raise DatasetFileError(path, f"record {name} inflates past the cap of {cap} bytes")
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data, path, zf, prefix):
        super().__init__(io.BytesIO(data))
        self.path, self.zf, self.prefix = path, zf, prefix
        self.budget = _Budget(path)
        self._allowed = {
            ("torch._utils", "_rebuild_tensor_v2"): _make_rebuild(path, self.budget),
            ("collections", "OrderedDict"): collections.OrderedDict,
        }

    def find_class(self, module, name):
        if (module, name) in self._allowed:
            return self._allowed[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise DatasetFileError(self.path, f"forbidden global {module}.{name} in data.pkl (only tensor rebuilds are allowed)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise DatasetFileError(self.path, f"unsupported persistent id {bounded_repr(pid)}")
        _, stype, key, _location, numel = pid
        if not isinstance(numel, int) or numel < 0 or not isinstance(key, str):
            raise DatasetFileError(self.path, f"bad storage record key={bounded_repr(key, 40)} numel={bounded_repr(numel, 40)}")
        self.budget.take(numel)  # before reading: the declared count alone can be refused
        record = f"{self.prefix}data/{key}"
        raw = _read_member(self.path, self.zf, record, MAX_MEMBER_BYTES)
        if len(raw) != numel * stype.dtype.itemsize:
            raise DatasetFileError(self.path, f"storage {record} holds {len(raw)} bytes, declared {numel} x "
                                              f"{stype.name} ({numel * stype.dtype.itemsize} bytes)")
        return _Storage(np.frombuffer(raw, dtype=stype.dtype.newbyteorder("<"), count=numel))


def read_torch_tensor(path, expected_md5=None, expected_shape=None, expected_dtype=None):
    """Reads the single tensor saved in a torch `.pt` zip file as a numpy array, without torch.

    Raises:
        DatasetFileError: MD5 mismatch, not a torch zip, forbidden global, a record over MAX_MEMBER_BYTES,
            more than MAX_ELEMENTS declared, a storage of the wrong size, a stride-0 / overlapping /
            out-of-storage view, or wrong shape/dtype.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DatasetFileError(path, "file not found")
    if expected_md5 is not None:
        files.verify_checksum(path, expected_md5, "md5")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DatasetFileError(path, f"not a torch zip file ({e}); legacy torch formats are not supported") from None
    with zf:
        pkl = [n for n in zf.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise DatasetFileError(path, "no <archive>/data.pkl record: not a torch.save zip file")
        prefix = pkl[0][: -len("data.pkl")]
        if prefix + "byteorder" in zf.namelist() and _read_member(path, zf, prefix + "byteorder", 64).strip() != b"little":
            raise DatasetFileError(path, "big-endian torch files are not supported")
        try:
            obj = _RestrictedUnpickler(_read_member(path, zf, pkl[0], MAX_PICKLE_BYTES), path, zf, prefix).load()
        except DatasetFileError:
            raise
        except Exception as e:  # malformed pickle
            raise DatasetFileError(path, f"unreadable data.pkl ({type(e).__name__}: {e})") from None
    if not isinstance(obj, np.ndarray):
        raise DatasetFileError(path, f"holds a {type(obj).__name__}, expected a single tensor")
    if expected_shape is not None and obj.shape != tuple(expected_shape):
        raise DatasetFileError(path, f"wrong shape {obj.shape}, expected {tuple(expected_shape)}")
    if expected_dtype is not None and obj.dtype != np.dtype(expected_dtype):
        raise DatasetFileError(path, f"wrong dtype {obj.dtype}, expected {np.dtype(expected_dtype)}")
    return obj


def locate_ddu(name, data_dir=None, download=True):
    """Finds `ambiguous_mnist/<name>` like the official files (data_dir, $TFQBNN_DATA_DIR, Keras cache),
    MD5-checks it, and downloads it from the DDU GitHub release when missing."""
    md5 = DDU_FILES[name][0]
    searched = []
    for label, d in files.search_dirs("ambiguous_mnist", data_dir):
        path = os.path.join(d, name)
        if os.path.isfile(path):
            return files.verify_checksum(path, md5, "md5")
        searched.append(f"{label} {d}" + ("" if os.path.isdir(d) else " (missing directory)"))
    problem = "not found in " + ", ".join(searched)
    if download:
        try:
            return files.download_file("ambiguous_mnist", name, md5, "md5", origins=[DDU_URL])
        except DatasetFileError as e:
            problem += f"; download from {DDU_URL}{name} failed ({e.problem})"
    raise DatasetFileError(f"ambiguous_mnist/{name}", problem)


def load_ddu_files(data_dir=None, download=True):
    """The real DDU Ambiguous-MNIST: images float32 [12000, 28, 28] in [0, 1], labels int64 [12000, 10]."""
    paths = {n: locate_ddu(n, data_dir, download) for n in DDU_FILES}
    arrays = {n: read_torch_tensor(p, None, DDU_FILES[n][1], DDU_FILES[n][2]) for n, p in paths.items()}
    x = arrays["amnist_samples.pt"].reshape(12000, 28, 28)
    labels = arrays["amnist_labels.pt"]
    if labels.min() < 0 or labels.max() > 9:
        raise DatasetFileError(paths["amnist_labels.pt"], "labels outside 0..9")
    src = {
        "name": "ddu",
        "description": "Ambiguous-MNIST (released DDU files, BlackHC/ddu_dirty_mnist data-v1.0.0)",
        "files": paths,
        "md5": {n: DDU_FILES[n][0] for n in DDU_FILES},
    }
    return x, labels, src


# ---------------------------------------------------------------------------------------------
# Writer (test fixtures): reproduces torch.save's zip layout and protocol-2 pickle opcodes.

_TORCH_STORAGE_NAMES = {np.dtype(v): k for k, v in _STORAGE_DTYPES.items()}


def _pickle_int(v):
    if 0 <= v < 256:
        return pickle.BININT1 + bytes([v])
    if 0 <= v < 65536:
        return pickle.BININT2 + struct.pack("<H", v)
    if -(2**31) <= v < 2**31:
        return pickle.BININT + struct.pack("<i", v)
    b = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
    return pickle.LONG1 + bytes([len(b)]) + b


def _pickle_str(s):
    b = s.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(b)) + b


def _pickle_tuple(items):
    return pickle.MARK + b"".join(items) + pickle.TUPLE if items else pickle.EMPTY_TUPLE


def tensor_pickle(shape, dtype, key="0", global_override=None):
    """The data.pkl bytes torch.save writes for a contiguous CPU tensor (protocol 2).

    `global_override=(module, name)` replaces the rebuild function (used to build hostile fixtures).
    """
    module, name = global_override or ("torch._utils", "_rebuild_tensor_v2")
    shape = tuple(int(s) for s in shape)
    stride = tuple(int(np.prod(shape[i + 1 :])) for i in range(len(shape)))
    numel = int(np.prod(shape))
    storage_pid = _pickle_tuple(
        [
            _pickle_str("storage"),
            pickle.GLOBAL + f"torch\n{_TORCH_STORAGE_NAMES[np.dtype(dtype)]}\n".encode(),
            _pickle_str(key),
            _pickle_str("cpu"),
            _pickle_int(numel),
        ]
    )
    args = _pickle_tuple(
        [
            storage_pid + pickle.BINPERSID,
            _pickle_int(0),
            _pickle_tuple([_pickle_int(s) for s in shape]),
            _pickle_tuple([_pickle_int(s) for s in stride]),
            pickle.NEWFALSE,
            pickle.GLOBAL + b"collections\nOrderedDict\n" + pickle.EMPTY_TUPLE + pickle.REDUCE,
        ]
    )
    return (
        pickle.PROTO + b"\x02" + pickle.GLOBAL + f"{module}\n{name}\n".encode() + args + pickle.REDUCE + pickle.STOP
    )


def _write_aligned(zf, name, data, alignment=64):
    # torch pads each record's local header (extra field id "FB") so the data starts on 64 bytes.
    offset = zf.fp.tell()
    base = 30 + len(name.encode())
    pad = (-(offset + base + 4)) % alignment
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    zf.writestr(info, data)


def write_torch_tensor(path, array, archive=None, global_override=None):
    """Writes `array` as torch.save would (zip, stored records, 64-byte aligned data). Test fixtures only.

    Cross-checked once against torch 2.13.0: torch.load(weights_only=True, also mmap=True) reads these
    files, and read_torch_tensor reads torch-written files (including strided views)."""
    array = np.ascontiguousarray(array)
    archive = archive or os.path.splitext(os.path.basename(os.fspath(path)))[0]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        _write_aligned(zf, f"{archive}/data.pkl", tensor_pickle(array.shape, array.dtype, "0", global_override))
        _write_aligned(zf, f"{archive}/.format_version", b"1")  # record order as written by torch 2.13
        _write_aligned(zf, f"{archive}/.storage_alignment", b"64")
        _write_aligned(zf, f"{archive}/byteorder", b"little")
        _write_aligned(zf, f"{archive}/data/0", array.astype(array.dtype.newbyteorder("<")).tobytes())
        _write_aligned(zf, f"{archive}/version", b"3\n")
        _write_aligned(zf, f"{archive}/.data/serialization_id", b"0" * 40)
    return path
