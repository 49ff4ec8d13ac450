"""Truth test of the MI estimators: S = 30 against S = 1000, for every method x estimator.

    python scripts/truth_test.py --runs RUNS --out results/truth_test [--seeds 0 1 2] [--images 3000]

RUNS holds trained models ``RUNS/jq4-s<seed>/model.keras`` (`tfqbnn.training.run`, profile
``fast`` with the small Ambiguous-MNIST regeneration: the profile of ``results/cheap_uncertainty``).
Per model: the first ``--images`` MNIST / Fashion-MNIST test images and as many unique
Ambiguous-MNIST test images; the truth is MC with ``--truth-samples`` (1000) samples and the
delete-one jackknife (its plug-in value is recorded too). Then ``--repeats`` runs of each method at
``--samples`` (30) with other seeds (`tfqbnn.propagation.predict_probs`: mc, hybrid, pfp,
pfp-full), each scored with every estimator of `tfqbnn.estimators`: mean MI per set against the
truth's, MAE of the per-image MI, MI AUROC MNIST vs Fashion-MNIST, and the time of sampling plus
estimation relative to the plug-in's. ``--independent-images`` also times `predict_mc(independent=True)`
on that many Fashion-MNIST images and compares the run-to-run spread of its mean MI with the shared
draws'. Writes ``truth_test.json`` (every run) and ``table.md`` (means over models and repeats).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np

METHODS = {"mc": ("mc", "diagonal"), "hybrid": ("hybrid", "diagonal"), "pfp": ("pfp", "diagonal"),
           "pfp-full": ("pfp", "full")}
SETS = ("mnist", "fashion", "ambiguous")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--images", type=int, default=3000)
    p.add_argument("--samples", type=int, default=30)
    p.add_argument("--truth-samples", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--independent-images", type=int, default=0)
    p.add_argument("--independent-repeats", type=int, default=4)
    return p.parse_args(argv)


def _sets(images):
    from tfqbnn import training
    from tfqbnn.cells import _eval_subset

    prof = dataclasses.replace(training.get_profile("fast"), ambiguous_profile="small")
    d = _eval_subset(training.load_data(prof), images)
    return {"mnist": d.x_test, "fashion": d.x_ood, "ambiguous": d.x_amb_test}, d.y_test, d.source


def _timed_decompositions(probs):
    from tfqbnn import estimators

    out = {}
    for e in estimators.ESTIMATORS:
        t = time.perf_counter()
        out[e] = (estimators.decompose(probs, e)["epistemic"], time.perf_counter() - t)
    return out


def _score(mi, truth, truth_auroc):
    from tfqbnn.uncertainty import auroc

    row = {}
    for name in SETS:
        row[f"mean_mi_{name}"] = float(mi[name].mean())
        row[f"rel_err_{name}"] = float(mi[name].mean() / truth[name].mean() - 1)
        row[f"mae_{name}"] = float(np.abs(mi[name] - truth[name]).mean())
    row["auroc"] = auroc(mi["mnist"], mi["fashion"])
    row["auroc_err"] = row["auroc"] - truth_auroc
    return row


def evaluate_model(model, sets, args, seed):
    from tfqbnn import estimators
    from tfqbnn.propagation import predict_probs
    from tfqbnn.uncertainty import auroc

    truth, truth_plugin, truth_seconds = {}, {}, 0.0
    for i, (name, x) in enumerate(sets.items()):
        t = time.perf_counter()
        probs = predict_probs(model, x, "mc", args.truth_samples, seed=10_000 + i)
        truth_seconds += time.perf_counter() - t
        truth[name] = estimators.decompose(probs, "jackknife", groups=None)["epistemic"]  # delete-one
        truth_plugin[name] = estimators.decompose(probs, "plugin")["epistemic"]
        del probs
    truth_auroc = auroc(truth["mnist"], truth["fashion"])
    rec = {"seed": seed, "truth": {
        "estimator": "jackknife", "samples": args.truth_samples, "seconds": round(truth_seconds, 1),
        "auroc": truth_auroc, "auroc_plugin": auroc(truth_plugin["mnist"], truth_plugin["fashion"]),
        **{f"mean_mi_{n}": float(truth[n].mean()) for n in SETS},
        **{f"mean_mi_{n}_plugin": float(truth_plugin[n].mean()) for n in SETS}}, "runs": []}
    print(f"seed {seed}: truth AUROC {truth_auroc:.4f}, mean MI " +
          ", ".join(f"{n} {truth[n].mean():.4f}" for n in SETS), flush=True)
    for method in args.methods:
        kind, cov = METHODS[method]
        for r in range(args.repeats):
            mi, secs, pred_seconds = {e: {} for e in estimators.ESTIMATORS}, dict.fromkeys(estimators.ESTIMATORS, 0.0), 0.0
            for i, (name, x) in enumerate(sets.items()):
                t = time.perf_counter()
                probs = predict_probs(model, x, kind, args.samples, seed=100 * (r + 1) + i, covariance=cov)
                pred_seconds += time.perf_counter() - t
                for e, (v, s) in _timed_decompositions(probs).items():
                    mi[e][name] = v
                    secs[e] += s
            for e in estimators.ESTIMATORS:
                row = {"method": method, "estimator": e, "repeat": r, **_score(mi[e], truth, truth_auroc),
                       "predict_seconds": round(pred_seconds, 3), "estimate_seconds": round(secs[e], 4),
                       "time_ratio": (pred_seconds + secs[e]) / (pred_seconds + secs["plugin"])}
                rec["runs"].append(row)
            print(f"  {method} r{r}: " + "  ".join(
                f"{e} fashion {rec['runs'][-3 + k]['rel_err_fashion']:+.3f} auroc {rec['runs'][-3 + k]['auroc_err']:+.4f}"
                for k, e in enumerate(estimators.ESTIMATORS)), flush=True)
    return rec


def independent_draws(model, x, args):
    """Seconds and the run-to-run spread of the mean (jackknife) MI, shared vs independent draws."""
    from tfqbnn import estimators
    from tfqbnn.uncertainty import predict_mc

    out = {}
    for independent in (False, True):
        means, secs = [], []
        for r in range(args.independent_repeats):
            t = time.perf_counter()
            probs = predict_mc(model, x, args.samples, seed=500 + r, independent=independent)
            secs.append(time.perf_counter() - t)
            means.append(float(estimators.decompose(probs, "jackknife")["epistemic"].mean()))
        out["independent" if independent else "shared"] = {
            "seconds": [round(s, 2) for s in secs], "mean_mi": means, "std_of_mean_mi": float(np.std(means, ddof=1))}
    out["images"] = len(x)
    out["time_ratio"] = float(np.median(out["independent"]["seconds"]) / np.median(out["shared"]["seconds"]))
    return out


def table(records):
    """The markdown table of `truth_test.json`'s records (also the documentation's, `scripts/results_tables.py`)."""
    estimator_names = list(dict.fromkeys(r["estimator"] for rec in records for r in rec["runs"]))
    lines = ["| method | estimator | mean MI MNIST vs truth | mean MI Fashion vs truth | mean MI Ambiguous vs truth "
             "| MAE MI Fashion | AUROC MI vs truth | time vs plug-in |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    methods = list(dict.fromkeys(r["method"] for rec in records for r in rec["runs"]))

    def ms(rows, key, fmt, scale=1.0):
        v = np.array([r[key] for r in rows]) * scale
        return f"{v.mean():{fmt}} ± {v.std(ddof=1) if len(v) > 1 else 0.0:{fmt.lstrip('+')}}"

    for m in methods:
        for e in estimator_names:
            rows = [r for rec in records for r in rec["runs"] if r["method"] == m and r["estimator"] == e]
            lines.append(f"| {m} | {e} | {ms(rows, 'rel_err_mnist', '+.1f', 100)} % | "
                         f"{ms(rows, 'rel_err_fashion', '+.1f', 100)} % | {ms(rows, 'rel_err_ambiguous', '+.1f', 100)} % "
                         f"| {ms(rows, 'mae_fashion', '.3f')} | {ms(rows, 'auroc_err', '+.4f')} "
                         f"| {np.median([r['time_ratio'] for r in rows]):.3f}x |")
    truths = [rec["truth"] for rec in records]
    foot = ["", "Truth (MC, S = {0}, jackknife; per model): ".format(truths[0]["samples"]) + "; ".join(
        f"seed {rec['seed']}: MI MNIST {t['mean_mi_mnist']:.4f}, Fashion {t['mean_mi_fashion']:.4f}, "
        f"Ambiguous {t['mean_mi_ambiguous']:.4f}, AUROC {t['auroc']:.4f} (plug-in at S = {t['samples']}: "
        f"Fashion {t['mean_mi_fashion_plugin']:.4f}, AUROC {t['auroc_plugin']:.4f})"
        for rec, t in zip(records, truths))]
    return "\n".join(lines + foot) + "\n"


def main(argv=None):
    args = parse_args(argv)
    import keras

    from tfqbnn import estimators

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sets, _, source = _sets(args.images)
    records, independent = [], None
    for seed in args.seeds:
        model = keras.models.load_model(Path(args.runs) / f"jq4-s{seed}" / "model.keras")
        records.append(evaluate_model(model, sets, args, seed))
        if args.independent_images and independent is None:
            independent = independent_draws(model, sets["fashion"][: args.independent_images], args)
        summary = {"config": {k: v for k, v in vars(args).items() if k not in ("runs", "out")},
                   "model": "jq4 MLP 784-100-100-10, profile fast with the small Ambiguous-MNIST regeneration",
                   "ambiguous_source": source.get("name") if isinstance(source, dict) else str(source),
                   "images_per_set": {k: len(v) for k, v in sets.items()}, "default_estimator":
                   estimators.DEFAULT_ESTIMATOR, "machine": f"{platform.machine()}, {platform.python_version()}",
                   "records": records, "independent_draws": independent}
        (out / "truth_test.json").write_text(json.dumps(summary, indent=1))
        (out / "table.md").write_text(table(records))
    print(table(records))


if __name__ == "__main__":
    main()
