"""Wall time of one sweep run one cell after another and as Ray tasks with k workers, on this machine.

    python scripts/bench_sweep.py --profile smoke --seeds 0 1 --only fp32 jq4 --workers 2

Both runs start from empty folders (under --out, default a temporary folder) with the same data, so the
Ray run also pays for starting Ray and for each worker's TensorFlow import. Prints both wall times, their
ratio (sequential / Ray: above 1 means Ray is faster), whether the metrics agree, and the machine's CPU
count and load average, which bound what k workers can gain.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main(argv=None):
    from tfqbnn import sweep, training
    from tfqbnn.sweep_ray import RayOptions

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", choices=sorted(training.PROFILES), default="smoke")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--only", nargs="+", default=["fp32", "jq4"], help="cell names of Table I")
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--workers", type=int, default=2, help="Ray workers (CPUs given to the local Ray), one cell each")
    p.add_argument("--out", default=None, help="folder for the two sweeps (default: a temporary folder)")
    args = p.parse_args(argv)

    cells = [c for c in sweep.table_cells() if c.name in args.only]
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-sweep-"))
    data = training.load_data(args.profile)
    walls = {}
    for backend in ("local", "ray"):
        opts = RayOptions(init=dict(num_cpus=args.workers, include_dashboard=False)) if backend == "ray" else None
        t = time.perf_counter()
        sweep.run_sweep(out / backend, args.seeds, args.profile, cells, data=data, num_samples=args.samples,
                        backend=backend, ray_options=opts)
        walls[backend] = time.perf_counter() - t

    def metrics(backend):
        return [{k: v for k, v in json.loads((sweep.cell_dir(out / backend, c, s) / "metrics.json").read_text()).items()
                 if not k.endswith("_seconds")} for s in args.seeds for c in cells]

    n = len(cells) * len(args.seeds)
    print(f"sweep {args.profile}: {n} cells ({' '.join(args.only)} x seeds {' '.join(map(str, args.seeds))}); "
          f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"  sequential          {walls['local']:8.1f} s")
    print(f"  ray, {args.workers} workers       {walls['ray']:8.1f} s")
    print(f"  ratio sequential / ray: {walls['local'] / walls['ray']:.2f}x; "
          f"metrics identical: {metrics('local') == metrics('ray')}; folders in {out}")


if __name__ == "__main__":
    main()
