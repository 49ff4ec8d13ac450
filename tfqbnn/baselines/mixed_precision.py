"""The deterministic mixed-precision baseline of the memory-uncertainty front: HGQ2 (high-granularity
quantization, Keras 3) with a learned bit width per weight and a memory penalty.

Each weight has its own fixed-point format (HGQ2's ``kbi`` weight quantizer: 1 sign bit, ``b`` magnitude
bits, ``i`` integer bits, saturating and symmetric); ``b`` and ``i`` are trained with the weights. The
penalty is HGQ2's bit-width regularizer ``MonoL1(beta)`` on ``b``: ``beta * sum of b`` over all weights is
added to the cross-entropy, so ``beta`` trades memory for accuracy and a weight driven to ``b = 0`` is
pruned (it is 0 and stores nothing). Activations stay float (no input / output quantizers), as in the
Bayesian models of the front; EBOPs (HGQ2's FPGA cost, bits of input times bits of weight) are off because
the front measures memory.

Stored bytes of a point: per layer, ``ceil(sum over its weights of (b + 1 sign bit, 0 if b = 0) / 8)``,
summed over layers; the models are bias-free, so that is every parameter. It leaves out the per-weight
formats, which a dense memory layout must also hold: ``index_bytes`` (recorded beside it) is a lower bound
for them, an index of ``ceil(log2(F))`` bits per weight into a per-layer table of its F distinct (b, i)
formats. ``entropy_bytes`` is the other side: the empirical entropy of each layer's quantized weight values, a
lower bound for any code that stores the weights one by one, formats included. The Bayesian points' bytes
count mu and sigma codes only (per-layer widths).

hgq2 is an optional dependency: ``pip install 'tfqbnn[baselines]'`` (it adds hgq2 and quantizers and
changes no pinned package). Everything but `hgq_model` / `train_point` / `run` works without it.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

ARCHS = ("mlp", "lenet5")
KIND = "deterministic"
SIGN_BITS = 1
POINTS_FILE = "points-baseline.json"
INSTALL_HINT = "HGQ2 is not installed: pip install 'tfqbnn[baselines]'  (or: pip install hgq2==0.2.0)"


def require_hgq():
    """Imports hgq (HGQ2) or raises an ImportError that says how to install it."""
    try:
        import hgq
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return hgq


def weight_bits(b, k=SIGN_BITS):
    """Stored bits of fixed-point weights with ``b`` magnitude bits and ``k`` sign bits each (broadcast);
    a weight with ``b <= 0`` is identically 0 and stores nothing. ``b`` is rounded as HGQ2 rounds it."""
    b = np.rint(np.asarray(b, np.float64))
    k = np.broadcast_to(np.asarray(k, np.float64), b.shape)
    return int(np.where(b > 0, b + k, 0.0).sum())


def index_bytes(num_weights, num_formats):
    """Bytes of a per-weight index into a table of ``num_formats`` formats: ceil(n * ceil(log2 F) / 8)."""
    num_weights, num_formats = int(num_weights), int(num_formats)
    if num_weights < 0 or num_formats < 1:
        raise ValueError(f"index_bytes: need num_weights >= 0 and num_formats >= 1; received "
                         f"num_weights={num_weights}, num_formats={num_formats}")
    width = math.ceil(math.log2(num_formats)) if num_formats > 1 else 0
    return -(-num_weights * width // 8)


def entropy_bytes(values):
    """ceil(n * H / 8) for the empirical entropy H (bits) of ``values``: what any lossless code that stores each
    value independently of the others needs, whatever its format (per-weight widths included)."""
    _, counts = np.unique(np.asarray(values).ravel(), return_counts=True)
    n = counts.sum()
    return int(math.ceil(float(np.sum(counts * np.log2(n / counts))) / 8 - 1e-9)) if n else 0


def layer_report(name, b, i, k=SIGN_BITS, values=None):
    """Bookkeeping of one layer's per-weight formats (arrays of the kernel's shape, or broadcastable); with the
    quantized ``values``, also their `entropy_bytes`."""
    b = np.rint(np.asarray(b, np.float64))
    i = np.broadcast_to(np.rint(np.asarray(i, np.float64)), b.shape)
    bits = weight_bits(b, k)
    live = b > 0
    formats = {(int(bb), int(ii)) for bb, ii in zip(b[live].ravel(), i[live].ravel())}
    if not live.all():
        formats.add((0, 0))  # "pruned" is one more format
    widths, counts = np.unique(np.where(live, b + np.broadcast_to(k, b.shape), 0).astype(int), return_counts=True)
    return {"layer": name, "weights": int(b.size), "bits": bits, "stored_bytes": -(-bits // 8),
            "mean_bits": round(bits / max(b.size, 1), 3), "pruned": int((~live).sum()),
            "formats": len(formats), "index_bytes": index_bytes(b.size, max(len(formats), 1)),
            "width_histogram": {str(w): int(c) for w, c in zip(widths, counts)},
            **({} if values is None else {"entropy_bytes": entropy_bytes(values)})}


def point_name(beta):
    return f"hgq-{beta:g}"


def _extra_metrics(metrics):
    """The metrics a deterministic model is judged on besides the Pareto columns: the softmax entropy's
    MNIST / Fashion-MNIST AUROC (its only out-of-distribution score)."""
    return {k: metrics[k] for k in ("auroc_entropy_ood", "mean_predictive_entropy_mnist",
                                    "mean_predictive_entropy_ambiguous", "mean_predictive_entropy_ood")
            if k in metrics}


def baseline_row(beta, seed, metrics, layers, seconds=None, **extra):
    """A row of the Pareto table (`tfqbnn.pareto.COLUMNS`, kind ``"deterministic"``) from `layer_report`s.

    ``auroc_epistemic`` is what `evaluation.metrics_from_probs` gives one softmax pass: every mutual
    information is 0, a constant score, so the AUROC is 0.5 (``mi_defined`` False says it measures nothing).
    """
    from tfqbnn.pareto import _row

    stored = sum(r["stored_bytes"] for r in layers)
    row = _row(point_name(beta), KIND, seed, metrics, stored,
               bits={r["layer"]: r["mean_bits"] for r in layers}, seconds=seconds)
    if all("entropy_bytes" in r for r in layers):
        row["entropy_bytes"] = sum(r["entropy_bytes"] for r in layers)
    row.update(_extra_metrics(metrics))
    row.update(beta=float(beta), mi_defined=False, index_bytes=sum(r["index_bytes"] for r in layers),
               pruned=sum(r["pruned"] for r in layers), layers=layers, **extra)
    return row


# ---- HGQ2 models (need hgq) -------------------------------------------------------------------------------

def _weight_quantizer(beta, init_bits, max_bits):
    from hgq.config import QuantizerConfig
    from hgq.constraints import MinMax
    from hgq.regularizers import MonoL1

    # per-weight formats (no homogeneous axis), starting at init_bits magnitude bits on [-1, 1]
    return QuantizerConfig("kbi", "weight", k0=True, b0=init_bits, i0=0, round_mode="RND", overflow_mode="SAT_SYM",
                           bc=MinMax(0, max_bits), br=MonoL1(beta), homogeneous_axis=(), heterogeneous_axis=None)


def hgq_model(arch, beta, seed=None, init_bits=7, max_bits=12):
    """The bias-free SoftPlus paper MLP (784-100-100-10) or LeNet-5 of `tfqbnn.models` with HGQ2 layers.

    Args:
        arch: ``"mlp"`` or ``"lenet5"``.
        beta: weight of the memory penalty, ``beta * sum of magnitude bits`` added to the loss.
        init_bits: magnitude bits every weight starts with.
        max_bits: upper bound of a weight's magnitude bits.
    """
    if arch not in ARCHS:
        raise ValueError(f"`arch` must be one of {list(ARCHS)}; received arch={arch!r}")
    if not (isinstance(beta, (int, float)) and beta >= 0):
        raise ValueError(f"`beta` must be a number >= 0; received beta={beta!r}")
    require_hgq()
    import keras
    from hgq.layers import QConv2D, QDense

    from tfqbnn import models

    def common(i, act, name):
        return dict(activation=act, use_bias=False, kq_conf=_weight_quantizer(beta, init_bits, max_bits),
                    enable_iq=False, enable_oq=False, enable_ebops=False,
                    kernel_initializer=keras.initializers.GlorotUniform(seed=None if seed is None else seed + i),
                    name=name)

    if arch == "mlp":
        layers = [keras.Input((784,))]
        for i, units in enumerate((100, 100, 10)):
            layers.append(QDense(units, **common(i, "softplus" if i < 2 else None, f"qdense_{i}")))
    else:
        layers = [keras.Input((784,)), keras.layers.Reshape(models.LENET_INPUT, name="image")]
        i = pools = 0
        for spec in models._LENET:  # the layer list of models.lenet5
            if spec[0] == "pool":
                layers.append(keras.layers.MaxPooling2D(2, name=f"pool_{pools}"))
                pools += 1
            elif spec[0] == "flatten":
                layers.append(keras.layers.Flatten(name="flatten"))
            else:
                kw = common(i, "softplus" if spec[1] else None, f"q{spec[0]}_{i}")
                layers.append(QConv2D(spec[1], spec[2], padding=spec[3], **kw) if spec[0] == "conv"
                              else QDense(spec[1] or 10, **kw))
                i += 1
    layers.append(keras.layers.Softmax(name="probs"))
    return keras.Sequential(layers, name=f"hgq_{arch}")


def quantized_layers(model):
    return [l for l in model.layers if hasattr(l, "kq") and getattr(l, "kernel", None) is not None]


def layer_formats(layer):
    """(b, i, k, quantized kernel) of an HGQ2 layer as numpy arrays of the kernel's shape."""
    q = layer.kq.quantizer
    shape = tuple(layer.kernel.shape)
    b, i, k = (np.broadcast_to(np.asarray(v, np.float64), shape) for v in (q.b, q.i, q.k))
    return b, i, k, np.asarray(layer.qkernel, np.float64)


def model_report(model):
    return [layer_report(l.name, *layer_formats(l)) for l in quantized_layers(model)]


def train_point(arch, beta, data, epochs, seed=0, batch_size=128, lr=3e-3, verbose=0):
    """Trains one HGQ2 model from scratch (Adam, cosine decay to 0 over ``epochs``); returns (model, history)."""
    import keras

    keras.utils.set_random_seed(seed)
    model = hgq_model(arch, beta, seed=seed)
    steps = epochs * int(np.ceil(len(data.x_train) / batch_size))
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(steps, 1))),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    h = model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=epochs, shuffle=True,
                  validation_data=(data.x_val, data.y_val) if len(data.x_val) else None, verbose=verbose)
    return model, {k: [float(v) for v in vals] for k, vals in h.history.items()}


def table_markdown(points):
    """Mean ± sd over seeds per beta, most bytes first (bytes, bits and pruned weights vary with the seed)."""
    groups = {}
    for p in points:
        groups.setdefault(p["point"], []).append(p)
    lines = ["| point | seeds | stored bytes | + format index | value entropy | pruned % | accuracy % "
             "| AUROC entropy MNIST/Amb | AUROC entropy MNIST/Fashion | NLL | ECE | mean bits per layer |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def ms(ps, key, scale=1.0, digits=4):
        v = np.array([p[key] for p in ps], float) * scale
        sd = f" ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else ""
        return f"{v.mean():.{digits}f}{sd}"

    for name, ps in sorted(groups.items(), key=lambda kv: -np.mean([p["stored_bytes"] for p in kv[1]])):
        weights = sum(r["weights"] for r in ps[0]["layers"])
        ent = [p["entropy_bytes"] for p in ps if "entropy_bytes" in p]
        entropy = f"{np.mean(ent):,.0f}" + (f" ({len(ent)} seeds)" if 0 < len(ent) < len(ps) else "") if ent else "-"
        has = [p for p in ps if "auroc_entropy_ood" in p]
        ood = (ms(has, "auroc_entropy_ood") + (f" ({len(has)} seeds)" if len(has) < len(ps) else "")) if has else "-"
        bits = " / ".join(f"{np.mean([p['bits'][k] for p in ps]):.2f}" for k in ps[0]["bits"])
        lines.append(f"| {name} | {len(ps)} | {np.mean([p['stored_bytes'] for p in ps]):,.0f} | "
                     f"{np.mean([p['index_bytes'] for p in ps]):,.0f} | {entropy} | "
                     f"{100 * np.mean([p['pruned'] for p in ps]) / weights:.1f} | {ms(ps, 'accuracy', 100, 2)} | "
                     f"{ms(ps, 'auroc_aleatoric')} | {ood} | {ms(ps, 'nll')} | {ms(ps, 'ece')} | {bits} |")
    return "\n".join(lines) + "\n"


def load_points(out):
    path = Path(out) / POINTS_FILE
    return json.loads(path.read_text()) if path.is_file() else []


def run(out, arch, betas, seeds, data, test, epochs, batch_size=128, lr=3e-3, log=print):
    """Every (beta, seed) point not yet in ``out/points-baseline.json``: train, evaluate on ``test`` (one softmax
    pass, `evaluation.evaluate_model`), append its row. Returns all rows of the file."""
    import hgq

    from tfqbnn import evaluation, rundir

    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    points = load_points(out)
    have = {(p["point"], p["seed"]) for p in points}
    for seed in seeds:
        for beta in betas:
            if (point_name(beta), seed) in have:
                continue
            t = time.perf_counter()
            model, history = train_point(arch, beta, data, epochs, seed=seed, batch_size=batch_size, lr=lr)
            train_seconds = time.perf_counter() - t
            metrics, _ = evaluation.evaluate_model(model, test, deterministic=True)
            rundir.savez_compressed(out / "runs" / f"{point_name(beta)}-s{seed}.npz",
                                    **{f"{l.name}_{n}": a for l in quantized_layers(model)
                                       for n, a in zip(("b", "i", "k", "kernel"), layer_formats(l))})
            row = baseline_row(beta, seed, metrics, model_report(model), round(time.perf_counter() - t, 1),
                               arch=arch, method="hgq2", hgq2_version=getattr(hgq, "__version__", None),
                               epochs=epochs, train_seconds=round(train_seconds, 1),
                               val_accuracy=history.get("val_accuracy", [None])[-1])
            points.append(row)
            rundir.write_json(out / POINTS_FILE, points)
            log(f"{row['point']} s{seed}: {row['stored_bytes']} B (+{row['index_bytes']} B formats), "
                f"acc {row['accuracy']:.4f}, entropy AUROC {row['auroc_aleatoric']:.4f}, nll {row['nll']:.4f}, "
                f"ece {row['ece']:.4f}, {row['seconds']:.0f} s")
            del model
    return points


FLOAT_POINT = "det-fp32"


def run_float_reference(out, arch, seeds, data, test, epochs, batch_size=128, lr=3e-3, log=print):
    """The float32 twin of the HGQ2 points (`tfqbnn.models.deterministic_model`, the same schedule) as rows named
    ``det-fp32`` in ``out/points-baseline.json`` (4 bytes per weight), skipping seeds already there."""
    import keras

    from tfqbnn import evaluation, models, rundir
    from tfqbnn.pareto import _row

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    points = load_points(out)
    for seed in seeds:
        if (FLOAT_POINT, seed) in {(p["point"], p["seed"]) for p in points}:
            continue
        t = time.perf_counter()
        keras.utils.set_random_seed(seed)
        model = models.deterministic_model(arch, seed=seed)
        steps = epochs * int(np.ceil(len(data.x_train) / batch_size))
        model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(steps, 1))),
                      "sparse_categorical_crossentropy", metrics=["accuracy"])
        h = model.fit(data.x_train, data.y_train, batch_size=batch_size, epochs=epochs, shuffle=True,
                      validation_data=(data.x_val, data.y_val) if len(data.x_val) else None, verbose=0)
        metrics, _ = evaluation.evaluate_model(model, test, deterministic=True)
        weights = int(model.count_params())
        row = _row(FLOAT_POINT, KIND, seed, metrics, 4 * weights, bits={"all": 32},
                   seconds=round(time.perf_counter() - t, 1))
        row.update(_extra_metrics(metrics))
        row.update(mi_defined=False, index_bytes=0, pruned=0, arch=arch, method="float32", epochs=epochs,
                   val_accuracy=float(h.history["val_accuracy"][-1]) if "val_accuracy" in h.history else None,
                   layers=[{"layer": "all", "weights": weights, "bits": 32 * weights, "stored_bytes": 4 * weights,
                            "mean_bits": 32.0, "pruned": 0, "formats": 1, "index_bytes": 0, "width_histogram": {}}])
        points.append(row)
        rundir.write_json(out / POINTS_FILE, points)
        log(f"{FLOAT_POINT} s{seed}: {row['stored_bytes']} B, acc {row['accuracy']:.4f}, "
            f"entropy AUROC {row['auroc_aleatoric']:.4f}, nll {row['nll']:.4f}, ece {row['ece']:.4f}")
    return points
