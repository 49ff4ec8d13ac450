"""Per-layer mu / sigma bits of a trained Bayesian model under a stored-byte budget.

    tfqbnn-allocate runs/jq8-s0/model.keras --budget 50000 --out runs/alloc-50k [--fine-tune-epochs 2]

Sensitivities are measured on the validation split of the MNIST training set and on held-out Fashion-MNIST
*training* images (never a test set); an exact dynamic program picks one (mu bits, sigma bits) per layer with
sum ceil(n * (mu bits + sigma bits) / 8) <= --budget (`tfqbnn.allocate_bits`). Writes allocation.json (choices,
bytes, sensitivity table, seconds) and model.keras (the chosen configuration, fine-tuned if asked), which
`tfqbnn-export --weights packed` exports.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tfqbnn.cli import samples_arg


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a trained .keras Bayesian model (e.g. JQ-8 from tfqbnn-train)")
    p.add_argument("--budget", type=int, required=True, help="stored bytes of mu + sigma codes, all layers")
    p.add_argument("--out", required=True, help="output directory (allocation.json, model.keras)")
    p.add_argument("--samples", type=samples_arg, default=10, help="MC samples per sensitivity evaluation")
    p.add_argument("--ood-images", type=int, default=5000, help="held-out Fashion-MNIST train images for the MI term")
    p.add_argument("--mi-weight", type=float, default=1.0, help="weight of the MI AUROC drop against the NLL rise")
    p.add_argument("--fine-tune-epochs", type=int, default=0, help="Bayesian fine-tune epochs of the chosen model")
    p.add_argument("--fine-tune-lr", type=float, default=1e-4)
    p.add_argument("--ambiguous-profile", default="default", choices=["default", "small"],
                   help="Ambiguous-MNIST regeneration of the Dirty-MNIST training data (its validation split is used)")
    p.add_argument("--seed", type=int, default=0)
    return p, p.parse_args(argv)


def main(argv=None):
    parser, args = parse_args(argv)
    prog = parser.prog
    if args.budget <= 0:
        sys.exit(f"{prog}: --budget must be a positive number of bytes; received {args.budget}")
    if not Path(args.model).is_file():
        sys.exit(f"{prog}: no such model file: {args.model}")
    import keras

    import tfqbnn.layers  # noqa: F401  (registers the variational layers)
    from tfqbnn import allocation, rundir
    from tfqbnn.datasets import load_dirty_mnist, load_fashion_mnist

    model = keras.saving.load_model(args.model)
    data = load_dirty_mnist(profile=args.ambiguous_profile, validation_fraction=0.1, seed=0)
    ood = load_fashion_mnist("train")[0][:args.ood_images]
    t = time.perf_counter()
    try:
        result = allocation.allocate_bits(model, data.x_val, data.y_val, args.budget, x_ood=ood,
                                          num_samples=args.samples, seed=args.seed, mi_weight=args.mi_weight)
    except ValueError as err:
        sys.exit(f"{prog}: {err}")
    tuned = allocation.fine_tune(model, result, data.x_train, data.y_train, epochs=args.fine_tune_epochs,
                                 lr=args.fine_tune_lr, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = {**result.as_dict(), "fine_tune_epochs": args.fine_tune_epochs, "seconds_total": time.perf_counter() - t}
    rundir.write_json(out / "allocation.json", info)
    tuned.save(out / "model.keras")
    print(json.dumps({"layers": result.layers, "bits": result.bits, "stored_bytes": result.stored_bytes,
                      "seconds": info["seconds_total"]}))


if __name__ == "__main__":
    main()
