"""Firmware for QEMU's mps2 boards (M3 / M4F / M7): build with arm-none-eabi-gcc, run under
qemu-system-arm with semihosting, compare with the numpy reference (the firmware exits non-zero on
any mismatch or fault). .ci/run installs the toolchain, so CI never skips these."""

import os
import subprocess

import pytest

from tflite_export import firmware_runner

from mcu_models import exported_jq4

FIRMWARE = firmware_runner.FIRMWARE_DIR
MISSING = firmware_runner.missing_tools()
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"missing {', '.join(MISSING)} (installed by .ci/run)")


def _make(*args, timeout=300):
    return subprocess.run(["make", "-s", "-C", FIRMWARE, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory):
    return os.path.join(exported_jq4(tmp_path_factory.mktemp("mcu")), "c")


@pytest.mark.parametrize("board", ["an385", "an386", "an500"])
def test_board_runs_exported_model_bit_exact(board, gen_dir, tmp_path):
    r = _make(f"BOARD={board}", f"GEN_DIR={gen_dir}", f"BUILD={tmp_path}", "run")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "PASSED: 0 mismatches" in r.stdout
    for src in ("mnist", "fashion"):
        assert f"({src}) kernel=auto" in r.stdout
    assert "ambiguous" in r.stdout
    for kernel in ("ref", "lut", "simd"):  # all kernels agree on the board too
        assert f"ok image 1 (mnist) kernel={kernel}" in r.stdout


@pytest.mark.parametrize("board", ["an385", "an386", "an500"])
def test_exit_codes_and_hardfault_reach_the_shell(board, tmp_path):
    r = _make(f"BOARD={board}", f"BUILD={tmp_path}", "HELLO_EXIT=7", "hello")
    assert r.returncode != 0 and "Error 7" in r.stderr, r.stdout + r.stderr
    assert f"hello from {board}: loop of 100000 took 600000 instructions" in r.stdout  # exact counter
    r = _make(f"BOARD={board}", f"BUILD={tmp_path}", "FORCE_FAULT=1", "hello")
    assert "FAULT: exception 0x00000003" in r.stdout + r.stderr and "Error 3" in r.stderr, r.stdout + r.stderr


def test_bench_m4f_meets_the_paper_mlp_targets(gen_dir, tmp_path):
    r = _make("BOARD=an386", f"GEN_DIR={gen_dir}", f"BUILD={tmp_path}", "SAMPLES=4", "bench")
    assert r.returncode == 0, r.stdout + r.stderr
    kv = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    assert kv["kernel"] == "simd" and int(kv["weights"]) == 784 * 100 + 100 * 100 + 100 * 10
    # exact instruction counts (QEMU -icount), deterministic: the targets
    assert float(kv["insn_per_weight_sample"]) <= 8.0
    assert int(kv["insn_per_sample"]) <= 720_000
    assert int(kv["param_bytes"]) <= 100_000
    assert int(kv["runtime_ram_bytes"]) <= 8 * 1024
    assert int(kv["runtime_stack_bytes"]) > 0
    assert 0 < int(kv["flash_bytes"]) <= 256 * 1024


def test_link_budget_failure_stops_the_build(gen_dir, tmp_path):
    r = _make("BOARD=an386", f"GEN_DIR={gen_dir}", f"BUILD={tmp_path}", "FLASH_BUDGET=96K", "all")
    assert r.returncode != 0
    assert "flash budget exceeded" in r.stderr + r.stdout


def test_run_on_qemu_reports_uncertainty_for_three_kinds_of_image(tmp_path_factory, tmp_path):
    export_dir = exported_jq4(tmp_path_factory.mktemp("mcu"))
    res = firmware_runner.run_on_qemu(export_dir, board="an386", num_samples=4, work_dir=str(tmp_path), verbose=False)
    assert [r["source"].split("-")[0] for r in res] == ["mnist", "ambiguous", "fashion"]
    assert all(r["ok"] and r["prediction"] == r["expected_prediction"] for r in res)
    for r in res:
        assert r["predictive_entropy"] >= r["expected_entropy"] - 1e-6
        assert abs(r["mutual_information"] - (r["predictive_entropy"] - r["expected_entropy"])) < 3e-6
