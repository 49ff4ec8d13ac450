"""`make demo`: the whole path on a small budget.

Dirty-MNIST (with a small regenerated Ambiguous-MNIST) -> deterministic pretraining ->
4-bit JQ Bayesian MLP -> Monte-Carlo evaluation and the MI-vs-entropy scatter plot ->
integer export (model.tflite with the QBNN_SAMPLE op, model_split.tflite, C arrays) ->
the firmware on an emulated Cortex-M4F printing its on-device uncertainty for a digit,
an ambiguous digit and a piece of clothing.

    python scripts/demo.py --out out/demo
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from tflite_export.firmware_runner import BOARDS


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="out/demo")
    p.add_argument("--profile", default="demo")
    p.add_argument("--quantization", default="jq4")
    p.add_argument("--board", default="an386", choices=sorted(BOARDS))
    p.add_argument("--skip-mcu", action="store_true", help="stop after the TFLite export")
    args = p.parse_args(argv)
    out = Path(args.out)
    t0 = time.perf_counter()

    from tfqbnn import evaluation, rundir, training

    print("== 1/4 data: Dirty-MNIST (MNIST + regenerated Ambiguous-MNIST), Fashion-MNIST as OOD")
    data = training.load_data(args.profile)
    print(f"   {len(data.x_train)} train / {len(data.x_val)} val; test {len(data.x_test)} MNIST + "
          f"{len(data.x_amb_test)} ambiguous + {len(data.x_ood)} Fashion; ambiguous source: "
          f"{data.source.get('source', data.source)}")

    print(f"== 2/4 train: deterministic pretraining, then the {args.quantization} BNN (profile {args.profile})")
    model = training.run(out / args.quantization, args.quantization, args.profile, seed=0, data=data,
                         pretrain_root=out / "pretrain", verbose=2)

    print("== 3/4 evaluate: 30 Monte-Carlo samples")
    metrics, per_image = evaluation.evaluate_model(model, data, num_samples=30)
    eval_dir = out / args.quantization / "eval"
    eval_dir.mkdir(parents=True, exist_ok=True)
    rundir.write_json(eval_dir / "metrics.json", metrics)  # atomic
    evaluation.scatter_plot(per_image, eval_dir / "scatter.png", title=f"{args.quantization} (demo profile)")
    print(f"   accuracy {metrics['accuracy']:.4f} | AUROC entropy MNIST vs Ambiguous {metrics['auroc_aleatoric']:.3f}"
          f" | AUROC MI MNIST vs Fashion {metrics['auroc_epistemic']:.3f} | mean MI MNIST "
          f"{metrics['mean_epistemic_mnist']:.4f}, Fashion {metrics['mean_epistemic_ood']:.4f}")
    print(f"   {metrics['eval_images']} images x 30 samples in {metrics['eval_seconds']:.1f} s; "
          f"scatter plot: {eval_dir / 'scatter.png'}")

    print("== 4/4 export: int4 JQ -> TFLite Micro (QBNN_SAMPLE op) + C arrays")
    from tflite_export import export_all
    from tfqbnn.datasets import calibration_images

    export_dir = out / "export"
    result = export_all(model, export_dir, weights="int4", calibration_x=calibration_images(1000))
    totals = result["manifest"]["totals"]
    print(f"   wrote {result['model']}, {result['model_split']}; stored weights {totals['stored_weight_bytes']:,} B "
          f"vs float32 mu+sigma {totals['float32_mu_sigma_bytes']:,} B ({totals['compression_weights_only']:.1f}x)")

    if not args.skip_mcu:
        from tflite_export import firmware_runner

        missing = firmware_runner.missing_tools()
        if missing:
            print(f"   (skipping the Cortex-M run: missing {', '.join(missing)}; run `make deps-mcu`)")
        else:
            print(f"== on-device: firmware on emulated {args.board} (QEMU), 30 MC samples per image")
            # A typical image of each test set, not a hand-picked one: the one with the median score
            # (Keras evaluation above): entropy for MNIST and Ambiguous-MNIST, MI for Fashion-MNIST.
            def median(scores):
                return int(np.argsort(scores)[len(scores) // 2])

            images = [data.x_test[median(per_image["mnist_predictive_entropy"])],
                      data.x_amb_test[median(per_image["ambiguous_predictive_entropy"])],
                      data.x_ood[median(per_image["ood_epistemic"])]]
            firmware_runner.run_on_qemu(export_dir, board=args.board, images=images,
                                        sources=["mnist", "ambiguous", "fashion"], num_samples=30, verbose=True)
    print(f"demo done in {(time.perf_counter() - t0) / 60:.1f} min; outputs in {out}/")


if __name__ == "__main__":
    main()
