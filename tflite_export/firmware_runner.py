"""Build and run the Cortex-M firmware (tflite_export/firmware) under QEMU from Python.

`run_on_qemu(export_dir, board="an386", images=...)` writes the C sources of an exported model
(plus the given images and their reference results), builds the firmware with arm-none-eabi-gcc,
runs it on the emulated board with semihosting, and returns the on-device results parsed from its
output (prediction and uncertainty per image; the firmware itself checks them against the
reference and exits non-zero on any mismatch). `bench(...)` returns the key=value bench lines.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

import numpy as np

FIRMWARE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "firmware")


BOARD_FIELDS = ("MACHINE", "CORE", "ARCH", "CPU", "FPU", "DSP", "MVE", "FLASH", "RAM", "STACK", "HEAP", "CONSOLE",
                "SYSTICK_HZ", "CYCLES")


def read_boards(path=None):
    """The board table (boards.mk, `<board>.<FIELD> := value` lines): {board: {FIELD: value}}, boards in file
    order. Raises ValueError when a board lacks a field of BOARD_FIELDS."""
    with open(path or os.path.join(FIRMWARE_DIR, "boards.mk")) as f:
        text = f.read()
    table = {}
    for board, field, value in re.findall(r"^([A-Za-z0-9_]+)\.([A-Z_]+) := (.*?)\s*$", text, re.M):
        table.setdefault(board, {})[field] = value
    for board, fields in table.items():
        missing = [k for k in BOARD_FIELDS if k not in fields]
        if missing:
            raise ValueError(f"boards.mk: board {board} lacks {', '.join(missing)}")
    return table


def size_bytes(text):
    """A link-script size of boards.mk (`4M`, `512K`, `1536`) in bytes."""
    m = re.fullmatch(r"(\d+)([KM]?)", text.strip())
    if not m:
        raise ValueError(f"size {text!r} is not <digits>[K|M]")
    return int(m.group(1)) * {"": 1, "K": 1024, "M": 1024 * 1024}[m.group(2)]


BOARD_TABLE = read_boards()
BOARDS = {board: fields["CORE"] for board, fields in BOARD_TABLE.items()}  # {board: core}
TOOLS = ("arm-none-eabi-gcc", "qemu-system-arm", "make")
_LINE = re.compile(r"^(ok|FAIL) image (\d+) \(([^)]*)\) kernel=(\w+) pred=(-?\d+) expected=(-?\d+) "
                   r"PE=(-?\d+) EE=(-?\d+) MI=(-?\d+)")


def missing_tools():
    """Names of the required programs that are not on PATH."""
    return [t for t in TOOLS if shutil.which(t) is None]


def _check_board(board):
    if board not in BOARDS:
        raise ValueError(f"board={board!r} is not supported; use one of {sorted(BOARDS)}")


def _make(target, board, gen_dir, build_dir=None, timeout=600, extra=()):
    missing = missing_tools()
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)} (apt-get install gcc-arm-none-eabi "
                           "libnewlib-arm-none-eabi qemu-system-arm)")
    cmd = ["make", "-s", "-C", FIRMWARE_DIR, f"BOARD={board}", f"GEN_DIR={os.path.abspath(gen_dir)}", *extra, target]
    if build_dir is not None:
        cmd.append(f"BUILD={os.path.abspath(build_dir)}")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def parse_results(stdout):
    """Per-image results of the firmware's output lines (entropies in nats)."""
    out = []
    for line in stdout.splitlines():
        m = _LINE.match(line)
        if m and m.group(4) in ("auto", "simd", "lut"):
            ok, i, src, kernel, pred, exp, pe, ee, mi = m.groups()
            out.append({"image": int(i), "source": src, "kernel": kernel, "ok": ok == "ok", "prediction": int(pred),
                        "expected_prediction": int(exp), "predictive_entropy": int(pe) * 1e-6,
                        "expected_entropy": int(ee) * 1e-6, "mutual_information": int(mi) * 1e-6})
    seen, first = set(), []
    for r in out:  # the first run of every image (later lines are kernel cross-checks)
        if r["image"] not in seen:
            seen.add(r["image"])
            first.append(r)
    return first


def prepare(export_dir, gen_dir, images=None, sources=None, num_samples=10, seed=None, sample_table="derived"):
    """Write model_data + test_vectors for `export_dir` (or an IntegerModel) into gen_dir."""
    from tflite_export import artifacts, c_source

    model = export_dir if not isinstance(export_dir, (str, os.PathLike)) else artifacts.load_exported(export_dir)
    c_source.write_model_sources(model, gen_dir, sample_table=sample_table)
    if images is None:
        raise ValueError("pass test images (uint8 [N, H*W*C]), e.g. tfqbnn.datasets.test_images.sample_test_images()")
    images = np.asarray(images)
    if images.dtype != np.uint8:  # float pixels in [0, 1] -> bytes (exact for k/255 data)
        images = np.clip(np.round(images * 255.0), 0, 255).astype(np.uint8)
    sources = list(sources) if sources is not None else [f"image{i}" for i in range(len(images))]
    return c_source.write_test_vectors(model, images.reshape(len(images), -1), sources, gen_dir,
                                       num_samples=num_samples, seed=seed)


def run_on_qemu(export_dir, board="an386", images=None, sources=None, num_samples=10, seed=None, verbose=True,
                work_dir=None):
    """Build + run the firmware on an emulated board; returns a list of per-image result dicts.

    images: uint8 [N, 784] (or floats in [0, 1]); default: one MNIST digit, one ambiguous digit and
    one Fashion-MNIST image. Raises RuntimeError when the firmware reports a mismatch or faults.
    """
    _check_board(board)
    work = work_dir or tempfile.mkdtemp(prefix="qbnn_fw_")
    gen = os.path.join(work, "gen")
    prepare(export_dir, gen, images, sources, num_samples, seed)
    r = _make("run", board, gen, os.path.join(work, board))
    results = parse_results(r.stdout)
    if verbose:
        print(f"on-device uncertainty ({board}, {BOARDS[board]} in QEMU, {num_samples} MC samples):")
        for x in results:
            print(f"  {x['source']:<16} pred={x['prediction']}  predictive entropy={x['predictive_entropy']:.4f}  "
                  f"expected entropy={x['expected_entropy']:.4f}  MI={x['mutual_information']:.4f} nats"
                  f"  [{'matches reference' if x['ok'] else 'MISMATCH'}]")
    if r.returncode != 0:
        raise RuntimeError(f"firmware on {board} failed (exit {r.returncode}):\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return results


def parse_bench(stdout):
    """The firmware's bench lines as a dict in print order: `key=value`, and per-mode lines
    `mode=<m> insn_per_inference=N` under the key `mode=<m> insn_per_inference` (so that printing
    `f"{key}={value}"` gives the line back)."""
    out = {}
    for line in stdout.splitlines():
        m = re.match(r"^(mode=\w+) (\w+)=(\S+)$", line)
        if m:
            out[f"{m.group(1)} {m.group(2)}"] = m.group(3)
        elif "=" in line and " " not in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def bench(export_dir, image, board="an386", samples=10, work_dir=None, sample_table="derived"):
    """The firmware's bench lines as a dict (instruction counts, bytes), measured on one uint8 `image`, with the
    derived (64 KB) or offset (4 KB) sampling table."""
    _check_board(board)
    work = work_dir or tempfile.mkdtemp(prefix="qbnn_bench_")
    gen = os.path.join(work, "gen")
    prepare(export_dir, gen, np.asarray(image).reshape(1, -1), ["bench"], num_samples=1, sample_table=sample_table)
    r = _make("bench", board, gen, os.path.join(work, board), extra=(f"SAMPLES={samples}",))
    if r.returncode != 0:
        raise RuntimeError(f"bench on {board} failed (exit {r.returncode}):\n{r.stdout}{r.stderr}")
    return parse_bench(r.stdout)


def bench_summary(kv):
    """One board's headline figures from its bench lines: MC instructions per weight per sample, the mean pass's
    instructions per weight, flash (linked image) and RAM (arena + runtime state + measured stack) in bytes."""
    weights = int(kv["weights"])
    return {"insn_per_weight_sample": int(kv["insn_per_sample"]) / weights,
            "mean_pass_insn_per_weight": int(kv["insn_deterministic_pass"]) / weights,
            "flash_bytes": int(kv["flash_bytes"]), "ram_bytes": int(kv["runtime_ram_bytes"])}


def format_summary(rows):
    """A plain-text table of {board: bench_summary(...)}."""
    out = [f"{'board':<14} {'core':<28} {'insn/w/sample':>13} {'mean insn/w':>11} {'flash B':>8} {'RAM B':>6}"]
    for board, r in rows.items():
        out.append(f"{board:<14} {BOARDS[board]:<28} {r['insn_per_weight_sample']:>13.2f} "
                   f"{r['mean_pass_insn_per_weight']:>11.2f} {r['flash_bytes']:>8} {r['ram_bytes']:>6}")
    return "\n".join(out)

