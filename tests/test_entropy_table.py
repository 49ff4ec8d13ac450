"""The C runtime's per-sample entropy (a Q20 table of n ln n, one logf per sample) against SPEC 7's float64 formula,
and the generated table header against its generator."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tflite_export import bundle
from tflite_export.intmath import entropy

ROOT = Path(__file__).resolve().parents[1]
MICRO = ROOT / "tflite_export" / "micro"


def _spec_entropy(codes):
    p = np.asarray(codes, np.float64) + 128.0
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum())


def test_header_is_current_and_the_table_is_n_ln_n():
    assert entropy.main(["--check"]) == 0, "run python -m tflite_export.intmath.entropy"
    t = entropy.table()
    assert t[0] == t[1] == 0 and t.dtype == np.int32
    assert abs(t[255] / 2.0**20 - 255 * np.log(255)) <= 2.0**-21


def test_c_sample_entropy_within_spec_tolerance(tmp_path):
    if shutil.which("gcc") is None:
        pytest.skip("gcc not available")
    exe = tmp_path / "entropy_check"
    sources = [str(MICRO / n) for n in bundle.RUNTIME_SOURCES] + [str(p) for p in sorted((MICRO / "ops").glob("*.c"))]
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Werror", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all", "-I", str(MICRO), str(ROOT / "tests" / "c" / "entropy_check.c"),
                    *sources, "-lm", "-o", str(exe)], check=True)
    rng = np.random.default_rng(0)
    cases = [np.full(10, -128), np.r_[127, np.full(9, -128)], np.full(10, -103), np.full(256, 127), [0], [-128]]
    for nc in (2, 3, 10, 100, 256):
        for _ in range(40):  # softmax-like: codes summing to about 256, and arbitrary codes
            p = rng.dirichlet(np.full(nc, rng.choice([0.05, 1.0, 20.0])))
            cases.append(np.clip(np.round(p * 256) - 128, -128, 127))
            cases.append(rng.integers(-128, 128, nc))
    text = "".join(f"{len(c)} {' '.join(str(int(v)) for v in c)}\n" for c in cases)
    out = subprocess.run([str(exe)], input=text, capture_output=True, text=True, check=True).stdout.split()
    got = np.array([float(v) for v in out])
    want = np.array([_spec_entropy(c) for c in cases])
    assert len(got) == len(cases)
    assert np.max(np.abs(got - want)) < 1e-5, np.max(np.abs(got - want))
    assert got[0] == got[1] == 0.0 and got[5] == 0.0  # no class, one class: exactly 0
