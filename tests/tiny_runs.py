"""A tiny random Dirty-MNIST and one- or two-epoch profiles: training runs of seconds, for the tests of run folders
and training options."""

import numpy as np

TINY = dict(pretrain_epochs=1, bnn_epochs=2, batch_size=64, eval_samples=2)


def tiny_data(seed=0):
    from tfqbnn.datasets.dirty import DirtyMNIST

    rng = np.random.default_rng(seed)

    def xy(n):
        return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64)

    return DirtyMNIST(*xy(256), *xy(64), *xy(40), *xy(40), *xy(40), source={"name": "tiny"})


def tiny_profile(**kw):
    from tfqbnn.training import Profile

    return Profile(**{**TINY, **kw})
