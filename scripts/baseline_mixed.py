"""Deterministic mixed-precision baseline of the memory-uncertainty front: HGQ2 per-weight bit widths under a
memory penalty beta (`tfqbnn.baselines.mixed_precision`), on the data of scripts/pareto.py.

    python scripts/baseline_mixed.py --model mlp --out results/pareto_mlp --seeds 0 1 2
    python scripts/baseline_mixed.py --model lenet5 --out results/pareto_lenet5 --seeds 0 1 2

Resumable: (beta, seed) points already in OUT/points-baseline.json are skipped. Needs hgq2
(pip install 'tfqbnn[baselines]').
"""

import argparse
import sys
import time

DEFAULT_BETAS = {"mlp": [1e-8, 3e-8, 1e-7, 3e-7, 1e-6, 3e-6], "lenet5": [1e-8, 1e-7, 3e-7, 1e-6]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, choices=["mlp", "lenet5"])
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--betas", type=float, nargs="+", default=None, help="memory penalties (default per model)")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs (default: the fast profile's pretraining + Bayesian epochs)")
    p.add_argument("--ambiguous-profile", default="small", choices=["default", "small"])
    p.add_argument("--eval-images", type=int, default=10000, help="test images per set (Ambiguous: unique images)")
    p.add_argument("--float-reference", action="store_true",
                   help="also train the float32 twin (point det-fp32, same schedule) for each seed")
    p.add_argument("--table-only", action="store_true", help="print the table of OUT/points-baseline.json")
    args = p.parse_args(argv)

    from tfqbnn.baselines import mixed_precision as mp

    if args.table_only:
        print(mp.table_markdown(mp.load_points(args.out)), end="")
        return

    try:
        mp.require_hgq()
    except ImportError as e:
        sys.exit(str(e))
    from tfqbnn import pareto
    from tfqbnn.cells import _eval_subset
    from tfqbnn.datasets import load_dirty_mnist

    profile = pareto.pareto_profile(args.ambiguous_profile, args.eval_images)
    epochs = args.epochs or profile.pretrain_epochs + profile.bnn_epochs
    data = load_dirty_mnist(profile=profile.ambiguous_profile, validation_fraction=0.1, seed=0)
    test = _eval_subset(data, profile.eval_images)
    t = time.perf_counter()
    mp.run(args.out, args.model, args.betas or DEFAULT_BETAS[args.model], args.seeds, data, test, epochs,
           batch_size=profile.batch_size, lr=profile.pretrain_lr, log=lambda s: print(s, flush=True))
    if args.float_reference:
        mp.run_float_reference(args.out, args.model, args.seeds, data, test, epochs, batch_size=profile.batch_size,
                               lr=profile.pretrain_lr, log=lambda s: print(s, flush=True))
    print(f"done: {time.perf_counter() - t:.0f} s", flush=True)
    print(mp.table_markdown(mp.load_points(args.out)), end="")


if __name__ == "__main__":
    main()
