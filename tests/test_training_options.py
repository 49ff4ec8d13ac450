"""Profile options of issue 11: learning-rate schedules per stage and shift augmentation per stage."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from tfqbnn import training
from tfqbnn.training import PROFILES, Profile

from tiny_runs import tiny_data, tiny_profile

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, first, last", [("cosine", 1e-2, 0.0), ("step", 1e-2, 1e-3), ("constant", 1e-2, 1e-2)])
def test_lr_schedule_values(name, first, last):
    rate = training.lr_schedule(name, 1e-2, epochs=3, steps_per_epoch=10)
    at = (lambda s: float(rate(s))) if callable(rate) else (lambda s: float(rate))
    assert at(0) == pytest.approx(first)
    assert at(30) == pytest.approx(last, abs=1e-9)
    if name == "step":  # the last third of the epochs (1 of 3) at a tenth
        assert at(19) == pytest.approx(1e-2) and at(20) == pytest.approx(1e-3)


def test_profile_rejects_unknown_options():
    with pytest.raises(ValueError, match="bnn_lr_schedule"):
        Profile(1, 1, bnn_lr_schedule="linear")
    with pytest.raises(ValueError, match="augment_shift"):
        Profile(1, 1, augment_shift=-1)
    with pytest.raises(ValueError, match="bnn_augment_shift.*received 14"):
        Profile(1, 1, bnn_augment_shift=14)


def test_existing_profiles_keep_their_fingerprint():
    """The new fields are left out at their default: published run folders and caches stay valid."""
    published = json.loads((ROOT / "results/lenet5_lenet/lenet5-jq4-all/s0/run.json").read_text())
    fp = training.RunConfig("jq4", "lenet", 0, arch="lenet5").fingerprint(tiny_data())
    assert fp["profile"] == published["fingerprint"]["profile"]
    new = {"pretrain_lr_schedule", "bnn_lr_schedule", "augment_shift", "bnn_augment_shift"}
    defaults = Profile(pretrain_epochs=1, bnn_epochs=1)
    for p in PROFILES.values():  # a new field is in the fingerprint exactly when the profile sets it
        set_here = {f for f in new if getattr(p, f) != getattr(defaults, f)}
        assert set(training.profile_fingerprint(p)) == {f.name for f in dataclasses.fields(Profile)} - new | set_here
    assert training.profile_fingerprint(PROFILES["lenet-aug"])["augment_shift"] == 2
    custom = training.profile_fingerprint(dataclasses.replace(PROFILES["lenet"], bnn_lr_schedule="step"))
    assert custom["bnn_lr_schedule"] == "step" and "augment_shift" not in custom


def test_shift_images_keeps_shape_and_shifts_by_whole_pixels():
    rng = np.random.default_rng(0)
    x = rng.random((64, 784), dtype=np.float32)
    out = training.shift_images(x, 2).numpy()
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not np.array_equal(out, x)
    img, got = x.reshape(-1, 28, 28), out.reshape(-1, 28, 28)
    for i in range(len(x)):  # each output is its input shifted by (dy, dx) in [-2, 2]^2, zero-filled
        pad = np.pad(img[i], 2)
        assert any(np.array_equal(got[i], pad[2 - dy: 30 - dy, 2 - dx: 30 - dx])
                   for dy in range(-2, 3) for dx in range(-2, 3))
    assert np.array_equal(training.shift_images(x, 0).numpy(), x)


def test_augmented_batches_keep_labels():
    """Every batch pairs each shifted image with its own label (the label is encoded in the image centre)."""
    y = np.arange(300) % 10
    x = np.zeros((300, 28, 28), np.float32)
    x[:, 9:19, 9:19] = (y + 1)[:, None, None]
    ds = training._augmented_dataset(x.reshape(300, 784), y, 64, 2, seed=0)
    seen, changed = 0, False
    for xb, yb in ds:
        xb = xb.numpy().reshape(-1, 28, 28)
        assert xb.shape[1:] == (28, 28)
        assert np.array_equal(xb[:, 14, 14] - 1, yb.numpy())
        changed |= bool((xb[:, 9, 9] == 0).any())  # a block corner moved away: the images were shifted
        seen += len(yb)
    assert seen == 300 and changed


def test_fit_applies_the_schedule_and_augmentation(tmp_path):
    """The step schedule is what the optimizer uses: at the last step its rate is a tenth of the start."""
    prof = tiny_profile(pretrain_epochs=3, pretrain_lr=1e-2, pretrain_lr_schedule="step", augment_shift=2)
    model = training.pretrain(tiny_data(), tmp_path / "pre", profile=prof, verbose=0)
    assert int(model.optimizer.iterations) == 3 * 4  # 256 images / batch 64
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    run = json.loads((tmp_path / "pre" / "run.json").read_text())
    assert run["fingerprint"]["profile"]["augment_shift"] == 2


def test_each_stage_shifts_only_with_its_own_option(tmp_path, monkeypatch):
    """`augment_shift` shifts the pretraining images only, `bnn_augment_shift` the Bayesian stage's only."""
    calls = []
    real = training._augmented_dataset

    def spy(x, y, batch_size, max_shift, seed):
        calls.append(max_shift)
        return real(x, y, batch_size, max_shift, seed)

    monkeypatch.setattr(training, "_augmented_dataset", spy)
    prof = tiny_profile(bnn_augment_shift=3)
    det = training.pretrain(tiny_data(), tmp_path / "pre", profile=prof, verbose=0)
    assert calls == []
    training.train_bnn(tiny_data(), det, tmp_path / "bnn", profile=prof, verbose=0)
    assert calls == [3]
    run = json.loads((tmp_path / "bnn" / "run.json").read_text())
    assert run["fingerprint"]["profile"]["bnn_augment_shift"] == 3


def test_augmented_batches_are_the_same_in_every_run():
    """The shifts are a function of the seed, the epoch and the batch (stateless), not of the order in which the
    parallel map runs: two pipelines of one seed give the same batches, epoch after epoch, and the epochs differ."""
    rng = np.random.default_rng(0)
    x = rng.random((2000, 784), dtype=np.float32)
    y = np.arange(2000) % 10

    def epochs(seed):
        ds = training._augmented_dataset(x, y, 50, 2, seed=seed)
        return [np.concatenate([xb.numpy() for xb, _ in ds]) for _ in range(2)]

    a, b = epochs(7), epochs(7)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(a[0], epochs(8)[0])


def test_an_augmented_pretraining_is_reproducible(tmp_path):
    """The same seed gives the same weights with shift augmentation, as without it."""
    prof = tiny_profile(pretrain_epochs=2, augment_shift=2)
    a = training.pretrain(tiny_data(), tmp_path / "a", profile=prof, verbose=0)
    b = training.pretrain(tiny_data(), tmp_path / "b", profile=prof, verbose=0)
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))
