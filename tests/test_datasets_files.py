"""Official MNIST / Fashion-MNIST files: lookup, checksums, IDX validation, bad input."""

import gzip
import os
import stat

import numpy as np
import pytest

from tfqbnn.datasets import DatasetFileError, files, load_fashion_mnist, load_mnist
from tfqbnn.datasets.idx import read_idx

SHARED = os.environ.get("TFQBNN_DATA_DIR")


def _idx_bytes(arr, type_code=0x08):
    arr = np.asarray(arr, np.uint8)
    head = bytes([0, 0, type_code, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    return head + arr.tobytes()


def _write_gz(path, data):
    with gzip.open(path, "wb") as f:
        f.write(data)
    return str(path)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No TFQBNN_DATA_DIR, an empty Keras cache, and downloads that fail without touching the network."""
    monkeypatch.delenv(files.ENV_DATA_DIR, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(files, "URLS", {k: ("http://127.0.0.1:9/unreachable/",) for k in files.URLS})
    return tmp_path


def test_idx_roundtrip(tmp_path):
    arr = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    p = _write_gz(tmp_path / "x.gz", _idx_bytes(arr))
    np.testing.assert_array_equal(read_idx(p, expected_shape=(2, 28, 28)), arr)


def test_truncated_gz(tmp_path):
    full = gzip.compress(_idx_bytes(np.ones((50, 28, 28))))
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(full[: len(full) // 2])
    with pytest.raises(DatasetFileError, match=r"train-images-idx3-ubyte\.gz: truncated gzip") as e:
        read_idx(p)
    assert "\n" not in str(e.value)


def test_wrong_magic(tmp_path):
    data = bytearray(_idx_bytes(np.ones((3, 28, 28))))
    data[2] = 0x42  # unknown type code
    p = _write_gz(tmp_path / "bad-magic.gz", bytes(data))
    with pytest.raises(DatasetFileError, match=r"bad-magic\.gz: wrong IDX magic 0x00004203"):
        read_idx(p)


def test_wrong_shape(tmp_path):
    p = _write_gz(tmp_path / "t10k-images-idx3-ubyte.gz", _idx_bytes(np.zeros((10, 28, 27))))
    with pytest.raises(DatasetFileError, match=r"t10k-images-idx3-ubyte\.gz: wrong shape \(10, 28, 27\)"):
        read_idx(p, expected_shape=(None, 28, 28))


def test_header_length_disagrees(tmp_path):
    data = _idx_bytes(np.zeros((10, 28, 28)))[:-5]
    p = _write_gz(tmp_path / "short.gz", data)
    with pytest.raises(DatasetFileError, match=r"short\.gz: IDX header says shape \(10, 28, 28\)"):
        read_idx(p)


def test_checksum_mismatch_names_both_hashes(tmp_path, isolated):
    d = tmp_path / "data" / "mnist"
    d.mkdir(parents=True)
    p = d / "t10k-images-idx3-ubyte.gz"  # a well-formed IDX file, just not the official one
    _write_gz(p, _idx_bytes(np.zeros((10000, 28, 28))))
    before = p.read_bytes()
    actual = files.file_digest(p)
    expected = files.SHA256["mnist/t10k-images-idx3-ubyte.gz"]
    with pytest.raises(DatasetFileError) as e:
        load_mnist("test", data_dir=tmp_path / "data")
    msg = str(e.value)
    assert msg.startswith(str(p)) and f"expected {expected}" in msg and f"actual {actual}" in msg
    assert p.read_bytes() == before  # a user's file is never overwritten


def test_missing_directory_and_no_download(tmp_path, isolated):
    with pytest.raises(DatasetFileError) as e:
        load_fashion_mnist("test", data_dir=tmp_path / "nope")
    msg = str(e.value)
    assert msg.startswith("fashion_mnist/t10k-images-idx3-ubyte.gz: not found in data_dir")
    assert "(missing directory)" in msg and "download failed" in msg and "\n" not in msg
    # nothing half-downloaded left behind in the Keras cache
    cache = tmp_path / "keras_home" / "datasets" / "fashion-mnist"
    assert not cache.exists() or not any(cache.iterdir())


def test_expected_hashes_match_shared_sums():
    if not SHARED or not os.path.isfile(os.path.join(SHARED, "SHA256SUMS")):
        pytest.skip("no shared data dir with SHA256SUMS")
    sums = {}
    for line in open(os.path.join(SHARED, "SHA256SUMS")):
        h, name = line.split()
        sums[name] = h
    assert sums == files.SHA256


@pytest.mark.skipif(not SHARED, reason="TFQBNN_DATA_DIR not set")
def test_loaders_from_read_only_dir(tmp_path, monkeypatch):
    # A read-only copy (like CI's ../shared/data) must work: nothing is written next to the data.
    ro = tmp_path / "ro"
    for ds in ("mnist", "fashion_mnist"):
        (ro / ds).mkdir(parents=True)
        for f in os.listdir(os.path.join(SHARED, ds)):
            os.symlink(os.path.join(SHARED, ds, f), ro / ds / f)
        os.chmod(ro / ds, stat.S_IRUSR | stat.S_IXUSR)
    monkeypatch.delenv(files.ENV_DATA_DIR)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    try:
        x, y = load_mnist("test", data_dir=ro)
        xf, yf = load_fashion_mnist("train", data_dir=ro)
    finally:
        for ds in ("mnist", "fashion_mnist"):
            os.chmod(ro / ds, stat.S_IRWXU)
    assert x.shape == (10000, 784) and x.dtype == np.float32 and y.dtype == np.int64
    assert xf.shape == (60000, 784) and yf.shape == (60000,)
    assert x.min() == 0.0 and x.max() == 1.0
    # values are exactly k/255 (the int8 export relies on it)
    np.testing.assert_array_equal(np.round(x * 255) / np.float32(255), x)
    # well-known facts about the official files
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert np.bincount(yf).tolist() == [6000] * 10
    assert not os.path.exists(tmp_path / "empty")
