#!/usr/bin/env python
"""Instruction counts and memory of the C runtime on QEMU's Cortex-M boards (exact counts from
-icount; instructions, not cycles). Prints the firmware's key=value bench lines per model, board and sampling
table, including `mode=mc|hybrid|pfp insn_per_inference=N` (S = 30), `insn_deterministic_pass=N` (every weight at
its quantized mean, run once) and their ratios.

  python scripts/bench_mcu.py out/demo/export --boards all --samples 10     (then a summary table per board)
  python scripts/bench_mcu.py EXPORT_LENET_HEAD EXPORT_LENET_ALL --boards an386 --sample-tables derived offset
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tflite_export import firmware_runner  # noqa: E402

DEFAULT_EXPORT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "out", "demo", "export")


def ratios(kv):
    """`ratio_<mode>_to_deterministic`: insn_per_inference (S = 30) over one deterministic pass."""
    det = int(kv["insn_deterministic_pass"])
    out = {}
    for mode in ("mc", "hybrid", "pfp"):
        v = kv.get(f"mode={mode} insn_per_inference")
        if v is not None:
            out[f"ratio_{mode}_to_deterministic"] = f"{int(v) / det:.3f}"
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("export_dirs", nargs="*", default=[DEFAULT_EXPORT],
                   help="directories written by tfqbnn-export (model.tflite + manifest.json); default: the export "
                        "of `make demo`")
    p.add_argument("--boards", nargs="+", default=["all"], choices=["all", *sorted(firmware_runner.BOARDS)],
                   help="boards of tflite_export/firmware/boards.mk (all: every one)")
    p.add_argument("--samples", type=int, default=10, help="MC samples measured (per-sample counts are averages)")
    p.add_argument("--sample-tables", nargs="+", default=["derived"], choices=["derived", "offset"],
                   help="sampling table in flash: derived (64 KB per grid) and/or offset (4 KB per grid)")
    a = p.parse_args(argv)
    for d in a.export_dirs:
        if not os.path.isdir(d):
            p.error(f"export_dir {d!r} is not a directory (run `make demo` or pass an export directory)")
    if a.samples < 1:
        p.error(f"--samples must be >= 1; received {a.samples}")
    from tfqbnn.datasets.test_images import sample_test_images

    boards = list(firmware_runner.BOARDS) if "all" in a.boards else a.boards
    image = sample_test_images(per_set=1)[0][0]  # an MNIST test digit (the hybrid's cost depends on its pixels)
    for d in a.export_dirs:
        for table in a.sample_tables:
            summary = {}
            for board in boards:
                kv = firmware_runner.bench(d, image, board=board, samples=a.samples, sample_table=table)
                print(f"# {d} {board} ({firmware_runner.BOARDS[board]}) sample_table={table}")
                for k, v in {**kv, **ratios(kv)}.items():
                    print(f"{k}={v}")
                summary[board] = firmware_runner.bench_summary(kv)
            print(f"# summary: {d} sample_table={table} S={a.samples}")
            print(firmware_runner.format_summary(summary))


if __name__ == "__main__":
    main()
