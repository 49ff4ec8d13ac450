"""Evaluate a trained model on Dirty-MNIST: accuracy, NLL, ECE and uncertainty AUROCs.

    tfqbnn-evaluate runs/jq4-s0/model.keras --out runs/jq4-s0-eval [--samples 30]

Writes run.json (what was evaluated: the model's SHA-256 and the options), metrics.json,
per_image.npz (per-image entropy / expected entropy / MI for MNIST, Ambiguous-MNIST and
Fashion-MNIST) and scatter.png (MI against softmax entropy), each atomically.  A non-empty --out
that is not an evaluation of the same model with the same options is refused unless --overwrite.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qbnn_safeio import sha256_file
from tfqbnn.cli import samples_arg

EVAL_FILES = ("metrics.json", "per_image.npz", "scatter.png", "samples_curve.md")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a .keras file written by tfqbnn-train")
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --out that holds another evaluation (only files tfqbnn wrote are deleted)")
    p.add_argument("--samples", type=samples_arg, default=30, help="Monte-Carlo samples S (1..65536)")
    p.add_argument("--method", default="mc", choices=["mc", "hybrid", "pfp"],
                   help="mc: S full weight samples; hybrid: exact first-layer moments, later layers sampled; "
                        "pfp: moments through every layer, S logit samples")
    p.add_argument("--estimator", default=None, choices=["plugin", "jackknife", "delta"],
                   help="estimator of the predictive entropy and MI from the S samples (default: "
                        "tfqbnn.estimators.DEFAULT_ESTIMATOR, bias-corrected; plugin: the paper's split, biased low "
                        "at small S)")
    p.add_argument("--images", type=int, default=None, metavar="N",
                   help="evaluate the first N images of each test set (Ambiguous-MNIST: N unique images); "
                        "default: the whole sets")
    p.add_argument("--ambiguous-profile", default="default", choices=["default", "small"])
    p.add_argument("--ambiguous-source", default="regenerated", choices=["regenerated", "ddu"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples-curve", type=samples_arg, nargs="+", default=None, metavar="S",
                   help="also tabulate the metrics for these sample counts (samples_curve.md)")
    return p, p.parse_args(argv)


def main(argv=None):
    parser, args = parse_args(argv)
    prog = parser.prog
    from tfqbnn.estimators import check_estimator

    args.estimator = check_estimator(args.estimator)
    if args.images is not None and args.images < 1:
        sys.exit(f"{prog}: --images must be a positive integer; received {args.images}")
    if not Path(args.model).is_file():
        sys.exit(f"{prog}: no such model file: {args.model}")
    from tfqbnn import rundir

    fingerprint = {"model_sha256": sha256_file(args.model), "samples": args.samples, "seed": args.seed,
                   "ambiguous_profile": args.ambiguous_profile, "ambiguous_source": args.ambiguous_source,
                   "samples_curve": args.samples_curve}
    if args.method != "mc":  # only then: evaluations written before --method existed keep their fingerprint
        fingerprint["method"] = args.method
    if args.estimator != "plugin":  # likewise for --estimator and --images
        fingerprint["estimator"] = args.estimator
    if args.images is not None:
        fingerprint["images"] = args.images
    rd = rundir.RunDir(args.out, "evaluate", fingerprint, EVAL_FILES, overwrite=args.overwrite)
    try:
        rd.open()  # before the (slow) model and data loading: a refused --out costs nothing
    except rundir.RunDirError as e:
        sys.exit(f"{prog}: {e}")
    import keras

    from tfqbnn import evaluation, moments
    from tfqbnn.datasets import load_dirty_mnist

    try:
        model = keras.models.load_model(args.model)
    except Exception as e:  # noqa: BLE001 - report which file is bad, in one line
        sys.exit(f"{prog}: cannot load {args.model}: {type(e).__name__}: {str(e).splitlines()[0]}")
    data = load_dirty_mnist(ambiguous_source=args.ambiguous_source, profile=args.ambiguous_profile, seed=0)
    from tfqbnn.cells import _eval_subset

    data = _eval_subset(data, args.images)
    metrics, per_image = evaluation.evaluate_model(model, data, num_samples=args.samples,
                                                   seed=args.seed, method=args.method, estimator=args.estimator)
    metrics["diagnostic"] = moments.diagnostic(model)
    metrics["model"] = str(args.model)
    metrics["ambiguous_source"] = data.source
    out = rd.path
    rundir.write_json(out / "metrics.json", metrics)
    rundir.savez_compressed(out / "per_image.npz", **per_image)
    evaluation.scatter_plot(per_image, out / "scatter.png", title=Path(args.model).parent.name)
    print(f"accuracy {metrics['accuracy']:.4f}  AUROC entropy MNIST-vs-Ambiguous {metrics['auroc_aleatoric']:.4f}  "
          f"AUROC MI MNIST-vs-Fashion {metrics['auroc_epistemic']:.4f}  NLL {metrics['nll']:.4f}  "
          f"ECE {metrics['ece']:.4f}")
    print(f"evaluation ({args.method}, {args.estimator} estimator) of {metrics['eval_images']} images x {args.samples} samples took "
          f"{metrics['eval_seconds']:.1f} s")
    print("how much sampling survives quantization, per layer:\n" + moments.diagnostic_summary(metrics["diagnostic"]))
    print(f"wrote {out}/metrics.json, per_image.npz, scatter.png")
    if args.samples_curve:
        rows = evaluation.samples_curve(model, data, args.samples_curve, seed=args.seed, estimator=args.estimator)
        table = evaluation.samples_curve_markdown(rows)
        rundir.write_text(out / "samples_curve.md", table)
        print(table + f"wrote {out}/samples_curve.md")
    rd.finish()


if __name__ == "__main__":
    main()
