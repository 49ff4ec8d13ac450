"""The paper's Table I: FP32 and VPQ / SPQ / JQ at 8..2 bits, ablations and baselines, over seeds.

    tfqbnn-sweep --profile fast --seeds 0 1 2 --out results/sweep
    tfqbnn-sweep --arch lenet5 --profile fast --seeds 0 1 2 --out runs/lenet5

Resumable: finished cells (a metrics.json in out/<cell>/s<seed>/) are skipped, once run.json
shows that --out is a sweep of the same profile, sample count and data; anything else in a
non-empty --out is refused unless --overwrite.  Writes table.csv (one row per cell and seed),
table.md (mean ± sd) and bits.png.
"""

from __future__ import annotations

import argparse
import sys

from tfqbnn.cli import samples_arg


def parse_args(argv=None):
    from tfqbnn import sweep
    from tfqbnn.training import PROFILES

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true",
                   help="replace a sweep of another configuration in --out (only files tfqbnn wrote are deleted)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="fast")
    p.add_argument("--arch", choices=["mlp", "lenet5"], default="mlp",
                   help="mlp: Table I; lenet5: fp32 and jq4, fully Bayesian and Bayesian head")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--bits", type=int, nargs="+", default=list(sweep.BITS))
    p.add_argument("--no-ablations", action="store_true")
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--only", nargs="+", default=None, help="run only these cell names (e.g. fp32 jq4)")
    p.add_argument("--samples", type=samples_arg, default=None, help="MC samples per evaluation (default: profile's)")
    p.add_argument("--table-only", action="store_true", help="rebuild the tables from finished cells, train nothing")
    return p, p.parse_args(argv)


def main(argv=None):
    from tfqbnn import sweep

    parser, args = parse_args(argv)
    prog = parser.prog
    if args.arch == "lenet5":
        cells = sweep.lenet_cells()
    else:
        cells = sweep.table_cells(args.bits, ablations=not args.no_ablations, baselines=not args.no_baselines)
    if args.only:
        unknown = set(args.only) - {c.name for c in cells}
        if unknown:
            sys.exit(f"{prog}: unknown cells {sorted(unknown)}; known: {[c.name for c in cells]}")
        cells = [c for c in cells if c.name in args.only]
    try:
        rows, wall = sweep.run_sweep(args.out, args.seeds, args.profile, cells, num_samples=args.samples,
                                     table_only=args.table_only, overwrite=args.overwrite)
    except ValueError as e:  # RunDirError / DatasetFileError: one line naming the folder or file
        sys.exit(f"{prog}: {e}")
    with open(f"{args.out}/table.md") as f:
        print(f.read())
    print(f"sweep: {len(rows)} cells x seeds, wall time this run {wall / 60:.1f} min; wrote {args.out}/table.csv, "
          f"table.md, bits.png")


if __name__ == "__main__":
    main()
