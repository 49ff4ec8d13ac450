"""The torch-free, pickle-safe reader of the real DDU Ambiguous-MNIST .pt files."""

import hashlib
import io
import pickle
import zipfile

import numpy as np
import pytest

from tfqbnn.datasets import DatasetFileError, ambiguous, ddu_pt, files, load_ambiguous_mnist
from tfqbnn.datasets.ddu_pt import read_torch_tensor, tensor_pickle, write_torch_tensor


def _md5(path):
    return hashlib.md5(open(path, "rb").read()).hexdigest()


@pytest.mark.parametrize(
    "arr",
    [
        np.linspace(0, 1, 2 * 1 * 28 * 28, dtype=np.float32).reshape(2, 1, 28, 28),
        np.arange(-5, 25, dtype=np.int64).reshape(3, 10),
        np.array([3.5], dtype=np.float64),
    ],
)
def test_roundtrip_own_writer(tmp_path, arr):
    p = write_torch_tensor(tmp_path / "t.pt", arr)
    out = read_torch_tensor(p, expected_md5=_md5(p), expected_shape=arr.shape, expected_dtype=arr.dtype)
    np.testing.assert_array_equal(out, arr)
    # torch's layout: one archive folder with data.pkl, data/0 and version; data aligned to 64 bytes
    with zipfile.ZipFile(p) as zf:
        names = zf.namelist()
        info = zf.getinfo("t/data/0")
        raw = open(p, "rb").read()
    assert {"t/data.pkl", "t/data/0", "t/version", "t/byteorder"} <= set(names)
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    assert start % 64 == 0 and raw[start : start + arr.nbytes] == arr.tobytes()


def test_strided_view_rebuild(tmp_path):
    # A hand-built pickle whose tensor is a transposed view (stride (1, 3)) of a 6-element storage.
    base = np.arange(6, dtype=np.float32)
    pkl = tensor_pickle((6,), np.float32).replace(
        pickle.MARK + pickle.BININT1 + b"\x06" + pickle.TUPLE + pickle.MARK + pickle.BININT1 + b"\x01" + pickle.TUPLE,
        pickle.MARK + pickle.BININT1 + b"\x03" + pickle.BININT1 + b"\x02" + pickle.TUPLE
        + pickle.MARK + pickle.BININT1 + b"\x01" + pickle.BININT1 + b"\x03" + pickle.TUPLE,
    )
    p = tmp_path / "v.pt"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("v/data.pkl", pkl)
        zf.writestr("v/data/0", base.tobytes())
    np.testing.assert_array_equal(read_torch_tensor(p), base.reshape(2, 3).T)


def test_forbidden_global_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    # data.pkl calls os.system("touch <marker>") if a plain pickle.load ran it.
    evil = (
        pickle.PROTO + b"\x02" + pickle.GLOBAL + b"os\nsystem\n"
        + pickle.MARK + pickle.BINUNICODE + len(f"touch {marker}").to_bytes(4, "little") + f"touch {marker}".encode()
        + pickle.TUPLE + pickle.REDUCE + pickle.STOP
    )
    p = tmp_path / "amnist_samples.pt"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("amnist_samples/data.pkl", evil)
        zf.writestr("amnist_samples/data/0", b"\0" * 16)
    with pytest.raises(DatasetFileError, match=r"amnist_samples\.pt: forbidden global os\.system") as e:
        read_torch_tensor(p)
    assert "\n" not in str(e.value)
    assert not marker.exists()


def test_forbidden_rebuild_function(tmp_path):
    p = write_torch_tensor(tmp_path / "x.pt", np.zeros(4, np.float32), global_override=("builtins", "eval"))
    with pytest.raises(DatasetFileError, match=r"x\.pt: forbidden global builtins\.eval"):
        read_torch_tensor(p)


def test_md5_mismatch(tmp_path):
    p = write_torch_tensor(tmp_path / "amnist_labels.pt", np.zeros((4, 10), np.int64))
    with pytest.raises(DatasetFileError, match=r"amnist_labels\.pt: md5 mismatch: expected 3bfc055a9f91a76d8d493e8b898c3c95, actual [0-9a-f]{32}"):
        read_torch_tensor(p, expected_md5=ddu_pt.DDU_FILES["amnist_labels.pt"][0])


def test_storage_overrun_and_legacy_format(tmp_path):
    p = tmp_path / "o.pt"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("o/data.pkl", tensor_pickle((10,), np.float32))
        zf.writestr("o/data/0", b"\0" * 8)  # 2 floats for a tensor of 10
    with pytest.raises(DatasetFileError, match=r"o\.pt: storage o/data/0 holds 8 bytes"):
        read_torch_tensor(p)
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(DatasetFileError, match=r"legacy\.pt: not a torch zip file"):
        read_torch_tensor(legacy)


def test_load_ambiguous_mnist_from_ddu_files(tmp_path, monkeypatch):
    """Full-size fixtures in the released layout; the official MD5s are swapped for the fixtures' own."""
    rng = np.random.default_rng(0)
    imgs = rng.random((12000, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, (12000, 10))
    d = tmp_path / "data" / "ambiguous_mnist"
    d.mkdir(parents=True)
    ps = write_torch_tensor(d / "amnist_samples.pt", imgs)
    pl = write_torch_tensor(d / "amnist_labels.pt", labels)
    monkeypatch.setattr(ddu_pt, "DDU_FILES", {
        "amnist_samples.pt": (_md5(ps), (12000, 1, 28, 28), np.float32),
        "amnist_labels.pt": (_md5(pl), (12000, 10), np.int64),
    })
    x, y = res = load_ambiguous_mnist("test", source="ddu", data_dir=tmp_path / "data")
    assert res.source["name"] == "ddu" and res.source["split"] == "test"
    assert x.shape == (60000, 784) and x.dtype == np.float32 and y.dtype == np.int64
    # DDU flattening: flat j of the test half is image 6000 + j//10 with label labels[6000 + j//10, j%10]
    for j in (0, 9, 10, 12345, 59999):
        np.testing.assert_array_equal(x[j], imgs[6000 + j // 10].reshape(784))
        assert y[j] == labels[6000 + j // 10, j % 10]
    xtr, ytr = load_ambiguous_mnist("train", source="ddu", data_dir=tmp_path / "data")
    np.testing.assert_array_equal(xtr[::10], imgs[:6000].reshape(6000, 784))
    np.testing.assert_array_equal(ytr, labels[:6000].reshape(-1))


def test_ddu_missing_and_no_download(tmp_path, monkeypatch):
    monkeypatch.delenv(files.ENV_DATA_DIR, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    monkeypatch.setattr(ddu_pt, "DDU_URL", "http://127.0.0.1:9/")
    with pytest.raises(DatasetFileError, match=r"^ambiguous_mnist/amnist_samples\.pt: not found in data_dir .*download from"):
        load_ambiguous_mnist(source="ddu", data_dir=tmp_path / "missing")
    with pytest.raises(ValueError, match="source must be 'regenerated' or 'ddu', received source='real'"):
        ambiguous.load_ambiguous_unique("real")


def test_cross_check_with_real_torch(tmp_path):
    torch = pytest.importorskip("torch")  # not a dependency; checked when a developer has it
    a = np.arange(2 * 1 * 28 * 28, dtype=np.float32).reshape(2, 1, 28, 28) / 1000
    torch.save(torch.from_numpy(a), tmp_path / "real.pt")
    np.testing.assert_array_equal(read_torch_tensor(tmp_path / "real.pt"), a)
    write_torch_tensor(tmp_path / "ours.pt", a)
    np.testing.assert_array_equal(torch.load(tmp_path / "ours.pt", weights_only=True).numpy(), a)


# --- hostile files (issue 10): refused before any large allocation, one line naming the file -------------

def _hostile_pickle(size, stride, numel, offset=0):
    """data.pkl for a tensor of any geometry over storage "0" (the primitives of ddu_pt's writer)."""
    ip, tup, st = ddu_pt._pickle_int, ddu_pt._pickle_tuple, ddu_pt._pickle_str
    pid = tup([st("storage"), pickle.GLOBAL + b"torch\nFloatStorage\n", st("0"), st("cpu"), ip(numel)])
    args = tup([pid + pickle.BINPERSID, ip(offset), tup([ip(s) for s in size]), tup([ip(s) for s in stride]),
                pickle.NEWFALSE, pickle.GLOBAL + b"collections\nOrderedDict\n" + pickle.EMPTY_TUPLE + pickle.REDUCE])
    return (pickle.PROTO + b"\x02" + pickle.GLOBAL + b"torch._utils\n_rebuild_tensor_v2\n" + args + pickle.REDUCE
            + pickle.STOP)


def _hostile_file(path, size, stride, numel, storage_bytes, compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compress) as zf:
        zf.writestr("h/data.pkl", _hostile_pickle(size, stride, numel))
        zf.writestr("h/data/0", storage_bytes)
    return path


@pytest.mark.parametrize("size, stride, numel, match", [
    ((1 << 20,), (0,), 1, r"stride-0 or overlapping view"),  # 1 float stored, 4 MiB out (1 GiB with 2**28)
    ((4, 4), (1, 1), 16, r"stride-0 or overlapping view"),  # rows overlap: 7 distinct elements read as 16
    ((3, 2), (1, 2), 6, r"stride-0 or overlapping view"),  # dims interleave onto the same elements
    ((10,), (1,), 4, r"exceeds its storage of 4 elements"),
])
def test_stride0_and_overlapping_views_are_refused(tmp_path, size, stride, numel, match):
    p = _hostile_file(tmp_path / "h.pt", size, stride, numel, np.zeros(numel, np.float32).tobytes())
    with pytest.raises(DatasetFileError, match=rf"^{p}: tensor size=.*{match}") as e:
        read_torch_tensor(p)
    assert "\n" not in str(e.value)


def test_valid_strided_views_still_read(tmp_path):
    base = np.arange(12, dtype=np.float32)
    for size, stride, expect in [((3, 4), (4, 1), base.reshape(3, 4)), ((4, 3), (1, 4), base.reshape(3, 4).T),
                                 ((2, 2), (6, 2), base[[0, 2, 6, 8]].reshape(2, 2)), ((1, 5), (0, 1), base[None, :5])]:
        p = _hostile_file(tmp_path / "v.pt", size, stride, 12, base.tobytes())
        np.testing.assert_array_equal(read_torch_tensor(p), expect)


def test_storage_larger_than_declared_is_refused(tmp_path):
    p = _hostile_file(tmp_path / "m.pt", (4,), (1,), 4, np.zeros(1000, np.float32).tobytes())
    with pytest.raises(DatasetFileError, match=rf"^{p}: storage h/data/0 holds 4000 bytes, declared 4 x FloatStorage"):
        read_torch_tensor(p)


def test_deflate_bomb_is_refused_without_inflating(tmp_path):
    # 80 MB of zeros deflate to ~80 KB; the storage record is over MAX_MEMBER_BYTES (64 MiB)
    n = 20_000_000
    p = _hostile_file(tmp_path / "bomb.pt", (n,), (1,), n, bytes(4 * n), zipfile.ZIP_DEFLATED)
    assert p.stat().st_size < 200_000
    with pytest.raises(DatasetFileError, match=rf"^{p}: .*(over the cap|MAX_ELEMENTS)"):
        read_torch_tensor(p)


def test_member_that_lies_about_its_size_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(ddu_pt, "MAX_MEMBER_BYTES", 4096)
    p = _hostile_file(tmp_path / "lie.pt", (2000,), (1,), 2000, bytes(8000), zipfile.ZIP_DEFLATED)
    with pytest.raises(DatasetFileError, match=rf"^{p}: record h/data/0 declares 8000 bytes, over the cap of 4096"):
        read_torch_tensor(p)
    # the central directory claims 100 bytes: reading stops at the cap, never at the real 8000
    raw = bytearray(p.read_bytes())
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):
        start = 0
        while (i := raw.find(sig, start)) >= 0:
            name_off = 30 if sig == b"PK\x03\x04" else 46
            if raw[i + name_off: i + name_off + 8] == b"h/data/0":
                off = 22 if sig == b"PK\x03\x04" else 24
                raw[i + off: i + off + 4] = (100).to_bytes(4, "little")
            start = i + 4
    p.write_bytes(bytes(raw))
    with pytest.raises(DatasetFileError, match=rf"^{p}: (corrupt record|storage h/data/0 holds)"):
        read_torch_tensor(p)


def test_declared_elements_are_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(ddu_pt, "MAX_ELEMENTS", 1000)
    p = write_torch_tensor(tmp_path / "big.pt", np.zeros(2000, np.float32))
    with pytest.raises(DatasetFileError, match=rf"^{p}: declares more than 1000 elements"):
        read_torch_tensor(p)
