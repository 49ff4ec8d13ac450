#!/usr/bin/env python
"""Instruction counts and memory of the C runtime on QEMU's Cortex-M boards (exact counts from
-icount; instructions, not cycles). Prints the firmware's key=value bench lines per board, including
`mode=mc|hybrid|pfp insn_per_inference=N` (S = 30) and `insn_deterministic_pass=N` (SPEC.md section 11).

  python scripts/bench_mcu.py out/demo/export --boards an385 an386 an500 an505 an547 --samples 10
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tflite_export import firmware_runner  # noqa: E402

DEFAULT_EXPORT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "out", "demo", "export")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("export_dir", nargs="?", default=DEFAULT_EXPORT,
                   help="directory written by scripts/export.py (model.tflite + manifest.json); default: the "
                        "export of `make demo`")
    p.add_argument("--boards", nargs="+", default=sorted(firmware_runner.BOARDS),
                   choices=sorted(firmware_runner.BOARDS))
    p.add_argument("--samples", type=int, default=10, help="MC samples measured (per-sample counts are averages)")
    a = p.parse_args(argv)
    if not os.path.isdir(a.export_dir):
        p.error(f"export_dir {a.export_dir!r} is not a directory (run `make demo` or pass an export directory)")
    if a.samples < 1:
        p.error(f"--samples must be >= 1; received {a.samples}")
    from tfqbnn.datasets.test_images import sample_test_images

    image = sample_test_images(per_set=1)[0][0]  # an MNIST test digit (the hybrid's cost depends on its pixels)
    for board in a.boards:
        kv = firmware_runner.bench(a.export_dir, image, board=board, samples=a.samples)
        print(f"# {board} ({firmware_runner.BOARDS[board]})")
        for k, v in kv.items():
            print(f"{k}={v}")


if __name__ == "__main__":
    main()
