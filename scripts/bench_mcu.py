#!/usr/bin/env python
"""Instruction counts and memory of the C runtime on QEMU's Cortex-M boards (exact counts from
-icount; instructions, not cycles). Prints the firmware's key=value bench lines per model, board and sampling
table, including `mode=mc|hybrid|pfp insn_per_inference=N` (S = 30), `insn_deterministic_pass=N` (every weight at
its quantized mean, run once) and their ratios.

  python scripts/bench_mcu.py out/demo/export --boards all --samples 10     (then a summary table per board)
  python scripts/bench_mcu.py EXPORT_LENET_HEAD EXPORT_LENET_ALL --boards an386 --sample-tables derived offset
  python scripts/bench_mcu.py --kernels-only --boards an386 an547   (the dense kernel bench alone, no export)

--kernels (or --kernels-only) also runs the firmware's kernel bench (`make kbench`, no model needed) per board: the
constant-weight FULLY_CONNECTED op of a deterministic prefix (LeNet-5's 400 -> 120, int8 and int4 codes) on its
own, checked against the reference kernel, as exact instruction counts and insn/MAC, and a Bayesian
FULLY_CONNECTED op stored PACKED (784 -> 32) per pair width (mu bits + sigma bits) through the board's default
kernel, as instructions per weight and MC sample; boards with less than 128 KB of RAM are skipped (its data is in
RAM).

  python scripts/bench_mcu.py --kernels-only --boards all > results/mcu_bench/packed.txt
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tflite_export import firmware_runner  # noqa: E402

# the kernel bench's PACKED pair widths (mu bits, sigma bits), in its print order
PACKED_WIDTHS = [(3, 1), (4, 4), (5, 3), (2, 1), (3, 2), (4, 2), (4, 3)]
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


def _ram_bytes(board):
    size = firmware_runner.BOARD_TABLE[board]["RAM"].split()[1]
    return int(size[:-1]) * {"K": 1024, "M": 1024 * 1024}[size[-1]] if size[-1] in "KM" else int(size, 0)


def kernel_bench(board):
    """The kernel bench's key=value lines on `board` as a dict (raises RuntimeError when it fails or mismatches)."""
    r = subprocess.run(["make", "-s", "-C", firmware_runner.FIRMWARE_DIR, f"BOARD={board}", "kbench"],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0 or "KBENCH PASSED" not in r.stdout:
        raise RuntimeError(f"kbench on {board} failed (exit {r.returncode}):\n{r.stdout}{r.stderr}")
    return firmware_runner.parse_bench(r.stdout)


def kernel_rows(boards):
    """Runs the kernel bench on each board with room for it; prints its lines, a table of insn/MAC and one of the
    PACKED op's instructions per weight and sample (exact counts over its weights)."""
    rows, packed = {}, {}
    for board in boards:
        if _ram_bytes(board) < 128 * 1024:
            print(f"# kbench {board}: skipped ({firmware_runner.BOARD_TABLE[board]['RAM'].split()[1]} of RAM)")
            continue
        kv = kernel_bench(board)
        print(f"# kbench {board} ({firmware_runner.BOARDS[board]})")
        for k, v in kv.items():
            print(f"{k}={v}")
        rows[board] = {bits: int(kv[f"fc_int{bits}_insn"]) / int(kv[f"fc_int{bits}_macs"]) for bits in (8, 4)}
        packed[board] = (kv["packed_kernel"], {(b, sb): int(kv[f"packed_{b}_{sb}_insn"]) /
                                               int(kv[f"packed_{b}_{sb}_weights"]) for b, sb in PACKED_WIDTHS})
    print("# summary: constant-weight FULLY_CONNECTED 400 -> 120 (whole op), instructions per MAC")
    print(f"{'board':<14} {'core':<28} {'int8 insn/MAC':>13} {'int4 insn/MAC':>13}")
    for board, r in rows.items():
        print(f"{board:<14} {firmware_runner.BOARDS[board]:<28} {r[8]:>13.3f} {r[4]:>13.3f}")
    print("# summary: PACKED Bayesian FULLY_CONNECTED 784 -> 32 (whole op, one MC sample), instructions per weight "
          "and sample by mu bits + sigma bits (p)")
    print(f"{'board':<14} {'core':<28} {'kernel':<14}" +
          "".join(f" {f'{b}+{sb} (p={b + sb})':>11}" for b, sb in PACKED_WIDTHS))
    for board, (kernel, r) in packed.items():
        print(f"{board:<14} {firmware_runner.BOARDS[board]:<28} {kernel:<14}" +
              "".join(f" {r[w]:>11.3f}" for w in PACKED_WIDTHS))
    return rows


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
    p.add_argument("--kernels", action="store_true", help="also run the dense kernel bench (make kbench) per board")
    p.add_argument("--kernels-only", action="store_true", help="only the dense kernel bench (no export needed)")
    a = p.parse_args(argv)
    boards = list(firmware_runner.BOARDS) if "all" in a.boards else a.boards
    if a.kernels_only:
        kernel_rows(boards)
        return
    for d in a.export_dirs:
        if not os.path.isdir(d):
            p.error(f"export_dir {d!r} is not a directory (run `make demo` or pass an export directory)")
    if a.samples < 1:
        p.error(f"--samples must be >= 1; received {a.samples}")
    from tfqbnn.datasets.test_images import sample_test_images

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
    if a.kernels:
        kernel_rows(boards)


if __name__ == "__main__":
    main()
