"""Keras JQ model vs its integer reference on the real test sets (accuracy and both AUROCs)."""

from __future__ import annotations

import numpy as np

from tflite_export.statistics import uncertainty


def keras_metrics(model, x, num_samples, seed):
    from tfqbnn.uncertainty import decompose, predict_mc

    probs = predict_mc(model, x, num_samples=num_samples, seed=seed)
    d = decompose(probs)
    return {"prediction": np.argmax(d["mean_probs"], -1), "entropy": d["predictive_entropy"], "mi": d["epistemic"]}


def integer_metrics(imodel, x, num_samples, seed, progress=None):
    u = uncertainty(imodel.predict_codes(x, num_samples=num_samples, seed=seed, progress=progress))
    return {"prediction": u["prediction"], "entropy": u["predictive_entropy"], "mi": u["mutual_information"]}


def compare(model, imodel, sets, num_samples=30, seed=0, progress=False):
    """`sets`: {"mnist": (x, y), "fashion": x, "ambiguous": x or None}. Returns a dict of metrics.
    `progress`: progress bars over the integer model's samples (minutes for a convolutional model)."""
    from tfqbnn.uncertainty import auroc

    out = {}
    for name, fn, arg in (("keras", keras_metrics, model), ("integer", integer_metrics, imodel)):
        kw = lambda label: {"progress": f"integer {label}"} if name == "integer" and progress else {}  # noqa: E731
        x, y = sets["mnist"]
        m = fn(arg, x, num_samples, seed, **kw("MNIST"))
        f = fn(arg, sets["fashion"], num_samples, seed, **kw("Fashion-MNIST"))
        r = {"accuracy": float(np.mean(m["prediction"] == y)),
             "auroc_mi_mnist_vs_fashion": auroc(m["mi"], f["mi"]),
             "mean_mi_mnist": float(m["mi"].mean()), "mean_mi_fashion": float(f["mi"].mean())}
        if sets.get("ambiguous") is not None:
            a = fn(arg, sets["ambiguous"], num_samples, seed, **kw("Ambiguous-MNIST"))
            r["auroc_entropy_mnist_vs_ambiguous"] = auroc(m["entropy"], a["entropy"])
        out[name] = r
    k, i = out["keras"], out["integer"]
    out["delta"] = {key: i[key] - k[key] for key in k if key.startswith(("accuracy", "auroc"))}
    out["within_tolerance"] = bool(abs(out["delta"]["accuracy"]) <= 0.005 and all(
        abs(v) <= 0.02 for key, v in out["delta"].items() if key.startswith("auroc")))
    return out
