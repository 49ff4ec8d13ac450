"""Datasets: MNIST, Fashion-MNIST, Ambiguous-MNIST and Dirty-MNIST as flattened float32 [N, 784] in [0, 1].

Pixels are k/255 with NO mean/std normalisation (the integer export relies on it); labels are int64.
Official files are found via `data_dir`, `$TFQBNN_DATA_DIR`, the Keras cache, else downloaded, and are
always SHA-256-checked (see `files`). Ambiguous-MNIST is regenerated per the DDU recipe and cached
(`$TFQBNN_CACHE_DIR` or ~/.cache/tfqbnn), or read from the real DDU `.pt` files without torch.
"""

from tfqbnn.datasets.ambiguous import SourcedArrays, load_ambiguous_mnist, make_ambiguous_mnist
from tfqbnn.datasets.dirty import DirtyMNIST, load_dirty_mnist
from tfqbnn.datasets.errors import DatasetFileError
from tfqbnn.datasets.mnist import calibration_images, load_fashion_mnist, load_mnist

__all__ = [
    "DatasetFileError",
    "DirtyMNIST",
    "SourcedArrays",
    "calibration_images",
    "load_ambiguous_mnist",
    "load_dirty_mnist",
    "load_fashion_mnist",
    "load_mnist",
    "make_ambiguous_mnist",
]
