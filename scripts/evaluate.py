"""Evaluate a trained model on Dirty-MNIST: accuracy, NLL, ECE and uncertainty AUROCs.

    python scripts/evaluate.py runs/jq4-s0/model.keras --out runs/jq4-s0/eval [--samples 30]

Writes metrics.json, per_image.npz (per-image entropy / expected entropy / MI for
MNIST, Ambiguous-MNIST and Fashion-MNIST) and scatter.png (MI against softmax entropy).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a .keras file written by scripts/train.py")
    p.add_argument("--out", required=True)
    p.add_argument("--samples", type=int, default=30, help="Monte-Carlo samples S")
    p.add_argument("--method", default="mc", choices=["mc", "hybrid", "pfp"],
                   help="mc: S full weight samples; hybrid: exact first-layer moments; pfp: moments through "
                        "every layer, S logit samples")
    p.add_argument("--ambiguous-profile", default="default", choices=["default", "small"])
    p.add_argument("--ambiguous-source", default="regenerated", choices=["regenerated", "ddu"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples-curve", type=int, nargs="+", default=None, metavar="S",
                   help="also tabulate the metrics for these sample counts (samples_curve.md)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not Path(args.model).is_file():
        sys.exit(f"evaluate.py: no such model file: {args.model}")
    import keras

    from tfqbnn import evaluation
    from tfqbnn.datasets import load_dirty_mnist

    try:
        model = keras.models.load_model(args.model)
    except Exception as e:  # noqa: BLE001 - report which file is bad, in one line
        sys.exit(f"evaluate.py: cannot load {args.model}: {type(e).__name__}: {str(e).splitlines()[0]}")
    data = load_dirty_mnist(ambiguous_source=args.ambiguous_source, profile=args.ambiguous_profile, seed=0)
    from tfqbnn import moments

    metrics, per_image = evaluation.evaluate_model(model, data, num_samples=args.samples, seed=args.seed,
                                                   method=args.method)
    metrics["diagnostic"] = moments.diagnostic(model)
    metrics["model"] = str(args.model)
    metrics["ambiguous_source"] = data.source
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    np.savez_compressed(out / "per_image.npz", **per_image)
    evaluation.scatter_plot(per_image, out / "scatter.png", title=Path(args.model).parent.name)
    print(f"accuracy {metrics['accuracy']:.4f}  AUROC entropy MNIST-vs-Ambiguous {metrics['auroc_aleatoric']:.4f}  "
          f"AUROC MI MNIST-vs-Fashion {metrics['auroc_epistemic']:.4f}  NLL {metrics['nll']:.4f}  "
          f"ECE {metrics['ece']:.4f}")
    print(f"evaluation ({args.method}) of {metrics['eval_images']} images x {args.samples} samples took "
          f"{metrics['eval_seconds']:.1f} s")
    print("how much sampling survives quantization, per layer:\n" + moments.diagnostic_summary(metrics["diagnostic"]))
    print(f"wrote {out}/metrics.json, per_image.npz, scatter.png")
    if args.samples_curve:
        rows = evaluation.samples_curve(model, data, args.samples_curve, seed=args.seed)
        table = evaluation.samples_curve_markdown(rows)
        (out / "samples_curve.md").write_text(table)
        print(table + f"wrote {out}/samples_curve.md")


if __name__ == "__main__":
    main()
