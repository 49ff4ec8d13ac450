"""MNIST and Fashion-MNIST loaders: flattened float32 pixels in [0, 1], int64 labels."""

import numpy as np

from tfqbnn.datasets import files
from tfqbnn.datasets.errors import DatasetFileError
from tfqbnn.datasets.idx import read_idx

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}


def _check_split(split):
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', received split={split!r}")


def load_idx_uint8(dataset, split, data_dir=None):
    """Returns (images uint8 [N, 28, 28], labels int64 [N]) from the verified official files."""
    _check_split(split)
    img_name, lbl_name, n = _FILES[split]
    x = read_idx(files.locate(dataset, img_name, data_dir), expected_shape=(n, 28, 28))
    y = read_idx(files.locate(dataset, lbl_name, data_dir), expected_shape=(n,))
    if y.max() > 9:
        raise DatasetFileError(lbl_name, f"label {int(y.max())} outside 0..9")
    return x, y.astype(np.int64)


def to_float(x_uint8):
    """uint8 images [N, 28, 28] -> float32 [N, 784] in [0, 1] (k/255: exact for int8 input quantization)."""
    return (np.asarray(x_uint8).reshape(len(x_uint8), -1).astype(np.float32)) / np.float32(255.0)


def load_mnist(split="train", data_dir=None):
    """MNIST: x float32 [N, 784] in [0, 1] (pixel/255, no mean/std normalisation), y int64 [N].

    N is 60000 for split="train" and 10000 for split="test". Files are found as described in
    `tfqbnn.datasets.files` and SHA-256-checked.
    """
    x, y = load_idx_uint8("mnist", split, data_dir)
    return to_float(x), y


def load_fashion_mnist(split="train", data_dir=None):
    """Fashion-MNIST, same format as `load_mnist` (the OOD set of Dirty-MNIST is split="test")."""
    x, y = load_idx_uint8("fashion_mnist", split, data_dir)
    return to_float(x), y


def calibration_images(size=1000, seed=0, data_dir=None):
    """`size` random MNIST training images (float32 [size, 784] in [0, 1]): the calibration set the exporter
    (`tflite_export.export_all(calibration_x=...)`) takes from its caller."""
    x, _ = load_mnist("train", data_dir)
    idx = np.random.default_rng(seed).choice(len(x), size=min(int(size), len(x)), replace=False)
    return np.asarray(x)[idx]
