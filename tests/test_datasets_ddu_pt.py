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
