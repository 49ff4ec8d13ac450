"""Pareto front of a fully Bayesian model (the paper MLP or LeNet-5 "all"): stored bytes against accuracy, entropy
AUROC (MNIST vs Ambiguous) and MI AUROC (MNIST vs Fashion), uniform JQ-2..8 and FP32 against per-layer
(mu, sigma) bits under byte budgets (`tfqbnn.pareto`, `tfqbnn.allocate_bits`).

    python scripts/pareto.py --out results/pareto_mlp --seeds 0 --budgets 40000 50000 60000 70000
    python scripts/pareto.py --model lenet5 --out results/pareto_lenet5 --seeds 0 --uniform fp32 jq8 jq4 \\
        --budgets 30000 36000 45000 --variants qat --val-digits 2400 --sens-samples 5 --ood-images 2000 \\
        --cut-small-layers --profile conv-quick --eval-images 5000 --aleatoric-weight 1

Resumable: points already in OUT/points.json are skipped. Writes points.json, table.csv, table.md, pareto.png
(with the rows of OUT/points-baseline.json, if present, as their own series).
"""

import argparse
import time


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--model", default="mlp", choices=["mlp", "lenet5"], help="lenet5: LeNet-5 with every layer Bayesian")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--budgets", type=int, nargs="*", default=[40000, 50000, 60000, 70000])
    p.add_argument("--uniform", nargs="*", default=None, help="uniform points (default fp32 jq8 ... jq2)")
    p.add_argument("--variants", nargs="+", default=["none", "ft", "qat"], choices=["none", "ft", "qat"],
                   help="per budget: re-quantized as is, fine-tuned, Bayesian stage retrained at the chosen bits")
    p.add_argument("--profile", default="fast", choices=["fast", "conv-quick"],
                   help="training schedule (conv-quick: 20,000 training images, 4 + 2 epochs)")
    p.add_argument("--ambiguous-profile", default="small", choices=["default", "small"])
    p.add_argument("--eval-images", type=int, default=10000, help="test images per set (Ambiguous: unique images)")
    p.add_argument("--samples", type=int, default=30, help="MC samples of the test evaluations")
    p.add_argument("--sens-samples", type=int, default=10, help="MC samples of each sensitivity evaluation")
    p.add_argument("--ood-images", type=int, default=5000, help="held-out Fashion-MNIST train images (MI term)")
    p.add_argument("--val-digits", type=int, default=None,
                   help="sensitivity on this many MNIST validation rows + each Ambiguous validation image once "
                        "(default: the whole validation split)")
    p.add_argument("--aleatoric-weight", type=float, default=None,
                   help="add this weight times the entropy AUROC drop (clean vs Ambiguous validation rows) to the "
                        "search cost (default: no such term)")
    p.add_argument("--tag", default="", help="inserted in the mixed point names, e.g. --tag=-ale: mixed-50000-ale-qat")
    p.add_argument("--cut-small-layers", action="store_true",
                   help="layers under 2 %% of the weights try only the 8-bit pairs (4/4, 5/3, 6/2, 7/1)")
    p.add_argument("--fine-tune-epochs", type=int, default=2)
    p.add_argument("--fine-tune-lr", type=float, default=3e-4)
    p.add_argument("--plot-only", action="store_true")
    args = p.parse_args(argv)

    from tfqbnn import pareto

    if not args.plot_only:
        from tfqbnn.datasets import load_dirty_mnist, load_fashion_mnist

        profile = pareto.pareto_profile(args.ambiguous_profile, args.eval_images, args.profile)
        data = load_dirty_mnist(profile=profile.ambiguous_profile, validation_fraction=0.1, seed=0)
        ood_val = load_fashion_mnist("train")[0][:args.ood_images]
        for seed in args.seeds:
            t = time.perf_counter()
            pareto.run_seed(args.out, seed, args.budgets, data, profile, ood_val, num_samples=args.samples,
                            sens_samples=args.sens_samples, fine_tune_epochs=args.fine_tune_epochs,
                            fine_tune_lr=args.fine_tune_lr,
                            uniform=tuple(pareto.UNIFORM if args.uniform is None else args.uniform),
                            arch=args.model, variants=args.variants, val_digits=args.val_digits,
                            aleatoric_weight=args.aleatoric_weight, tag=args.tag,
                            cut_small_layers=args.cut_small_layers)
            print(f"seed {seed}: {time.perf_counter() - t:.0f} s", flush=True)
    rows = pareto.write_tables(pareto.load_all(args.out), args.out)
    pareto.plot(rows, f"{args.out}/pareto.png", args.model, args.profile)
    print(open(f"{args.out}/table.md").read())


if __name__ == "__main__":
    main()
