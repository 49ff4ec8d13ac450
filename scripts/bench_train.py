"""Training throughput of tfqbnn layers against a plain Keras Dense MLP.

Prints samples/s per configuration, compiled both ways Keras offers on CPU --
its default (``jit_compile="auto"``, which is no XLA on a CPU-only machine) and
``jit_compile=True`` -- and each one's time per epoch relative to the faster
plain Dense (goal: jq4 <= 1.5x).  Same shape everywhere: 784-100-100-10,
SoftPlus, bias-free, batch 128, synthetic data, Adam.  The tfqbnn models train
with `KLAnnealing` scheduled as in a 10-epoch run.  The first epoch (tracing) is
excluded; configurations are timed round-robin and the best of ``--repeats``
epochs is kept, so drifting machine load hits all of them alike.

    python scripts/bench_train.py [--steps 300] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
from tqdm import tqdm

from tfqbnn import callbacks, models

MODES = {"default": "auto", "xla": True}


def _build(name, n):
    if name == "dense":
        return models.deterministic_mlp(seed=0)
    return models.mlp(quantization=name, num_examples=n, seed=0)


def measure(names, x, y, steps, repeats, modes=MODES, batch_size=128):
    """``{(name, mode): best samples/s}`` of ``model.fit`` over ``steps`` batches."""
    n = steps * batch_size
    runs = {}
    for name in names:
        for mode, jit in modes.items():
            keras.utils.set_random_seed(0)
            model = _build(name, len(x))
            model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", jit_compile=jit)
            cbs = [] if name == "dense" else [callbacks.KLAnnealing(total_steps=10 * steps)]
            model.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, verbose=0, callbacks=cbs)  # trace
            runs[name, mode] = (model, cbs)
    best = dict.fromkeys(runs, 0.0)
    for _ in tqdm(range(repeats), desc="repeats"):
        for key, (model, cbs) in runs.items():
            t = time.perf_counter()
            model.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, verbose=0, callbacks=cbs)
            best[key] = max(best[key], n / (time.perf_counter() - t))
    return best


def report(rates, names, modes=MODES):
    """The table as text; ratios are to the faster plain Dense."""
    base = max((r for (name, _), r in rates.items() if name == "dense"), default=None)
    head = f"{'model':<8}" + "".join(f" {m + ' samples/s':>19} {'vs dense':>9}" for m in modes)
    lines = [head]
    for name in names:
        row = f"{name:<8}"
        for mode in modes:
            r = rates[name, mode]
            row += f" {r:>19,.0f} {(f'{base / r:.2f}x' if base else '-'):>9}"
        lines.append(row)
    if base and ("jq4", "xla") in rates:
        best = min(base / rates["jq4", m] for m in modes)
        lines.append(f"goal jq4 <= 1.50x plain Dense: {best:.2f}x -> {'met' if best <= 1.5 else 'MISSED'}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300, help="batches per timed epoch")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--configs", default="dense,fp32,vpq4,spq4,jq4")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    n = args.steps * 128
    x = rng.uniform(0, 1, (n, 784)).astype("float32")
    y = rng.integers(0, 10, n)
    names = args.configs.split(",")
    rates = measure(names, x, y, args.steps, args.repeats)
    print(f"batch 128; {args.steps} steps per epoch, best of {args.repeats}; "
          "default = Keras' jit_compile='auto' (no XLA on CPU), xla = jit_compile=True")
    print(report(rates, names))


if __name__ == "__main__":
    main()
