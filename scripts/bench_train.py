"""Training throughput of tfqbnn layers against a plain Keras Dense MLP.

Prints samples/s per configuration and the ratio of its time per epoch to plain
Dense (goal: jq4 <= 1.5x).  Same shape everywhere: 784-100-100-10, SoftPlus,
bias-free, batch 128, synthetic data, Adam; the first epoch (tracing) is excluded.

    python scripts/bench_train.py [--steps 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
from tqdm import tqdm

from tfqbnn import callbacks, models


def _build(name, n):
    if name == "dense":
        return models.deterministic_mlp(seed=0)
    return models.mlp(quantization=name, num_examples=n, seed=0)


def measure(names, x, y, steps, repeats, batch_size=128, jit_compile="auto"):
    """Best-of-``repeats`` samples/s of ``model.fit`` over ``steps`` batches, per config.

    Configurations are timed round-robin, so drifting machine load hits all alike.
    """
    n = steps * batch_size
    runs = {}
    for name in names:
        keras.utils.set_random_seed(0)
        model = _build(name, len(x))
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", jit_compile=jit_compile)
        cbs = [] if name == "dense" else [callbacks.KLAnnealing()]
        model.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, verbose=0, callbacks=cbs)  # trace
        runs[name] = (model, cbs)
    best = dict.fromkeys(names, 0.0)
    for _ in tqdm(range(repeats), desc="repeats"):
        for name, (model, cbs) in runs.items():
            t = time.perf_counter()
            model.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, verbose=0, callbacks=cbs)
            best[name] = max(best[name], n / (time.perf_counter() - t))
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300, help="batches per timed epoch")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--configs", default="dense,fp32,vpq4,spq4,jq4")
    p.add_argument("--jit", action="store_true", help="compile every model with XLA (jit_compile=True)")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    n = args.steps * 128
    x = rng.uniform(0, 1, (n, 784)).astype("float32")
    y = rng.integers(0, 10, n)
    rates = measure(args.configs.split(","), x, y, args.steps, args.repeats,
                    jit_compile=True if args.jit else "auto")
    base = rates.get("dense")
    print(f"jit_compile={'True' if args.jit else 'auto (off on CPU)'}; batch 128; {args.steps} steps, best of {args.repeats}")
    print(f"{'model':<8} {'samples/s':>10} {'time vs dense':>14}")
    for name, r in rates.items():
        ratio = f"{base / r:.2f}x" if base else "-"
        print(f"{name:<8} {r:>10.0f} {ratio:>14}")


if __name__ == "__main__":
    main()
