"""Training throughput of tfqbnn layers against a plain Keras Dense MLP.

Prints samples/s per configuration, compiled both ways Keras offers on CPU --
its default (``jit_compile="auto"``, which is no XLA on a CPU-only machine) and
``jit_compile=True`` -- and each one's time per epoch relative to the faster
plain Dense (goal: jq4 <= 1.5x).  Same shape everywhere: 784-100-100-10,
SoftPlus, bias-free, batch 128, synthetic data, Adam.  The tfqbnn models train
with `KLAnnealing` scheduled as in a 10-epoch run.  The first epoch (tracing) is
excluded; configurations are timed round-robin and the best of ``--repeats``
epochs is kept, so drifting machine load hits all of them alike.

LeNet-5 (second table): the training step of the fully Bayesian jq4 LeNet
(`Conv2DVariational` + `DenseVariational`) against the same network of plain Keras
`Conv2D` / `Dense` layers, timed in the same run the same way; then `predict_mc`
at S = 30 for the "all" and "head" models (the head model runs its deterministic
convolutions once per image), and S = 30 in one call against 30 calls of S = 1.

    python scripts/bench_train.py [--steps 300] [--repeats 5] [--lenet-steps 40] [--skip-mlp]
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
    if name == "lenet-conv2d":
        return models.deterministic_lenet5(seed=0)
    if name.startswith("lenet-"):  # lenet-jq4
        return models.lenet5("all", quantization=name[len("lenet-"):], num_examples=n, seed=0)
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
            cbs = [] if name in ("dense", "lenet-conv2d") else [callbacks.KLAnnealing(total_steps=10 * steps)]
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


def lenet_report(rates):
    """LeNet rows: jq4 Conv2DVariational model against the plain Keras Conv2D one, per compile mode."""
    lines = [f"{'LeNet-5':<14}" + "".join(f" {m + ' samples/s':>19}" for m in MODES)]
    for name in ("lenet-conv2d", "lenet-jq4"):
        lines.append(f"{name:<14}" + "".join(f" {rates[name, m]:>19,.0f}" for m in MODES))
    ratios = {m: rates["lenet-conv2d", m] / rates["lenet-jq4", m] for m in MODES}
    best = rates["lenet-conv2d", max(MODES, key=lambda m: rates["lenet-conv2d", m])] / max(
        rates["lenet-jq4", m] for m in MODES)
    lines.append("training step, Conv2DVariational jq4 / plain Keras Conv2D: "
                 + ", ".join(f"{m} {r:.2f}x" for m, r in ratios.items()) + f"; best vs best {best:.2f}x")
    return "\n".join(lines)


def time_predict_mc(n_images=1000, samples=30, repeats=3):
    """Seconds of `predict_mc` (best of ``repeats``) for the LeNet "all" and "head" models, and for
    "all" as ``samples`` separate S = 1 calls."""
    from tfqbnn import uncertainty

    x = np.random.default_rng(1).uniform(0, 1, (n_images, 784)).astype("float32")
    nets = {"all": models.lenet5("all", quantization="jq4", seed=0),
            "head": models.lenet5("head", quantization="jq4", deterministic_bits=4, seed=0)}
    out = {}
    for name, model in nets.items():
        uncertainty.predict_mc(model, x[:64], samples)  # trace
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            uncertainty.predict_mc(model, x, samples)
            best = min(best, time.perf_counter() - t)
        out[name] = best
    uncertainty.predict_mc(nets["all"], x[:64], 1)
    t = time.perf_counter()
    for _ in range(samples):
        uncertainty.predict_mc(nets["all"], x, 1)
    out["all, S separate calls"] = time.perf_counter() - t
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300, help="batches per timed epoch")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--configs", default="dense,fp32,vpq4,spq4,jq4")
    p.add_argument("--lenet-steps", type=int, default=40, help="batches per timed LeNet epoch")
    p.add_argument("--mc-images", type=int, default=1000, help="images for the predict_mc timing")
    p.add_argument("--skip-mlp", action="store_true", help="only the LeNet measurements")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    n = max(args.steps, args.lenet_steps) * 128
    x = rng.uniform(0, 1, (n, 784)).astype("float32")
    y = rng.integers(0, 10, n)
    names = args.configs.split(",")
    if not args.skip_mlp:
        rates = measure(names, x, y, args.steps, args.repeats)
        print(f"batch 128; {args.steps} steps per epoch, best of {args.repeats}; "
              "default = Keras' jit_compile='auto' (no XLA on CPU), xla = jit_compile=True")
        print(report(rates, names))
    lenet = measure(["lenet-conv2d", "lenet-jq4"], x, y, args.lenet_steps, args.repeats)
    print(f"\nLeNet-5, batch 128; {args.lenet_steps} steps per epoch, best of {args.repeats}")
    print(lenet_report(lenet))
    mc = time_predict_mc(args.mc_images)
    print(f"\npredict_mc, LeNet-5 jq4, {args.mc_images} images, S = 30 (best of 3):")
    for name, sec in mc.items():
        print(f"  {name:<22} {sec:8.2f} s")
    print(f"  head is {mc['all'] / mc['head']:.1f}x faster than all; one call of S = 30 is "
          f"{mc['all, S separate calls'] / mc['all']:.2f}x faster than 30 calls of S = 1")


if __name__ == "__main__":
    main()
