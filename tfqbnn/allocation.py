"""Per-layer bits for mu and sigma under a byte budget (`allocate_bits`).

1. Sensitivity, on validation data only: for every variational layer and every candidate (mu bits, sigma bits),
   the model with that one layer re-quantized (the others as given) is evaluated by Monte-Carlo with common random
   numbers; the layer's cost for that choice is the (signed) rise of the validation NLL plus ``mi_weight`` times
   the drop of the MI AUROC between validation digits and held-out out-of-distribution images (Fashion-MNIST *train*
   images in the scripts; the test sets are never seen), plus, given which validation rows are ambiguous
   (``val_ambiguous``, e.g. `DirtyMNIST.val_is_ambiguous`), ``aleatoric_weight`` times the drop of the predictive
   entropy AUROC between the other (clean digit) rows and those: the aleatoric split that NLL and MI do not see.
2. An exact dynamic program over the layers picks one choice per layer minimising the summed cost with
   ``sum_l ceil(n_l * (mu_bits + sigma_bits) / 8) <= budget_bytes`` (the PACKED layout's stored bytes, SPEC 2).
3. Optionally `fine_tune`: a short Bayesian training of the chosen configuration from the given weights.

Costs add over layers: an approximation (layers interact), which the fine-tune and the test-set report check.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from tfqbnn.config import QuantizationConfig

# every (mu bits, sigma bits) the PACKED layout stores: mu 2..7, sigma 1..6, sum <= 8
PACKED_CHOICES = tuple((mb, sb) for mb in range(2, 8) for sb in range(1, 9 - mb))


FULL_SIGMA_RANGE = (2.0**-10, 1.0)
EPS_MAX = 2.886  # largest |eps| of the integer sampler's table (SPEC 3.2)


def jq_config(mu_bits, sigma_bits, sigma_range=FULL_SIGMA_RANGE):
    """The JQ config of an exportable layer: samples on the mu grid, sigma on the log grid over `sigma_range`."""
    return QuantizationConfig("jq", mu_bits=int(mu_bits), sigma_bits=int(sigma_bits), sample_bits=int(mu_bits),
                              sigma_range=tuple(float(v) for v in sigma_range))


def sigma_range_candidates(sigma, mu_bits, sigma_bits, fit_bits=3):
    """{name: (min, max)} of the log sigma grids tried for a layer: the full default range, and for
    ``sigma_bits <= fit_bits`` two ranges fitted to the layer's sigma: from the largest sigma that never moves a
    sampled code (sigma * M * max|eps| < 1/2) up to its 99.9th / 90th percentile. A 1- or 2-bit grid over the
    full range puts every moving sigma on a level far from it; the fitted grids spend the levels where sigma acts.
    """
    out = {"full": FULL_SIGMA_RANGE}
    if sigma_bits > fit_bits:
        return out
    m = 2 ** (int(mu_bits) - 1) - 1
    frozen = 0.5 / (m * EPS_MAX)
    s = np.asarray(sigma, np.float64).reshape(-1)
    for name, q in (("fit999", 0.999), ("fit90", 0.9)):
        hi = min(float(np.quantile(s, q)), FULL_SIGMA_RANGE[1])
        lo = max(min(frozen, hi / 2), FULL_SIGMA_RANGE[0])
        if hi > lo:
            out[name] = (lo, hi)
    return out


def variational_layers(model):
    from tfqbnn.layers import VariationalLayer

    return [l for l in model.layers if isinstance(l, VariationalLayer)]


def stored_bytes(num_weights, mu_bits, sigma_bits):
    """ceil(n * (mu bits + sigma bits) / 8)."""
    return -(-int(num_weights) * (int(mu_bits) + int(sigma_bits)) // 8)


def with_quantization(model, configs):
    """A copy of `model` (same weights) whose variational layers use `configs` ({layer name: config})."""
    config = model.get_config()
    names = {l.name for l in variational_layers(model)}
    unknown = sorted(set(configs) - names)
    if unknown:
        raise ValueError(f"with_quantization: {unknown} are not variational layers of {model.name!r} ({sorted(names)})")
    for entry in config["layers"]:
        name = entry.get("config", {}).get("name")
        if name in configs:
            entry["config"]["quantization"] = QuantizationConfig.get(configs[name]).get_config()
    clone = type(model).from_config(config)
    clone.set_weights(model.get_weights())
    return clone


def _check_choices(choices):
    out = []
    for c in choices:
        if not (isinstance(c, (tuple, list)) and len(c) == 2):
            raise ValueError(f"`choices` must be (mu_bits, sigma_bits) pairs; received {c!r}")
        jq_config(*c)  # validates the widths
        out.append((int(c[0]), int(c[1])))
    if not out:
        raise ValueError("`choices` is empty")
    return tuple(dict.fromkeys(out))


def evaluate_val(model, x_val, y_val, x_ood, num_samples, seed, val_ambiguous=None):
    """Validation NLL, accuracy, MI AUROC (x_val vs x_ood) and, with the boolean mask `val_ambiguous`, the
    predictive entropy AUROC (x_val rows outside the mask vs inside it), by Monte-Carlo."""
    from tfqbnn.uncertainty import auroc, decompose, predict_mc

    pv = predict_mc(model, x_val, num_samples=num_samples, seed=seed)
    d = decompose(pv)
    p_true = np.clip(d["mean_probs"][np.arange(len(y_val)), y_val], 1e-12, 1.0)
    out = {"nll": float(-np.log(p_true).mean()), "accuracy": float((d["mean_probs"].argmax(-1) == y_val).mean())}
    if val_ambiguous is not None:
        h = d["predictive_entropy"]
        out["auroc_entropy"] = float(auroc(h[~val_ambiguous], h[val_ambiguous]))
    if x_ood is not None:
        do = decompose(predict_mc(model, x_ood, num_samples=num_samples, seed=seed + 1))
        out["auroc_mi"] = float(auroc(d["epistemic"], do["epistemic"]))
    return out


@dataclasses.dataclass
class Allocation:
    """The result of `allocate_bits`: one (mu bits, sigma bits) per variational layer, in model order."""

    layers: list  # layer names
    bits: list  # [(mu_bits, sigma_bits)]
    sigma_ranges: list  # [(min, max)] of each layer's log sigma grid
    stored_bytes: int
    budget_bytes: int
    predicted_cost: float
    sensitivity: dict  # {layer: {"mb,sb": {"nll", "auroc_mi", "cost", "bytes"}}}
    reference: dict  # validation metrics of the model as given
    seconds: dict

    @property
    def configs(self):
        return [jq_config(*b, r) for b, r in zip(self.bits, self.sigma_ranges)]

    def as_dict(self):
        return {"layers": self.layers, "bits": [list(b) for b in self.bits],
                "sigma_ranges": [list(r) for r in self.sigma_ranges], "stored_bytes": self.stored_bytes,
                "budget_bytes": self.budget_bytes, "predicted_cost": self.predicted_cost,
                "configs": {n: c.get_config() for n, c in zip(self.layers, self.configs)},
                "sensitivity": self.sensitivity, "reference": self.reference, "seconds": self.seconds}


def _check_val_ambiguous(val_ambiguous, n):
    if val_ambiguous is None:
        return None
    mask = np.asarray(val_ambiguous)
    if mask.dtype != bool or mask.shape != (n,) or mask.all() or not mask.any():
        raise ValueError("`val_ambiguous` must be a boolean mask over the validation rows with both values; received "
                         f"dtype {mask.dtype}, shape {mask.shape} for {n} rows, {int(mask.sum())} marked")
    return mask


def _layer_choices(choices, layers):
    """{layer name: checked pairs}: `choices` is one list for every layer or a dict by layer name (a layer not
    in the dict gets every PACKED pair)."""
    if isinstance(choices, dict):
        unknown = sorted(set(choices) - {l.name for l in layers})
        if unknown:
            raise ValueError(f"`choices` names {unknown}, which are not variational layers ({[l.name for l in layers]})")
        return {l.name: _check_choices(choices.get(l.name, PACKED_CHOICES)) for l in layers}
    checked = _check_choices(choices)
    return {l.name: checked for l in layers}


def layer_sensitivity(model, x_val, y_val, x_ood=None, choices=PACKED_CHOICES, num_samples=10, seed=0,
                      mi_weight=1.0, progress=None, fit_bits=3, val_ambiguous=None, aleatoric_weight=1.0):
    """{layer: {(mb, sb, range name): metrics + "cost", "bytes", "sigma_range"}} and the reference metrics: one
    layer re-quantized at a time (`sigma_range_candidates` per (mb, sb); ``fit_bits=0`` tries the full range only).
    `choices`: pairs for every layer, or {layer name: pairs}. `val_ambiguous`: boolean mask of the ambiguous
    validation rows; with it the cost holds ``aleatoric_weight`` times the entropy AUROC drop (module doc)."""
    layers = variational_layers(model)
    choices = _layer_choices(choices, layers)
    val_ambiguous = _check_val_ambiguous(val_ambiguous, len(y_val))
    ref = evaluate_val(model, x_val, y_val, x_ood, num_samples, seed, val_ambiguous)
    table = {}
    for layer in layers:
        rows = {}
        sigma = np.asarray(layer.sigma)
        for (mb, sb), rname, srange in [(c, n, r) for c in choices[layer.name]
                                         for n, r in sigma_range_candidates(sigma, *c, fit_bits).items()]:
            m = evaluate_val(with_quantization(model, {layer.name: jq_config(mb, sb, srange)}), x_val, y_val, x_ood,
                             num_samples, seed, val_ambiguous)
            # signed: a change within the MC noise may be negative; clipping it at 0 would make every such
            # choice free and send the program to the fewest bytes
            cost = m["nll"] - ref["nll"]
            if "auroc_mi" in m:
                cost += mi_weight * (ref["auroc_mi"] - m["auroc_mi"])
            if "auroc_entropy" in m:
                cost += aleatoric_weight * (ref["auroc_entropy"] - m["auroc_entropy"])
            key = (mb, sb, rname)
            rows[key] = {**m, "cost": cost, "bytes": stored_bytes(np.prod(layer.mu.shape), mb, sb),
                         "sigma_range": list(srange)}
            if progress:
                progress(layer.name, key, rows[key])
        table[layer.name] = rows
    return table, ref


def solve(costs, sizes, budget_bytes):
    """Exact minimum of sum_l costs[l][c] subject to sum_l sizes[l][c] <= budget (one choice c per layer).

    `costs`, `sizes`: per layer, {choice: value}. Dynamic program over layers whose states are the Pareto set of
    (bytes, cost) partial assignments (a state with more bytes and no lower cost is dropped): exact, and small
    because each layer has a few dozen choices. Returns (choices, total cost, total bytes) or None if no
    assignment fits.
    """
    states = [(0, 0.0, ())]
    for layer_costs, layer_sizes in zip(costs, sizes):
        grown = [(b + layer_sizes[c], v + layer_costs[c], picks + (c,))
                 for b, v, picks in states for c in layer_costs if b + layer_sizes[c] <= budget_bytes]
        grown.sort(key=lambda s: (s[0], s[1]))
        states, best = [], math.inf
        for s in grown:
            if s[1] < best - 1e-15:
                states.append(s)
                best = s[1]
        if not states:
            return None
    b, v, picks = min(states, key=lambda s: (s[1], -s[0]))  # equal cost: the budget's bytes are free to use
    return list(picks), v, b


def allocate_bits(model, x_val, y_val, budget_bytes, x_ood=None, choices=PACKED_CHOICES, num_samples=10, seed=0,
                  mi_weight=1.0, sensitivity=None, progress=None, fit_bits=3, val_ambiguous=None,
                  aleatoric_weight=1.0):
    """Per-layer (mu bits, sigma bits) of `model`'s variational layers under `budget_bytes` stored bytes.

    Args:
        model: a trained Bayesian Keras model (its weights are re-quantized, not changed).
        x_val, y_val: validation images and labels (a split of the training set; never a test set).
        budget_bytes: bound on ``sum_l ceil(n_l * (mu_bits + sigma_bits) / 8)``.
        x_ood: held-out out-of-distribution images for the MI term (e.g. Fashion-MNIST train images); None
            leaves it out.
        choices: candidate (mu_bits, sigma_bits) pairs for every layer (default: every PACKED-storable pair), or
            {layer name: pairs} (e.g. fewer pairs for layers whose bytes hardly count).
        num_samples: MC samples per evaluation (the same seed for every evaluation).
        mi_weight: weight of the MI AUROC drop against the NLL rise.
        val_ambiguous: boolean mask of the validation rows with aleatoric ambiguity (e.g. the Ambiguous-MNIST
            rows, `DirtyMNIST.val_is_ambiguous`); None leaves the aleatoric term out.
        aleatoric_weight: weight of the drop of the predictive entropy AUROC (clean vs ambiguous validation rows).
        sensitivity: a `layer_sensitivity` result to reuse (e.g. across budgets).
        fit_bits: sigma widths up to which fitted sigma ranges are tried too (`sigma_range_candidates`).

    Returns:
        An `Allocation`.
    """
    if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, (int, np.integer)) or budget_bytes <= 0:
        raise ValueError(f"`budget_bytes` must be a positive integer; received budget_bytes={budget_bytes!r}")
    x_val, y_val = np.asarray(x_val), np.asarray(y_val)
    if len(x_val) == 0 or len(x_val) != len(y_val):
        raise ValueError(f"x_val and y_val must be non-empty and of one length; received {len(x_val)} and {len(y_val)}")
    layers = variational_layers(model)
    if not layers:
        raise ValueError(f"allocate_bits: {model.name!r} has no variational layer")
    t = time.perf_counter()
    if sensitivity is None:
        sensitivity = layer_sensitivity(model, x_val, y_val, x_ood, choices, num_samples, seed, mi_weight, progress,
                                        fit_bits, val_ambiguous, aleatoric_weight)
    table, ref = sensitivity
    t_sens = time.perf_counter() - t
    t = time.perf_counter()
    costs = [{c: r["cost"] for c, r in table[l.name].items()} for l in layers]
    sizes = [{c: r["bytes"] for c, r in table[l.name].items()} for l in layers]
    found = solve(costs, sizes, int(budget_bytes))
    if found is None:
        smallest = sum(min(s.values()) for s in sizes)
        raise ValueError(f"allocate_bits: no choice fits budget_bytes={budget_bytes} (the smallest takes {smallest})")
    picks, cost, nbytes = found
    return Allocation(layers=[l.name for l in layers], bits=[tuple(c[:2]) for c in picks],
                      sigma_ranges=[tuple(table[l.name][c]["sigma_range"]) for l, c in zip(layers, picks)],
                      stored_bytes=int(nbytes),
                      budget_bytes=int(budget_bytes), predicted_cost=float(cost),
                      sensitivity={n: {",".join(map(str, c)): r for c, r in rows.items()} for n, rows in table.items()},
                      reference=ref, seconds={"sensitivity": round(t_sens, 2),
                                              "solve": round(time.perf_counter() - t, 4)})


def fine_tune(model, allocation, x_train, y_train, epochs=1, lr=1e-4, batch_size=128, seed=0, verbose=0):
    """A copy of `model` at the allocation's configs, trained for `epochs` more (ELBO at the layers' current KL
    weight, Adam with a cosine decay from `lr`, `tfqbnn.training.lr_schedule`)."""
    import keras

    from tfqbnn.training import lr_schedule

    tuned = with_quantization(model, dict(zip(allocation.layers, allocation.configs)))
    if epochs <= 0:
        return tuned
    steps = int(np.ceil(len(x_train) / batch_size))
    tuned.compile(keras.optimizers.Adam(lr_schedule("cosine", lr, epochs, steps)), "sparse_categorical_crossentropy",
                  jit_compile=True)
    keras.utils.set_random_seed(seed)
    tuned.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=verbose)
    return tuned
