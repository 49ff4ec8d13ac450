"""Train a quantized Bayesian MLP on Dirty-MNIST: deterministic pretraining, then the BNN.

    tfqbnn-train --strategy jq --bits 4 --profile fast --seed 0 --out runs/jq4-s0

Stage 1 is cached per configuration under $TFQBNN_CACHE_DIR/pretrain (default
~/.cache/tfqbnn/pretrain) and shared by every stage-2 run.  --out is a run folder: run.json
(the run's fingerprint) is written first; a killed run resumes where it stopped when started
again with the same --out and configuration; a folder holding anything else is refused unless
--overwrite, which still deletes only files an earlier tfqbnn run listed in its run.json.
"""

from __future__ import annotations

import argparse
import sys


def parse_args(argv=None):
    from tfqbnn.training import ARCHITECTURES, PROFILES

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strategy", choices=["fp32", "vpq", "spq", "jq"], default="jq")
    p.add_argument("--bits", type=int, default=4, help="bit width (ignored for fp32)")
    p.add_argument("--arch", choices=sorted(ARCHITECTURES), default="mlp")
    p.add_argument("--activation", choices=["softplus", "relu"], default="softplus")
    p.add_argument("--sigma-quantizer", choices=["log", "uniform"], default="log")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", choices=sorted(PROFILES), default="fast")
    p.add_argument("--out", required=True, help="run folder (run.json, model.keras, train.json, log.csv, tensorboard/)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run of another configuration in --out (only files tfqbnn wrote are deleted)")
    p.add_argument("--pretrain-dir", default=None, help="root of the shared stage-1 cache")
    p.add_argument("--fail-after-epoch", type=int, default=None, help=argparse.SUPPRESS)  # resume tests
    p.add_argument("--fail-stage", choices=["pretrain", "bnn"], default="bnn", help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true")
    return p, p.parse_args(argv)


def quantization_from_args(args):
    from tfqbnn import QuantizationConfig

    if args.strategy == "fp32":
        return QuantizationConfig("none")
    return QuantizationConfig(args.strategy, bits=args.bits, sigma_quantizer=args.sigma_quantizer)


def main(argv=None):
    parser, args = parse_args(argv)
    from tfqbnn import training

    try:
        cfg = training.RunConfig(quantization_from_args(args), args.profile, args.seed, args.activation, args.arch)
        training.run(args.out, config=cfg, pretrain_root=args.pretrain_dir, verbose=0 if args.quiet else 2,
                     fail_after_epoch=args.fail_after_epoch, fail_stage=args.fail_stage, overwrite=args.overwrite)
    except ValueError as e:  # RunDirError, DatasetFileError, bad bit widths: one line, naming what is wrong
        sys.exit(f"{parser.prog}: {e}")
    print(f"wrote {args.out}/model.keras ({cfg.quantization.name}, {cfg.arch}, profile {args.profile}, "
          f"seed {args.seed})")


if __name__ == "__main__":
    main()
