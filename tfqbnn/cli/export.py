"""Export a trained tfqbnn JQ model: model.tflite, model_split.tflite, manifest.json.

    tfqbnn-export MODEL.keras --out DIR --weights {int8,int4,packed} [--seed N] [--check [--check-images N]]

Any model the Keras front end accepts (`tflite_export.frontend`): the MLP, LeNet-5 "all" / "head", ...

The console script's home (`scripts/export.py` is a thin wrapper); the export itself is
`tflite_export.export_all`.
"""

from __future__ import annotations

import argparse
import json
import sys

from tfqbnn.cli import samples_arg, seed32_arg


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="trained .keras model (JQ variational / QAT layers, pooling, flatten, then Softmax)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--weights", choices=["int8", "int4", "packed"], default="int4",
                   help="stored weight format (packed: each (mu, sigma) code pair in mu_bits + sigma_bits <= 8 bits, "
                        "per layer; numpy reference and the split model only, no QBNN_SAMPLE kernel in C yet)")
    p.add_argument("--seed", type=seed32_arg, default=0, help="default 32-bit sampler seed stored in the model")
    p.add_argument("--calibration-size", type=int, default=1000, help="MNIST training images used for calibration")
    p.add_argument("--check", action="store_true", help="also compare Keras vs integer on the test sets")
    p.add_argument("--samples", type=samples_arg, default=30, help="MC samples for --check")
    p.add_argument("--check-images", type=int, default=None,
                   help="--check on the first N images of each test set (default: all)")
    p.add_argument("--ambiguous-profile", choices=["default", "small"], default="default",
                   help="regenerated Ambiguous-MNIST profile for --check")
    return p, p.parse_args(argv)


def main(argv=None):
    parser, args = parse_args(argv)
    prog = parser.prog
    from tflite_export import export_all
    from tfqbnn.datasets import calibration_images

    try:
        result = export_all(args.model, args.out, weights=args.weights, seed=args.seed,
                            calibration_x=calibration_images(args.calibration_size))
    except ValueError as err:
        sys.exit(f"{prog}: {err}")
    totals = result["manifest"]["totals"]
    print(f"wrote {result['model']}, {result['model_split']}, {result['manifest_path']}")
    print(f"stored weight bytes {totals['stored_weight_bytes']} (+{totals['table_bytes']} table bytes) vs float32 "
          f"mu+sigma {totals['float32_mu_sigma_bytes']}: {totals['compression_weights_only']:.2f}x")
    if args.check:
        import keras

        from tflite_export.compare import compare
        from tfqbnn import rundir
        from tfqbnn.datasets import load_fashion_mnist, load_mnist

        n = args.check_images
        x, y = load_mnist("test")
        sets = {"mnist": (x[:n], y[:n]), "fashion": load_fashion_mnist("test")[0][:n]}
        try:
            from tfqbnn.datasets import load_ambiguous_mnist

            sets["ambiguous"] = load_ambiguous_mnist("test", profile=args.ambiguous_profile)[0][:n]
        except Exception as err:  # noqa: BLE001 - regenerated set unavailable: report and go on without it
            print(f"ambiguous-MNIST unavailable ({err}); skipping the entropy AUROC")
        report = compare(keras.saving.load_model(args.model), result["integer_model"], sets, num_samples=args.samples,
                         progress=True)
        print(json.dumps(report, indent=1))
        k, i = report["keras"], report["integer"]
        print(f"Keras vs integer ({len(sets['mnist'][0])} images per set, {args.samples} samples): accuracy "
              f"{k['accuracy']:.4f} vs {i['accuracy']:.4f}; AUROC MI MNIST-Fashion {k['auroc_mi_mnist_vs_fashion']:.4f} "
              f"vs {i['auroc_mi_mnist_vs_fashion']:.4f}"
              + (f"; AUROC entropy MNIST-Ambiguous {k['auroc_entropy_mnist_vs_ambiguous']:.4f} vs "
                 f"{i['auroc_entropy_mnist_vs_ambiguous']:.4f}" if "auroc_entropy_mnist_vs_ambiguous" in k else "")
              + f" -> {'within' if report['within_tolerance'] else 'OUTSIDE'} tolerance (0.5 pt, 0.02)")
        rundir.write_text(result["manifest_path"].parent / "check.json", json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
