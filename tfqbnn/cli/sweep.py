"""The paper's Table I: FP32 and VPQ / SPQ / JQ at 8..2 bits, ablations and baselines, over seeds.

    tfqbnn-sweep --profile fast --seeds 0 1 2 --out results/sweep
    tfqbnn-sweep --arch lenet5 --profile fast --seeds 0 1 2 --out runs/lenet5

Resumable: finished cells (a metrics.json in out/<cell>/s<seed>/) are skipped, once run.json
shows that --out is a sweep of the same profile, sample count and data; anything else in a
non-empty --out is refused unless --overwrite.  Writes table.csv (one row per cell and seed),
table.md (mean ± sd) and bits.png.

--backend ray runs each seed's pretraining and each cell as Ray tasks (a local Ray with this
machine's CPUs and GPUs, or the cluster at --address); the folders written are the same
(docs/sweeps.md):

    tfqbnn-sweep --profile paper --out runs/paper --backend ray --address auto --cpus-per-cell 4 --gpus-per-cell 1
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
    r = p.add_argument_group("Ray (--backend ray)")
    r.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local: one cell after another in this process; ray: cells as Ray tasks")
    r.add_argument("--address", default=None,
                   help="auto (the cluster this machine is a node of) or ray://HOST:PORT; default: start a local Ray")
    r.add_argument("--cpus-per-cell", type=float, default=1.0, help="CPUs each task reserves (default 1)")
    r.add_argument("--gpus-per-cell", type=float, default=0.0, help="GPUs each task reserves (default 0)")
    r.add_argument("--max-concurrent", type=int, default=None,
                   help="tasks submitted at once (default: as many as the cluster's resources hold)")
    r.add_argument("--resource", action="append", default=[], metavar="NAME=AMOUNT",
                   help="a custom resource each task reserves (repeatable), e.g. to keep the tasks on nodes "
                        "started with --resources='{\"NAME\": ...}'")
    r.add_argument("--max-retries", type=int, default=3, help="restarts of a task whose worker died (default 3)")
    r.add_argument("--worker-scratch", default=None,
                   help="folder on each worker node for the tasks' scratch files (default: its temp dir)")
    args = p.parse_args(argv)
    try:
        args.resources = {k: float(v) for k, v in (item.split("=", 1) for item in args.resource)}
    except ValueError:
        p.error(f"--resource takes NAME=AMOUNT; received {args.resource}")
    if args.backend == "local":
        given = [f"--{k.replace('_', '-')}" for k in ("address", "max_concurrent", "worker_scratch")
                 if getattr(args, k) is not None] + (["--resource"] if args.resource else [])
        if given:
            p.error(f"{' '.join(given)} need --backend ray")
    return p, args


def ray_options(args):
    from tfqbnn.sweep_ray import RayOptions

    return RayOptions(address=args.address, cpus_per_cell=args.cpus_per_cell, gpus_per_cell=args.gpus_per_cell,
                      resources=args.resources, max_concurrent=args.max_concurrent, max_retries=args.max_retries,
                      scratch=args.worker_scratch)


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
    failed = None
    try:
        rows, wall = sweep.run_sweep(args.out, args.seeds, args.profile, cells, num_samples=args.samples,
                                     table_only=args.table_only, overwrite=args.overwrite, backend=args.backend,
                                     ray_options=ray_options(args) if args.backend == "ray" else None)
    except sweep.CellsFailed as e:
        failed, rows, wall = e, e.rows, None
    except ValueError as e:  # RunDirError / DatasetFileError: one line naming the folder or file
        sys.exit(f"{prog}: {e}")
    with open(f"{args.out}/table.md") as f:
        print(f.read())
    if failed is not None:
        lines = "\n".join(f"  {f['cell']} s{f['seed']}: {f['error']}" for f in failed.failures)
        sys.exit(f"{prog}: {len(failed.failures)} cell(s) failed, {len(rows)} finished (the tables hold those; "
                 f"a rerun retries the failed ones):\n{lines}")
    print(f"sweep: {len(rows)} cells x seeds, wall time this run {wall / 60:.1f} min; wrote {args.out}/table.csv, "
          f"table.md, bits.png")


if __name__ == "__main__":
    main()
