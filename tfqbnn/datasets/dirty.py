"""Dirty-MNIST (DDU): MNIST + Ambiguous-MNIST for training, Fashion-MNIST test as OOD, plus a validation
split carved from the training data (never from a test set)."""

import dataclasses
import functools

import numpy as np

from tfqbnn.datasets.ambiguous import LABELS_PER_IMAGE, NUM_TRAIN_IMAGES, load_ambiguous_unique
from tfqbnn.datasets.mnist import load_idx_uint8


def _to_flat_float(x):
    x = x.reshape(len(x), 784)
    return x.astype(np.float32) / np.float32(255.0) if x.dtype == np.uint8 else x.astype(np.float32)


@dataclasses.dataclass
class DirtyMNIST:
    """Arrays are float32 [N, 784] in [0, 1] (no mean/std normalisation) and int64 labels [N].

    Train holds MNIST-train then Ambiguous-train pairs (not shuffled); `train_is_ambiguous` /
    `val_is_ambiguous` mark the Ambiguous rows. DDU sizes with validation_fraction=0: train 120000,
    test 10000 MNIST + 60000 Ambiguous (`x_test_combined`, 70000), OOD 10000.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray  # MNIST test, 10000
    y_test: np.ndarray
    x_amb_test: np.ndarray  # Ambiguous-MNIST test, 60000 pairs (6000 images x 10 labels)
    y_amb_test: np.ndarray
    x_ood: np.ndarray  # Fashion-MNIST test, 10000
    y_ood: np.ndarray
    source: dict
    train_is_ambiguous: np.ndarray = None
    val_is_ambiguous: np.ndarray = None

    @functools.cached_property
    def x_test_combined(self):
        """DDU's Dirty-MNIST test set: MNIST test (10000) then Ambiguous test (60000)."""
        return np.concatenate([self.x_test, self.x_amb_test])

    @functools.cached_property
    def y_test_combined(self):
        return np.concatenate([self.y_test, self.y_amb_test])

    @property
    def test_is_ambiguous(self):
        """Boolean mask over `x_test_combined`: True for the Ambiguous rows."""
        return np.r_[np.zeros(len(self.x_test), bool), np.ones(len(self.x_amb_test), bool)]

    def sizes(self):
        return {
            "train": len(self.x_train),
            "val": len(self.x_val),
            "test_mnist": len(self.x_test),
            "test_ambiguous": len(self.x_amb_test),
            "test_combined": len(self.x_test) + len(self.x_amb_test),
            "ood": len(self.x_ood),
        }


def load_dirty_mnist(
    data_dir=None,
    ambiguous_source="regenerated",
    profile="default",
    validation_fraction=0.1,
    seed=0,
    cache_dir=None,
    ambiguous_seed=0,
):
    """Loads Dirty-MNIST with DDU's splits and a validation split carved from training data.

    Args:
        validation_fraction: share of MNIST-train images and of Ambiguous-train *images* (all 10 label
            pairs of an image go to the same side) moved to validation; 0 gives DDU's 120000 train pairs.
        seed: seeds the validation carve.
        ambiguous_source: `source` of `load_ambiguous_mnist`.
        profile: `profile` of `load_ambiguous_mnist`.
        ambiguous_seed: `seed` of `load_ambiguous_mnist` (which regeneration to use).
        cache_dir: `cache_dir` of `load_ambiguous_mnist`.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), received validation_fraction={validation_fraction!r}")
    xm, ym = load_idx_uint8("mnist", "train", data_dir)
    xt, yt = load_idx_uint8("mnist", "test", data_dir)
    xf, yf = load_idx_uint8("fashion_mnist", "test", data_dir)
    amb_x, amb_labels, src = load_ambiguous_unique(ambiguous_source, data_dir, profile, ambiguous_seed, cache_dir)

    rng = np.random.default_rng([seed, 20210224])
    m_perm = rng.permutation(len(xm))
    m_val = np.sort(m_perm[: round(len(xm) * validation_fraction)])
    m_tr = np.sort(m_perm[len(m_val) :])
    a_perm = rng.permutation(NUM_TRAIN_IMAGES)  # Ambiguous train images only (0..5999)
    a_val = np.sort(a_perm[: round(NUM_TRAIN_IMAGES * validation_fraction)])
    a_tr = np.sort(a_perm[len(a_val) :])

    def amb_pairs(img_idx):
        x = np.repeat(amb_x[img_idx], LABELS_PER_IMAGE, axis=0)
        return x, amb_labels[img_idx].reshape(-1).astype(np.int64)

    def part(m_idx, a_idx):
        ax, ay = amb_pairs(a_idx)
        x = np.concatenate([_to_flat_float(xm[m_idx]), _to_flat_float(ax)])
        y = np.concatenate([ym[m_idx], ay])
        return x, y, np.r_[np.zeros(len(m_idx), bool), np.ones(len(ay), bool)]

    x_train, y_train, tr_amb = part(m_tr, a_tr)
    x_val, y_val, val_amb = part(m_val, a_val)
    x_amb_test, y_amb_test = amb_pairs(np.arange(NUM_TRAIN_IMAGES, len(amb_x)))
    source = dict(src, validation_fraction=validation_fraction, validation_seed=seed)
    return DirtyMNIST(
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=_to_flat_float(xt),
        y_test=yt,
        x_amb_test=_to_flat_float(x_amb_test),
        y_amb_test=y_amb_test,
        x_ood=_to_flat_float(xf),
        y_ood=yf,
        source=source,
        train_is_ambiguous=tr_amb,
        val_is_ambiguous=val_amb,
    )
