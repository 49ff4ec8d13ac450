"""A few real test images of each Dirty-MNIST set, for on-device checks (C test vectors, firmware runs, benches):
`tflite_export` takes images as arguments and never reads data sets itself."""

from __future__ import annotations

import numpy as np


def sample_test_images(per_set=4, data_dir=None, seed=0):
    """(uint8 images [3*per_set, 784], source names): MNIST test, Ambiguous-MNIST, Fashion-MNIST test.

    Ambiguous-MNIST comes from the cached regeneration when it exists; otherwise from pixel-wise
    means of two MNIST test digits of different classes, named "ambiguous-blend" (enough for a
    bit-exactness test; not a substitute for the real set in evaluations).
    """
    from tfqbnn.datasets.mnist import load_idx_uint8

    rng = np.random.default_rng(seed)
    mx, my = load_idx_uint8("mnist", "test", data_dir)
    fx, _ = load_idx_uint8("fashion_mnist", "test", data_dir)
    mnist = mx[rng.choice(len(mx), per_set, replace=False)].reshape(per_set, -1)
    fashion = fx[rng.choice(len(fx), per_set, replace=False)].reshape(per_set, -1)
    try:
        from tfqbnn.datasets.ambiguous import load_regenerated_arrays

        arrays, _, _ = load_regenerated_arrays(regenerate=False, data_dir=data_dir)
        amb = arrays["x"][6000 + rng.choice(6000, per_set, replace=False)].reshape(per_set, -1).astype(np.uint8)
        amb_name = "ambiguous"
    except Exception:  # no cached regeneration: two-digit blends
        amb = []
        while len(amb) < per_set:
            i, j = rng.choice(len(mx), 2, replace=False)
            if my[i] != my[j]:
                amb.append(((mx[i].astype(np.uint16) + mx[j]) // 2).astype(np.uint8).reshape(-1))
        amb = np.stack(amb)
        amb_name = "ambiguous-blend"
    images = np.concatenate([mnist, amb, fashion])
    return images, ["mnist"] * per_set + [amb_name] * per_set + ["fashion"] * per_set
