#!/usr/bin/env python
"""Markdown tables of the measured results, computed from the files in `results/`.

The documentation's results pages and the README's headline table are made here, so no number is typed
by hand: a page holds a marker line `<!-- results: NAME -->` and the MkDocs hook (`scripts/docs_hook.py`)
replaces it with `TABLES[NAME]()`. The README holds the headline table between
`<!-- results: headline -->` and `<!-- /results -->`; `--write-readme` refreshes it and `--check-readme`
(run by `make docs`) fails when it differs from the files.

    python scripts/results_tables.py table1            # print one table
    python scripts/results_tables.py --check-readme    # exit 1 if README.md's headline table is stale
    python scripts/results_tables.py --write-readme

Only the standard library and numpy: building the docs never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import re
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "results")
README = os.path.join(ROOT, "README.md")


def _path(*parts):
    return os.path.join(RESULTS, *parts)


def _json(*parts):
    with open(_path(*parts)) as f:
        return json.load(f)


def _csv(*parts):
    with open(_path(*parts), newline="") as f:
        return list(csv.DictReader(f))


def _pm(values, scale=1.0, nd=4):
    """`mean ± sd` (sd with ddof=1; 0 for one value), as the sweep's own table.md writes it."""
    v = np.asarray(values, dtype=float) * scale
    sd = v.std(ddof=1) if len(v) > 1 else 0.0
    return f"{v.mean():.{nd}f} ± {sd:.{nd}f}"


def _table(header, rows, align=None):
    align = align or ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- sweep tables

# metric key -> (column header, scale, decimals)
METRICS = {
    "accuracy": ("accuracy %", 100, 2),
    "auroc_aleatoric": ("AUROC entropy MNIST/Amb (aleatoric)", 1, 4),
    "auroc_epistemic": ("AUROC MI MNIST/Fashion (epistemic)", 1, 4),
    "auroc_entropy_ood": ("AUROC entropy MNIST/Fashion", 1, 4),
    "auroc_mi_ambiguous": ("AUROC MI MNIST/Amb", 1, 4),
    "mean_epistemic_mnist": ("mean MI MNIST", 1, 4),
    "mean_epistemic_ambiguous": ("mean MI Amb", 1, 4),
    "mean_epistemic_ood": ("mean MI Fashion", 1, 4),
    "nll": ("NLL", 1, 3),
    "ece": ("ECE", 1, 3),
    "eval_seconds": ("eval s (26k images)", 1, 1),
}


def _columns(*keys):
    """[(column header, metric key, scale, decimals)] of the named metrics."""
    return [(METRICS[k][0], k, METRICS[k][1], METRICS[k][2]) for k in keys]


SWEEP_COLUMNS = _columns("accuracy", "auroc_aleatoric", "auroc_epistemic", "auroc_entropy_ood", "auroc_mi_ambiguous",
                         "mean_epistemic_mnist", "mean_epistemic_ood", "nll", "ece")

def _group_csv(folder):
    """Rows of `results/FOLDER/table.csv` (one per cell and seed) grouped by cell, in file order."""
    cells = {}
    for r in _csv(folder, "table.csv"):
        cells.setdefault(r["cell"], []).append(r)
    return cells


def _group_runs(folder):
    """Per-run `metrics.json` of `results/FOLDER/CELL/sSEED/`, grouped by cell."""
    cells = {}
    for f in sorted(glob.glob(_path(folder, "*", "s*", "metrics.json"))):
        with open(f) as fh:
            m = json.load(fh)
        cells.setdefault(m["cell"], []).append(m)
    return cells


def _sweep_rows(cells, columns, only=None, label=lambda c: c):
    rows = []
    for cell, rs in cells.items():
        if only is not None and cell not in only:
            continue
        row = [label(cell), len(rs)]
        row += [_pm([float(r[k]) for r in rs], sc, nd) for _, k, sc, nd in columns]
        row += [f"{int(float(rs[0]['param_bytes'])):,}", f"{float(rs[0]['memory_reduction']):.1f}"]
        rows.append(row)
    return rows


def table1():
    """Table I: every cell of the fast-profile MLP sweep, mean ± sd over its seeds."""
    header = ["model", "seeds"] + [c[0] for c in SWEEP_COLUMNS] + ["stored bytes", "x smaller"]
    return _table(header, _sweep_rows(_group_csv("sweep_fast"), SWEEP_COLUMNS))


def samples_curve():
    """The JQ-4 seed-0 model against the number of Monte-Carlo samples (the evaluation's own table)."""
    with open(_path("jq4_s0", "samples_curve.md")) as f:
        return f.read().strip()


LENET_COLUMNS = _columns("accuracy", "auroc_aleatoric", "auroc_epistemic", "auroc_entropy_ood", "mean_epistemic_mnist",
                         "mean_epistemic_ambiguous", "mean_epistemic_ood", "nll", "ece")

def _lenet(folder):
    header = ["model", "seeds"] + [c[0] for c in LENET_COLUMNS] + ["stored bytes", "x smaller"]
    rows = _sweep_rows(_group_runs(folder), LENET_COLUMNS, label=lambda c: c.replace("lenet5-", "LeNet-5 "))
    return _table(header, rows)


def lenet5_aug():
    """LeNet-5 under the `lenet-aug` profile (the LeNet-5 reference runs)."""
    return _lenet("lenet5_lenet-aug")


def lenet5_fast():
    """LeNet-5 under the MLP's `fast` profile."""
    return _lenet("lenet5_fast")


def headline():
    """The README's table: FP32 against 4-bit JQ, for the paper's MLP and for LeNet-5."""
    cols = SWEEP_COLUMNS[:3]
    header = ["model", "seeds"] + [c[0] for c in cols] + ["stored bytes", "x smaller"]
    mlp = _sweep_rows(_group_csv("sweep_fast"), cols, only=("fp32", "jq4"),
                      label=lambda c: f"MLP 784-100-100-10, {c} (fast)")
    lenet = _sweep_rows(_group_runs("lenet5_lenet-aug"), cols,
                        only=("lenet5-fp32-all", "lenet5-jq4-all", "lenet5-jq4-head"),
                        label=lambda c: "LeNet-5, " + c.replace("lenet5-", "") + " (lenet-aug)")
    return _table(header, mlp + lenet)


# ----------------------------------------------------------------------------------- cheap uncertainty

CHEAP_METHODS = ["mc", "hybrid", "pfp", "pfp-full", "mc-reseeded"]
# the cheap-modes table names the AUROCs without the (aleatoric) / (epistemic) suffix, as its README does
CHEAP_COLUMNS = [(h.split(" (")[0] if k.startswith("auroc") else h, k, sc, nd)
                 for h, k, sc, nd in _columns("accuracy", "auroc_aleatoric", "auroc_epistemic", "mean_epistemic_mnist",
                                              "mean_epistemic_ambiguous", "mean_epistemic_ood", "eval_seconds")]

def cheap_modes():
    """Each Keras method against 30-sample MC on the same models (max |difference| over the seeds)."""
    m = _json("cheap_uncertainty", "metrics.json")
    models = {}
    for key in m:
        cell, seed = key.split("/")
        models.setdefault(cell, []).append(key)
    header = (["model", "method", "seeds"] + [c[0] for c in CHEAP_COLUMNS]
              + ["max abs Δ acc (pt)", "max abs Δ AUROC ent", "max abs Δ AUROC MI"])
    rows = []
    for cell, keys in models.items():
        for method in CHEAP_METHODS:
            runs = [m[k][method] for k in keys if method in m[k]]
            if not runs:
                continue
            row = [cell, method, len(runs)] + [_pm([r[k] for r in runs], sc, nd) for _, k, sc, nd in CHEAP_COLUMNS]
            if method == "mc":
                row += ["-", "-", "-"]
            else:
                mc = [m[k]["mc"] for k in keys if method in m[k]]
                for k, sc, nd in (("accuracy", 100, 2), ("auroc_aleatoric", 1, 4), ("auroc_epistemic", 1, 4)):
                    row.append(f"{max(abs(a[k] - b[k]) * sc for a, b in zip(runs, mc)):.{nd}f}")
            rows.append(row)
    return _table(header, rows, align=["---", "---"] + ["---:"] * (len(header) - 2))


def cheap_timing():
    """Best-of-3 wall seconds on the 10,000 MNIST test images, model s0, S = 30."""
    t = _json("cheap_uncertainty", "timing.json")
    methods = [k for k in CHEAP_METHODS if any(k in v for v in t.values())]
    return _table(["model"] + methods, [[cell] + [f"{v[k]:.2f} s" for k in methods] for cell, v in t.items()])


def lowbit_diagnostic():
    """Flip rate and frozen share per layer of the JQ-4 seed-0 model, its mu and sigma re-quantized at 3 and 2 bits."""
    d = _json("cheap_uncertainty", "lowbit_diagnostic.json")
    layers = sorted({k.split()[1] for k in d})
    header = ["layer", "median σ"] + [f"{q} flip rate / frozen" for q in ("jq4", "jq3", "jq2")]
    rows = []
    for layer in layers:
        row = [layer, f"{d['jq4 ' + layer]['median_sigma']:.3g}"]
        for q in ("jq4", "jq3", "jq2"):
            v = d.get(f"{q} {layer}")
            row.append(f"{v['flip_rate']:.2f} / {v['frozen']:.4f}" if v else "-")
        rows.append(row)
    return _table(header, rows)


# ------------------------------------------------------------------------------------------------ export

def export_memory():
    """Stored bytes of the exported JQ-4 paper MLP, from its manifest.json."""
    t = _json("export_jq4_s0", "manifest.json")["totals"]
    rows = [["float32 μ + σ", f"{t['float32_mu_sigma_bytes']:,}", "-", "1.00x"],
            ["int4 JQ-4 (μ and σ codes in one byte per weight)", f"{t['stored_weight_bytes']:,}",
             f"{t['table_bytes']:,}",
             f"{t['compression_weights_only']:.2f}x ({t['compression_with_tables']:.2f}x with tables)"]]
    return _table(["storage", "weight bytes", "tables", "smaller than float32"], rows)


def export_check():
    """Keras against the integer model of the same export (`tfqbnn-export --check`)."""
    c = _json("export_jq4_s0", "check.json")
    keys = [("accuracy", "accuracy %", 100, 2), ("auroc_entropy_mnist_vs_ambiguous", "AUROC entropy MNIST/Amb", 1, 4),
            ("auroc_mi_mnist_vs_fashion", "AUROC MI MNIST/Fashion", 1, 4), ("mean_mi_mnist", "mean MI MNIST", 1, 4),
            ("mean_mi_fashion", "mean MI Fashion", 1, 4)]
    rows = [[name] + [f"{c[side][k] * sc:.{nd}f}" for k, _, sc, nd in keys]
            for side, name in (("keras", "Keras (float)"), ("integer", "integer model"))]
    return _table(["model"] + [k[1] for k in keys], rows)


# --------------------------------------------------------------------------------------------------- MCU

BOARDS = {"an385": "M3 (an385)", "an386": "M4F (an386)", "an500": "M7 (an500)", "an505": "M33 (an505)",
          "an547": "M55 (an547)"}


def _bench(name):
    """The key=value blocks `scripts/bench_mcu.py` prints, keyed by (export name, board, sampling table), the
    dense-kernel blocks (`--kernels`) by ("kbench", board, None); each block also keeps its core's name."""
    out = {}
    key = None
    with open(_path("mcu_bench", name)) as f:
        for line in f:
            line = line.rstrip("\n")
            hdr = re.match(r"# (\S+) (\S+) \((.*)\) sample_table=(\S+)$", line)
            kb = re.match(r"# kbench (\S+) \((.*)\)$", line)
            if hdr or kb:
                key = (os.path.basename(hdr.group(1)), hdr.group(2), hdr.group(4)) if hdr else ("kbench", kb.group(1), None)
                out[key] = {"core": (hdr or kb).group(3 if hdr else 2)}
            elif line.startswith("#"):  # a summary or a skipped board: no block
                key = None
            elif key and "=" in line:
                k, v = line.rsplit("=", 1)
                out[key][k] = v
    return out


def _n(v):
    try:
        return f"{int(v):,}"
    except ValueError:
        return v


MCU_ROWS = [
    ("kernel", "kernel", str),
    ("instructions per MC sample", "insn_per_sample", _n),
    ("instructions per weight per sample", "insn_per_weight_sample", str),
    ("one deterministic pass (weights at their means)", "insn_deterministic_pass", _n),
    ("MC, S = 30", "mode=mc insn_per_inference", _n),
    ("HYBRID, S = 30", "mode=hybrid insn_per_inference", _n),
    ("PFP, 30 logit samples", "mode=pfp insn_per_inference", _n),
    ("MC / deterministic pass", "ratio_mc_to_deterministic", str),
    ("HYBRID / deterministic pass", "ratio_hybrid_to_deterministic", str),
    ("PFP / deterministic pass", "ratio_pfp_to_deterministic", str),
    ("stored parameters (bytes)", "param_bytes", _n),
    ("sampling table in flash (bytes)", "sample_table_bytes", _n),
    ("arena (bytes)", "arena_bytes", _n),
    ("runtime RAM: arena + runtime struct + peak stack (bytes)", "runtime_ram_bytes", _n),
    ("peak stack of HYBRID / PFP (bytes)", "modes_stack_bytes", _n),
    ("flash of the whole test firmware (bytes)", "flash_bytes", _n),
]


def _mcu_table(blocks, columns):
    header = [""] + [c[0] for c in columns]
    rows = []
    for label, key, fmt in MCU_ROWS:
        vals = [blocks[c[1]].get(key) for c in columns]
        if all(v is None for v in vals):
            continue
        rows.append([label] + ["-" if v is None else fmt(v) for v in vals])
    return _table(header, rows)


def mcu_mlp():
    """The JQ-4 paper MLP on every board (one MNIST test digit)."""
    b = _bench("mlp.txt")
    cols = [(BOARDS.get(board, board), k) for k in b for board in [k[1]] if k[2] == "derived"]
    return _mcu_table(b, cols)


def mcu_boards():
    """Every board of the bench: MC and mean-pass instructions per weight, flash and RAM."""
    from tflite_export.firmware_runner import bench_summary

    rows = []
    for (_, board, table), kv in _bench("mlp.txt").items():
        if table != "derived":
            continue
        s = bench_summary(kv)
        rows.append([board, kv["core"], kv["kernel"], f"{s['insn_per_weight_sample']:.2f}",
                     f"{s['mean_pass_insn_per_weight']:.2f}", _n(s["flash_bytes"]), _n(s["ram_bytes"])])
    return _table(["board", "core", "kernel", "MC insn / weight / sample", "mean pass insn / weight",
                   "firmware flash (bytes)", "runtime RAM (bytes)"], rows)


def mcu_kernels():
    """The constant-weight FULLY_CONNECTED kernel (400 -> 120, whole op) per board, instructions per MAC."""
    rows = [[board, kv["core"], kv["fc_int8_insn_per_mac"], kv["fc_int4_insn_per_mac"]]
            for (name, board, _), kv in _bench("mlp.txt").items() if name == "kbench"]
    return _table(["board", "core", "int8 insn / MAC", "int4 insn / MAC"], rows)


def mcu_packed():
    """The PACKED Bayesian FULLY_CONNECTED op (784 -> 32, one MC sample) per board and pair width, instructions per
    weight and sample (`bench_mcu.py --kernels-only`)."""
    widths = [(3, 1), (4, 4), (5, 3), (2, 1), (3, 2), (4, 2), (4, 3)]
    rows = [[board, kv["core"], kv["packed_kernel"]] + [kv[f"packed_{b}_{sb}_insn_per_weight_sample"] for b, sb in widths]
            for (name, board, _), kv in _bench("packed.txt").items() if name == "kbench"]
    return _table(["board", "core", "kernel"] + [f"{b}+{sb} (p = {b + sb})" for b, sb in widths], rows)


def truth_test():
    """The MI estimators at S = 30 against the S = 1000 truth (`scripts/truth_test.py`'s own table)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("truth_test", os.path.join(os.path.dirname(__file__), "truth_test.py"))
    script = importlib.util.module_from_spec(spec)  # scripts/truth_test.py, next to this file
    spec.loader.exec_module(script)

    return script.table(_json("truth_test", "truth_test.json")["records"]).rstrip("\n")


TABLES = {f.__name__: f for f in (table1, samples_curve, lenet5_aug, lenet5_fast, headline, cheap_modes, cheap_timing,
                                  lowbit_diagnostic, export_memory, export_check, mcu_mlp, mcu_boards, mcu_kernels, mcu_packed,
                                  truth_test)}

MARKER = re.compile(r"^<!-- results: (\w+) -->$", re.M)
README_BLOCK = re.compile(r"(<!-- results: headline -->\n)(.*?)(<!-- /results -->)", re.S)


def expand(markdown):
    """Replaces every `<!-- results: NAME -->` line with the table; an unknown NAME is an error."""
    def sub(m):
        if m.group(1) not in TABLES:
            raise KeyError(f"unknown results table {m.group(1)!r}; known: {sorted(TABLES)}")
        return TABLES[m.group(1)]()
    return MARKER.sub(sub, markdown)


def readme_with_headline(text):
    if not README_BLOCK.search(text):
        raise ValueError("README.md has no '<!-- results: headline -->' ... '<!-- /results -->' block")
    return README_BLOCK.sub(lambda m: m.group(1) + headline() + "\n" + m.group(3), text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("table", nargs="?", choices=sorted(TABLES))
    p.add_argument("--check-readme", action="store_true")
    p.add_argument("--write-readme", action="store_true")
    a = p.parse_args(argv)
    if a.table:
        print(TABLES[a.table]())
    if a.check_readme or a.write_readme:
        with open(README) as f:
            text = f.read()
        new = readme_with_headline(text)
        if a.write_readme and new != text:
            with open(README, "w") as f:
                f.write(new)
        elif a.check_readme and new != text:
            sys.exit("README.md's headline table differs from results/: run `python scripts/results_tables.py "
                     "--write-readme`")
    return 0


if __name__ == "__main__":
    main()
