"""Choose the `fast` profile's schedule on the validation split only (never on a test set).

Trains FP32 and JQ-4 BNNs for a few (pretrain, BNN) epoch budgets of <= 30 epochs and
scores them on validation data: accuracy on the MNIST part of the validation split,
entropy AUROC MNIST-val vs Ambiguous-val, MI AUROC MNIST-val vs Fashion-MNIST *train*
images (the OOD test set stays untouched).

    python scripts/choose_fast_profile.py --out results/profile_selection
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--budgets", nargs="+", default=["10+5", "15+10", "20+10"], help="pretrain+bnn epochs")
    p.add_argument("--configs", nargs="+", default=["fp32", "jq4"])
    p.add_argument("--ambiguous-profile", default="default", choices=["default", "small"])
    p.add_argument("--samples", type=int, default=20)
    args = p.parse_args(argv)

    from tfqbnn import evaluation, training
    from tfqbnn.datasets import load_dirty_mnist, load_fashion_mnist
    from tfqbnn.uncertainty import predict_mc

    data = load_dirty_mnist(profile=args.ambiguous_profile, validation_fraction=0.1, seed=0)
    x_ood_val = load_fashion_mnist("train")[0][:10000]
    val_m, val_a = data.x_val[~data.val_is_ambiguous], data.x_val[data.val_is_ambiguous]
    y_val_m = data.y_val[~data.val_is_ambiguous]
    out = Path(args.out)
    rows = []
    for budget in args.budgets:
        pre, bnn = (int(v) for v in budget.split("+"))
        if pre + bnn > 30:
            raise SystemExit(f"choose_fast_profile.py: budget {budget} exceeds 30 epochs")
        prof = dataclasses.replace(training.PROFILES["fast"], pretrain_epochs=pre, bnn_epochs=bnn,
                                   ambiguous_profile=args.ambiguous_profile)
        det = training.pretrain(data, out / f"pretrain-{pre}", prof, seed=0, verbose=0)
        for cfg in args.configs:
            model = training.train_bnn(data, det, out / f"{cfg}-{budget}", cfg, prof, seed=0, verbose=0)
            probs = {"mnist": predict_mc(model, val_m, args.samples, seed=1),
                     "ambiguous": predict_mc(model, val_a, args.samples, seed=2),
                     "ood": predict_mc(model, x_ood_val, args.samples, seed=3)}
            m, _ = evaluation.metrics_from_probs(probs, y_val_m)
            row = {"budget": budget, "config": cfg, **{k: round(m[k], 4) for k in (
                "accuracy", "auroc_aleatoric", "auroc_epistemic", "nll", "mean_epistemic_mnist",
                "mean_epistemic_ood")}}
            rows.append(row)
            print(json.dumps(row), flush=True)
            with open(out / "selection.jsonl", "a") as f:  # kept even if the run is stopped early
                f.write(json.dumps(row) + "\n")
    (out / "selection.json").write_text(json.dumps(rows, indent=2))
    lines = ["| budget (pretrain+BNN) | config | val accuracy | val AUROC entropy (Amb) | val AUROC MI (Fashion-train) "
             "| val NLL |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['budget']} | {r['config']} | {100 * r['accuracy']:.2f} | {r['auroc_aleatoric']:.4f} "
              f"| {r['auroc_epistemic']:.4f} | {r['nll']:.4f} |" for r in rows]
    (out / "selection.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    best = max(args.budgets, key=lambda b: np.mean([r["accuracy"] for r in rows if r["budget"] == b]))
    print(f"best mean validation accuracy: {best}")


if __name__ == "__main__":
    main()
