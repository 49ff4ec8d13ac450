"""The paper's evaluation: accuracy, calibration and uncertainty AUROCs on Dirty-MNIST.

Sets: ``mnist`` (MNIST test, in-distribution), ``ambiguous`` (Ambiguous-MNIST
test: aleatoric), ``ood`` (Fashion-MNIST test: epistemic).  The two headline
scores (arXiv 2512.10602, after DDU):

* ``auroc_aleatoric`` -- AUROC of predictive (softmax) entropy, MNIST vs Ambiguous;
* ``auroc_epistemic`` -- AUROC of mutual information, MNIST vs Fashion-MNIST;

plus the crossed pairs (entropy for OOD, MI for ambiguous) to show the
disentanglement, NLL and ECE on MNIST, and the mean of every score per set
(an AUROC over near-zero MI values can read high through ties alone).
"""

from __future__ import annotations

import time

import numpy as np

from tfqbnn.rundir import atomic_path
from tfqbnn.uncertainty import auroc, decompose

SETS = ("mnist", "ambiguous", "ood")
SCORES = ("predictive_entropy", "aleatoric", "epistemic")


def expected_calibration_error(probs, labels, num_bins=15):
    """ECE with equal-width confidence bins (Guo et al., 2017)."""
    conf = probs.max(-1)
    correct = probs.argmax(-1) == labels
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, num_bins - 1)
    ece = 0.0
    for b in range(num_bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def metrics_from_probs(probs, y_mnist, estimator="plugin"):
    """All metrics from Monte-Carlo softmax samples.

    Args:
        probs: dict set name -> ``[S, N, C]`` probabilities (``S = 1`` for a
            deterministic model), for the sets ``mnist``, ``ambiguous``, ``ood``.
        y_mnist: MNIST test labels.
        estimator: of the predictive entropy and MI (`tfqbnn.estimators`); the
            default ``"plugin"`` is the paper's split.

    Returns:
        (metrics dict of floats, per-image uncertainties dict ``{set}_{score}`` -> [N]).
    """
    parts = {name: decompose(probs[name], estimator) for name in SETS}
    mean_mnist = parts["mnist"]["mean_probs"]
    y = np.asarray(y_mnist)
    p_true = np.clip(mean_mnist[np.arange(len(y)), y], 1e-12, 1.0)
    m = {
        "accuracy": float((mean_mnist.argmax(-1) == y).mean()),
        "nll": float(-np.log(p_true).mean()),
        "ece": expected_calibration_error(mean_mnist, y),
        "auroc_aleatoric": auroc(parts["mnist"]["predictive_entropy"], parts["ambiguous"]["predictive_entropy"]),
        "auroc_epistemic": auroc(parts["mnist"]["epistemic"], parts["ood"]["epistemic"]),
        "auroc_entropy_ood": auroc(parts["mnist"]["predictive_entropy"], parts["ood"]["predictive_entropy"]),
        "auroc_mi_ambiguous": auroc(parts["mnist"]["epistemic"], parts["ambiguous"]["epistemic"]),
        "num_samples": int(np.asarray(probs["mnist"]).shape[0]),
        "estimator": estimator,
    }
    per_image = {}
    for name in SETS:
        for score in SCORES:
            per_image[f"{name}_{score}"] = parts[name][score].astype(np.float32)
            m[f"mean_{score}_{name}"] = float(parts[name][score].mean())
    return m, per_image


def evaluate_model(model, data, num_samples=30, batch_size=None, seed=0, deterministic=False, method="mc",
                   estimator="plugin"):
    """Monte-Carlo evaluation of a model on the three Dirty-MNIST test sets.

    Args:
        model: Keras model with probability outputs.
        data: a `tfqbnn.datasets.DirtyMNIST`.
        num_samples: S weight samples (ignored if ``deterministic``).
        deterministic: a model without weight sampling (one pass, MI = 0).
        method: ``"mc"``, ``"hybrid"`` or ``"pfp"`` (`tfqbnn.propagation.predict_probs`).
        estimator: ``"plugin"``, ``"jackknife"`` or ``"delta"`` (`tfqbnn.estimators`).

    Returns:
        (metrics, per_image) as `metrics_from_probs`, with ``eval_seconds`` and
        ``eval_images`` added to the metrics.
    """
    sets = {"mnist": data.x_test, "ambiguous": data.x_amb_test, "ood": data.x_ood}
    t = time.perf_counter()
    if deterministic:
        probs = {k: model.predict(v, batch_size=4096, verbose=0)[None] for k, v in sets.items()}
    else:
        from tfqbnn.propagation import predict_probs

        probs = {k: predict_probs(model, v, method, num_samples, batch_size=batch_size, seed=seed + i)
                 for i, (k, v) in enumerate(sets.items())}
    seconds = time.perf_counter() - t
    metrics, per_image = metrics_from_probs(probs, data.y_test, estimator)
    metrics["eval_seconds"] = round(seconds, 2)
    metrics["eval_images"] = int(sum(len(v) for v in sets.values()))
    metrics["method"] = "deterministic" if deterministic else method
    return metrics, per_image


def samples_curve(model, data, sample_counts=(1, 3, 10, 30, 100), seed=0, estimator="plugin"):
    """Metrics as a function of the number of Monte-Carlo samples S (one row per S)."""
    rows = []
    for s in sample_counts:
        m, _ = evaluate_model(model, data, num_samples=int(s), seed=seed, estimator=estimator)
        rows.append({"samples": int(s), **{k: m[k] for k in (
            "accuracy", "auroc_aleatoric", "auroc_epistemic", "nll", "ece", "mean_epistemic_mnist",
            "mean_epistemic_ood", "eval_seconds")}})
    return rows


def samples_curve_markdown(rows):
    lines = ["| S | accuracy % | AUROC entropy MNIST/Amb | AUROC MI MNIST/Fashion | NLL | ECE | mean MI MNIST "
             "| mean MI Fashion | eval s |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['samples']} | {100 * r['accuracy']:.2f} | {r['auroc_aleatoric']:.4f} | {r['auroc_epistemic']:.4f} "
              f"| {r['nll']:.4f} | {r['ece']:.4f} | {r['mean_epistemic_mnist']:.4f} | {r['mean_epistemic_ood']:.4f} "
              f"| {r['eval_seconds']:.1f} |" for r in rows]
    return "\n".join(lines) + "\n"


def scatter_plot(per_image, path, title=None, max_points=3000, seed=0):
    """The paper's figure: mutual information against softmax entropy, per set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=120)
    styles = {"mnist": ("MNIST", "tab:blue"), "ambiguous": ("Ambiguous-MNIST", "tab:orange"),
              "ood": ("Fashion-MNIST (OOD)", "tab:green")}
    for name, (label, color) in styles.items():
        h, mi = per_image[f"{name}_predictive_entropy"], per_image[f"{name}_epistemic"]
        idx = rng.permutation(len(h))[:max_points]
        ax.scatter(h[idx], mi[idx], s=3, alpha=0.4, color=color, label=label, rasterized=True)
    ax.set_xlabel("softmax (predictive) entropy [nats]")
    ax.set_ylabel("mutual information [nats]")
    if title:
        ax.set_title(title)
    ax.legend(markerscale=4, loc="upper left")
    fig.tight_layout()
    with atomic_path(path) as tmp:  # a crash never leaves a half-written image
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
