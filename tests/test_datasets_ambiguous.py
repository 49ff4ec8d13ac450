"""Ambiguous-MNIST regeneration (small profile, shared per session) and Dirty-MNIST splits."""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from tfqbnn.datasets import DatasetFileError, ambiguous, load_ambiguous_mnist, load_dirty_mnist, recipe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def small_cache(small_ambiguous_cache):
    """The session's small regeneration (conftest), shared with the pipeline tests: made once."""
    d = small_ambiguous_cache
    return d, json.loads((d / "ambiguous_mnist-small-seed0.json").read_text())


def _entropy(p):
    p = np.clip(p.astype(np.float64), 1e-12, 1)
    return -(p * np.log(p)).sum(-1)


def test_cache_files_and_manifest(small_cache):
    d, manifest = small_cache
    stem = "ambiguous_mnist-small-seed0"
    for suffix in (".npz", ".json", "_report.json", "_entropy.png", "_samples.png"):
        assert os.path.getsize(d / (stem + suffix)) > 0
    on_disk = json.load(open(d / (stem + ".json")))
    assert on_disk["sha256"] == hashlib.sha256((d / (stem + ".npz")).read_bytes()).hexdigest()
    assert on_disk["seed"] == 0 and on_disk["profile"] == "small"
    assert on_disk["pool_size"] == recipe.get_config("small").pool_size
    assert on_disk["versions"]["tensorflow"] and on_disk["versions"]["numpy"] == np.__version__
    assert (d / (stem + "_entropy.png")).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_recipe_constraints_and_layout(small_cache):
    d, _ = small_cache
    z = np.load(d / "ambiguous_mnist-small-seed0.npz")
    x, labels, probs = z["x"], z["labels"], z["predictions"]
    assert x.shape == (12000, 28, 28) and x.dtype == np.uint8
    assert labels.shape == (12000, 10) and labels.min() >= 0 and labels.max() <= 9
    h = _entropy(probs)
    assert h.min() >= 0.05 - 1e-4 and h.max() < 3.0  # kept window 0.05 <= H < 3
    assert z["mi"].max() <= 0.05 + 1e-6 and z["pool_mi"].max() <= 0.05 + 1e-6
    # every drawn label had non-negligible ensemble probability; label frequencies follow the softmax
    drawn_p = np.take_along_axis(probs, labels, 1)
    assert drawn_p.min() > 0
    assert abs(drawn_p.mean() - (probs.astype(np.float64) ** 2).sum(1).mean()) < 0.01  # E[p_label] = sum p^2
    agree = (labels == probs.argmax(1)[:, None]).mean()
    assert abs(agree - probs.max(1).mean()) < 0.01
    # entropy flattening: high-entropy samples are over-represented relative to the kept pool
    pool = z["pool_entropy"]
    assert (h > 0.8).mean() > 2 * (pool > 0.8).mean()
    # train and test share no image
    tr = {row.tobytes() for row in x[:6000]}
    assert not any(row.tobytes() in tr for row in x[6000:])


def test_load_flattened_layout_and_source(small_cache, monkeypatch):
    d, manifest = small_cache
    monkeypatch.setattr(recipe, "regenerate", lambda *a, **k: pytest.fail("cache not reused"))
    z = np.load(d / "ambiguous_mnist-small-seed0.npz")
    res = load_ambiguous_mnist("train", profile="small", cache_dir=d)
    x, y = res
    assert x.shape == (60000, 784) and x.dtype == np.float32 and y.shape == (60000,) and y.dtype == np.int64
    assert res.source["name"] == "regenerated" and res.source["sha256"] == manifest["sha256"]
    np.testing.assert_array_equal(x[::10] * 255, z["x"][:6000].reshape(6000, 784).astype(np.float32))
    np.testing.assert_array_equal(x[3::10], x[::10])
    np.testing.assert_array_equal(y, z["labels"][:6000].reshape(-1))
    xt, yt = load_ambiguous_mnist("test", profile="small", cache_dir=d)
    np.testing.assert_array_equal(yt[10:20], z["labels"][6001])
    assert 0.0 <= xt.min() and xt.max() <= 1.0


def test_tampered_cache_is_refused(small_cache, tmp_path):
    d, manifest = small_cache
    for f in os.listdir(d):
        shutil.copy(d / f, tmp_path / f)
    npz = tmp_path / "ambiguous_mnist-small-seed0.npz"
    data = bytearray(npz.read_bytes())
    data[-100] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(DatasetFileError, match=rf"seed0\.npz: sha256 mismatch: expected {manifest['sha256']}, actual"):
        load_ambiguous_mnist("train", profile="small", cache_dir=tmp_path)


def test_dirty_mnist_ddu_sizes_and_validation(small_cache):
    d, _ = small_cache
    full = load_dirty_mnist(profile="small", validation_fraction=0, cache_dir=d)
    assert full.sizes() == {
        "train": 120000, "val": 0, "test_mnist": 10000, "test_ambiguous": 60000, "test_combined": 70000, "ood": 10000,
    }
    assert full.x_test_combined.shape == (70000, 784) and full.test_is_ambiguous.sum() == 60000
    assert full.train_is_ambiguous.sum() == 60000 and full.x_train.dtype == np.float32
    assert full.source["name"] == "regenerated"

    ds = load_dirty_mnist(profile="small", validation_fraction=0.1, seed=3, cache_dir=d)
    assert ds.source["seed"] == 0 and ds.source["validation_seed"] == 3
    assert len(ds.x_train) == 108000 and len(ds.x_val) == 12000 and ds.val_is_ambiguous.sum() == 6000
    assert len(ds.y_train) == len(ds.x_train) and len(ds.y_val) == len(ds.x_val)
    # validation comes from training data and shares no ambiguous image with train
    train_amb = {r.tobytes() for r in ds.x_train[ds.train_is_ambiguous][::10]}
    val_amb = {r.tobytes() for r in ds.x_val[ds.val_is_ambiguous][::10]}
    all_train_amb = {r.tobytes() for r in full.x_train[full.train_is_ambiguous][::10]}
    assert len(val_amb) == 600 and not (train_amb & val_amb) and val_amb <= all_train_amb
    test_amb = {r.tobytes() for r in full.x_amb_test[::10]}
    assert not (val_amb & test_amb)
    np.testing.assert_array_equal(ds.x_test, full.x_test)
    with pytest.raises(ValueError, match="validation_fraction must be in"):
        load_dirty_mnist(profile="small", validation_fraction=1.0, cache_dir=d)


def test_regeneration_is_deterministic():
    cfg = recipe.get_config(
        "small", pool_size=12000, train_images=1500, validation_images=300, vae_epochs=1, lenet_epochs=1,
        groups_per_step=32,
    )
    a, _ = recipe.regenerate(seed=5, config=cfg, progress=False)
    b, _ = recipe.regenerate(seed=5, config=cfg, progress=False)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_subsampling_and_labels_follow_the_recipe():
    # Synthetic pool: 90 % of entropies low, few high; the flattened subsample must even this out.
    rng = np.random.default_rng(0)
    h = np.r_[rng.uniform(0.05, 0.3, 90000), rng.uniform(0.3, 1.6, 10000)].astype(np.float32)
    cfg = recipe.get_config("small")
    tr, te = recipe.subsample_flattened(h, cfg, np.random.default_rng(1))
    assert len(tr) == 6000 and len(te) == 6000 and len(np.unique(np.r_[tr, te])) == 12000
    assert (h[np.r_[tr, te]] > 0.3).mean() > 0.5 > (h > 0.3).mean()
    tr2, _ = recipe.subsample_flattened(h, cfg, np.random.default_rng(1))
    np.testing.assert_array_equal(tr, tr2)
    p = np.array([[0.7, 0.3] + [0] * 8, [0] * 9 + [1.0]])
    lab = recipe.draw_labels(np.repeat(p, 5000, 0), 10, np.random.default_rng(2))
    assert set(np.unique(lab[:5000])) == {0, 1} and abs((lab[:5000] == 0).mean() - 0.7) < 0.01
    assert (lab[5000:] == 9).all()
