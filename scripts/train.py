"""Train a quantized Bayesian MLP or LeNet-5 on Dirty-MNIST: deterministic pretraining, then the BNN.

    python scripts/train.py --strategy jq --bits 4 --profile fast --seed 0 --out runs/jq4-s0
    python scripts/train.py --arch lenet5 --bayesian head --strategy jq --bits 4 --out runs/lenet-head

Stage 1 is cached per (profile, seed, activation) under $TFQBNN_CACHE_DIR/pretrain
(default ~/.cache/tfqbnn/pretrain) and shared by every stage-2 run.  A killed run
resumes where it stopped (BackupAndRestore) when started again with the same --out.
"""

from __future__ import annotations

import argparse
import sys

from tfqbnn import QuantizationConfig, models, training


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strategy", choices=["fp32", "vpq", "spq", "jq"], default="jq")
    p.add_argument("--bits", type=int, default=4, help="bit width (ignored for fp32)")
    p.add_argument("--activation", choices=["softplus", "relu"], default="softplus")
    p.add_argument("--arch", choices=list(models.ARCHS), default="mlp")
    p.add_argument("--bayesian", choices=list(models.BAYESIAN), default="all",
                   help="lenet5: every layer variational, or only the last two dense layers (head)")
    p.add_argument("--sigma-quantizer", choices=["log", "uniform"], default="log")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", choices=sorted(training.PROFILES), default="fast")
    p.add_argument("--out", required=True, help="output folder (model.keras, logs, checkpoints)")
    p.add_argument("--pretrain-dir", default=None, help="root of the shared stage-1 cache")
    p.add_argument("--fail-after-epoch", type=int, default=None, help=argparse.SUPPRESS)  # resume tests
    p.add_argument("--fail-stage", choices=["pretrain", "bnn"], default="bnn", help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def quantization_from_args(args):
    if args.strategy == "fp32":
        return QuantizationConfig("none")
    return QuantizationConfig(args.strategy, bits=args.bits, sigma_quantizer=args.sigma_quantizer)


def main(argv=None):
    args = parse_args(argv)
    try:
        q = quantization_from_args(args)
        models.bayesian_model(args.arch, args.bayesian)  # unsupported combinations fail here, in one line
    except ValueError as e:
        sys.exit(f"train.py: {e}")
    training.run(args.out, q, args.profile, args.seed, args.activation, pretrain_root=args.pretrain_dir,
                 verbose=0 if args.quiet else 2, fail_after_epoch=args.fail_after_epoch,
                 fail_stage=args.fail_stage, arch=args.arch, bayesian=args.bayesian)
    print(f"wrote {args.out}/model.keras ({args.arch} {args.bayesian}, {q.name}, profile {args.profile}, "
          f"seed {args.seed})")


if __name__ == "__main__":
    main()
