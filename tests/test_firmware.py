"""Firmware for QEMU's Cortex-M boards (every board of boards.mk: M0 to M55): build with arm-none-eabi-gcc,
run under qemu-system-arm with semihosting, compare with the numpy reference (the firmware exits
non-zero on any mismatch or fault). .ci/run installs the toolchain, so CI never skips these."""

import os
import re
import subprocess

import pytest

from tflite_export import firmware_runner

from mcu_models import exported_jq4

FIRMWARE = firmware_runner.FIRMWARE_DIR
MISSING = firmware_runner.missing_tools()
BOARDS = sorted(firmware_runner.BOARDS)
TABLE = firmware_runner.BOARD_TABLE
# 2 bytes of .bss linked before the runtime (EXTRA_SRC): moves everything after it off 4-byte
# alignment unless the runtime aligns its buffers itself. A .init_array entry keeps it linked.
PAD_C = """char qbnn_pad[2];
static void qbnn_pad_touch(void) { qbnn_pad[0] = 1; }
void (*const qbnn_pad_keep)(void) __attribute__((section(".init_array"), used)) = qbnn_pad_touch;
"""
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"missing {', '.join(MISSING)} (installed by .ci/run)")


def _make(*args, timeout=300):
    return subprocess.run(["make", "-s", "-C", FIRMWARE, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory):
    return os.path.join(exported_jq4(tmp_path_factory.mktemp("mcu")), "c")


def test_the_boards_come_from_the_table():
    assert {"an385", "an386", "an500", "an505", "an521", "an524", "an547", "netduinoplus2", "microbit"} <= set(BOARDS)
    r = _make("boards")
    assert r.returncode == 0 and [line.split()[0] for line in r.stdout.splitlines()] == BOARDS
    assert [line.split()[1] for line in r.stdout.splitlines()] == [TABLE[b]["MACHINE"] for b in BOARDS]


@pytest.mark.parametrize("board", BOARDS)
def test_board_flags_give_what_the_table_says(board):
    """The gcc flags of a board define exactly the architecture, FPU, DSP and MVE its table entry names."""
    t = TABLE[board]
    r = subprocess.run(["arm-none-eabi-gcc", *t["CPU"].split(), "-dM", "-E", "-x", "c", "/dev/null"],
                       capture_output=True, text=True, check=True)
    macros = dict(re.findall(r"^#define (\w+) ?(.*)$", r.stdout, re.M))
    arch = {"armv6-m": "__ARM_ARCH_6M__", "armv7-m": "__ARM_ARCH_7M__", "armv7e-m": "__ARM_ARCH_7EM__",
            "armv8-m.main": "__ARM_ARCH_8M_MAIN__", "armv8.1-m.main": "__ARM_ARCH_8M_MAIN__"}[t["ARCH"]]  # (GCC 12)
    assert arch in macros
    fp = int(macros.get("__ARM_FP", "0"))
    assert t["FPU"] == ("dp" if fp & 8 else "sp" if fp & 4 else "none")
    assert t["DSP"] == ("yes" if "__ARM_FEATURE_DSP" in macros else "no")
    mve = int(macros.get("__ARM_FEATURE_MVE", "0"))
    assert t["MVE"] == ("float" if mve & 2 else "int" if mve & 1 else "none")
    assert t["CYCLES"] == ("none" if t["ARCH"] == "armv6-m" else "dwt")
    assert re.fullmatch(r"semihosting|(stm32-usart|nrf51-uart)@0x[0-9a-fA-F]{8}", t["CONSOLE"])
    flash, ram = t["FLASH"].split(), t["RAM"].split()
    assert firmware_runner.size_bytes(t["STACK"]) + firmware_runner.size_bytes(t["HEAP"]) < \
        firmware_runner.size_bytes(ram[1]) // 2 and firmware_runner.size_bytes(flash[1]) >= 256 * 1024


def test_unknown_board_is_a_one_line_error_listing_the_boards():
    r = _make("BOARD=an999", "run")
    assert r.returncode != 0
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and "BOARD=an999 is not supported" in err[0] and " ".join(BOARDS) in err[0], r.stderr


@pytest.mark.parametrize("board", BOARDS)
def test_board_runs_exported_model_bit_exact(board, gen_dir, tmp_path):
    r = _make(f"BOARD={board}", f"GEN_DIR={gen_dir}", f"BUILD={tmp_path}", "run")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "PASSED: 0 mismatches" in r.stdout
    # the output came through the board's console: a UART driver (newlib's _write) or semihosting (rdimon)
    nm = subprocess.run(["arm-none-eabi-nm", os.path.join(tmp_path, "qbnn_test.elf")], capture_output=True,
                        text=True, check=True).stdout
    uart = TABLE[board]["CONSOLE"] != "semihosting"
    assert (" T _write\n" in nm) == uart and ("initialise_monitor_handles" in nm) == (not uart)
    for src in ("mnist", "fashion"):
        assert f"({src}) kernel=auto" in r.stdout
    assert "ambiguous" in r.stdout
    for kernel in ("ref", "lut", "simd"):  # all kernels agree on the board too
        assert f"ok image 1 (mnist) kernel={kernel}" in r.stdout
    # SPEC 11 on every image: HYBRID bit-exact, PFP floats identical to the numpy float32 mirror (M3: soft float),
    # the mean-code pass exact (checked with every MC line); the hybrid's sampled tail on every kernel
    modes = re.findall(r"^ok modes image \d+ \(\S+\) kernel=(\w+) hybrid=ok .* pfp=ok .* max\|diff\|=(\d+) \(1e-9\)$",
                       r.stdout, re.M)
    assert len(modes) == 9 + 3 and {k for k, _ in modes} == {"auto", "ref", "lut", "simd"}, r.stdout[-3000:]
    assert all(int(d) == 0 for _, d in modes)
    # SPEC 7.1: the jackknife correction bit-identical to the reference's float32 in every mode and kernel
    jk = re.findall(r"^ok jackknife image \d+ mode=(\w+) kernel=(\w+) correction=(-?\d+) expected=\3 ", r.stdout, re.M)
    assert {(m, k) for m, k, _ in jk} == {(m, k) for m in ("mc", "hybrid", "pfp") for k in ("auto", "ref", "lut", "simd")}
    assert "FAIL jackknife" not in r.stdout


def _vectors(elf, tmp_path):
    """First 16 words of the vector table and the symbol table of an ELF."""
    nm = subprocess.run(["arm-none-eabi-nm", elf], capture_output=True, text=True, check=True).stdout
    syms = {name: int(addr, 16) for addr, _, name in (line.split() for line in nm.splitlines()
                                                       if len(line.split()) == 3)}
    binary = tmp_path / "vectors.bin"
    subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", "-j", ".text", elf, str(binary)], check=True)
    data = binary.read_bytes()
    return [int.from_bytes(data[4 * i:4 * i + 4], "little") for i in range(16)], syms


@pytest.mark.parametrize("board", BOARDS)
def test_exit_codes_counter_vectors_and_faults_reach_the_shell(board, tmp_path):
    r = _make(f"BOARD={board}", f"BUILD={tmp_path}", "HELLO_EXIT=7", "hello")
    assert r.returncode != 0 and "Error 7" in r.stderr, r.stdout + r.stderr
    # a loop of exactly 200,000 instructions (SUBS + BNE) measured through the board's SysTick clock:
    # within one tick (<= 50 instructions) plus the counter's own call overhead
    m = re.search(r"known loop: 200000 instructions measured (\d+) \(SysTick (\d+) Hz\)", r.stdout)
    assert m and int(m.group(2)) == int(TABLE[board]["SYSTICK_HZ"]), r.stdout
    assert 0 <= int(m.group(1)) - 200_000 <= 150, r.stdout
    # no vector is 0: NMI .. SecureFault (2..7) point at the reporting fault handler
    words, syms = _vectors(os.path.join(tmp_path, "hello.elf"), tmp_path)
    assert words[1] == syms["Reset_Handler"] | 1
    assert words[2:8] == [syms["Fault_Handler"] | 1] * 6, [hex(w) for w in words[:8]]
    for fault in ("1", "2"):  # bus fault on an unmapped write; UNALIGNED UsageFault from LDRD (ARMv6-M: LDR)
        r = _make(f"BOARD={board}", f"BUILD={tmp_path}", f"FORCE_FAULT={fault}", "hello")
        assert "FAULT: exception 0x00000003" in r.stdout + r.stderr and "Error 3" in r.stderr, r.stdout + r.stderr
    if TABLE[board]["ARCH"] != "armv6-m":  # ARMv6-M has no CFSR: every fault is a HardFault
        assert "CFSR=0x01000000" in r.stdout + r.stderr  # UNALIGNED


def test_every_build_depends_on_its_make_variables(gen_dir, tmp_path):
    """A new SAMPLES= must rebuild, not reuse the last build (the flags stamp covers every variable)."""
    for samples in (2, 3):
        r = _make("BOARD=an386", f"GEN_DIR={gen_dir}", f"BUILD={tmp_path}", f"SAMPLES={samples}", "bench")
        assert r.returncode == 0 and f"samples={samples}" in r.stdout.splitlines(), r.stdout + r.stderr
    assert f"SAMPLES=3 " in (tmp_path / "flags.stamp").read_text()


@pytest.mark.parametrize("board,opt", [("an386", "-Os"), ("an386", "-O3"), ("an547", "-Os"), ("an547", "-O3"),
                                       ("an505", "-Os")])
def test_optimisation_levels_are_bit_exact_with_the_runtime_data_misaligned(board, opt, gen_dir, tmp_path):
    """-Os places int16 arrays on 2-byte boundaries; with 2 bytes of .bss linked before the runtime
    the SIMD kernel's LDRD faulted (UNALIGNED) unless the runtime aligns its buffers."""
    pad = tmp_path / "pad.c"
    pad.write_text(PAD_C)
    r = _make(f"BOARD={board}", f"GEN_DIR={gen_dir}", f"BUILD={tmp_path}", f"OPT={opt}", f"EXTRA_SRC={pad}", "run")
    assert r.returncode == 0 and "PASSED: 0 mismatches" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    nm = subprocess.run(["arm-none-eabi-nm", os.path.join(tmp_path, "qbnn_test.elf")], capture_output=True, text=True,
                        check=True).stdout
    assert re.search(r"^[0-9a-f]+ B qbnn_pad$", nm, re.M)  # the pad is linked
    # entropies in float: no soft-double helper is linked
    assert not re.findall(r"__aeabi_d\w+", nm), re.findall(r"__aeabi_d\w+", nm)


@pytest.mark.parametrize("board", ["an386", "an505"])
def test_runtime_validation_on_the_board(board, gen_dir, tmp_path):
    """NULL input/result/rt and malformed models give error codes on the target too (a NULL input
    used to return QBNN_OK with a prediction computed from the vector table)."""
    r = _make(f"BOARD={board}", f"GEN_DIR={gen_dir}", f"BUILD={tmp_path}", "validate")
    assert r.returncode == 0 and "VALIDATION PASSED: 0 of" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
    assert "ok predict_null_input code=1" in r.stdout
    # models whose size products wrap 32 bits: refused for their size (QBNN_RT_ERR_LIMITS = 20) on the target too
    for case in ("wrap_conv_filter_2_47", "wrap_pool_elems_2_32", "wrap_conv_filter_2_32", "wrap_depthwise_filter_2_32",
                 "wrap_reshape_pool_2_32", "wrap_conv_operands_2_32"):
        assert f"ok {case} code=20" in r.stdout, case


def test_bench_m4f_meets_the_paper_mlp_targets(gen_dir, tmp_path):
    """<= 6 instructions per weight per MC sample on the M4F (SIMD kernel; 5.94 measured)."""
    r = _make("BOARD=an386", f"GEN_DIR={gen_dir}", f"BUILD={tmp_path}", "SAMPLES=10", "bench")
    assert r.returncode == 0, r.stdout + r.stderr
    kv = firmware_runner.parse_bench(r.stdout)
    assert kv["kernel"] == "simd" and int(kv["weights"]) == 784 * 100 + 100 * 100 + 100 * 10
    # exact instruction counts (QEMU -icount), deterministic: the targets
    # exact ratio, not the printed 2-decimal truncation (5.996 measured with S = 10)
    assert int(kv["insn_per_sample"]) / int(kv["weights"]) <= 6.0
    summary = firmware_runner.bench_summary(kv)  # bench_mcu.py's table row
    assert 5.0 < summary["insn_per_weight_sample"] <= 6.0 and 2.0 < summary["mean_pass_insn_per_weight"] <= 4.0
    assert summary["flash_bytes"] == int(kv["flash_bytes"]) and "an386" in firmware_runner.format_summary({"an386": summary})
    assert int(kv["insn_per_sample"]) <= 720_000
    assert int(kv["param_bytes"]) <= 100_000
    assert int(kv["runtime_ram_bytes"]) <= 8 * 1024
    assert int(kv["runtime_stack_bytes"]) > 0
    assert 0 < int(kv["flash_bytes"]) <= 256 * 1024
    # issue 13 (S = 30): hybrid <= 3.0M instructions, PFP <= 3x the mean-code pass, MC unchanged
    assert int(kv["mode_samples"]) == 30
    assert int(kv["mode=mc insn_per_inference"]) <= 30 * 6 * int(kv["weights"]) + 100_000
    assert int(kv["mode=hybrid insn_per_inference"]) <= 3_000_000
    assert int(kv["mode=pfp insn_per_inference"]) <= 3 * int(kv["insn_deterministic_pass"])


def test_bench_m0_two_weights_per_multiply(gen_dir, tmp_path):
    """Cortex-M0 (ARMv6-M: no SMLAD, no 32 x 32 -> 64 multiply): the MC pass two weights per MULS in an assembly
    loop of 32 instructions per 4 weights (16.83 insn/weight/sample with the C LUT loop), the mean pass from the
    stored nibbles (54.7 insn/weight through the filter row); RAM within the part's 16 KB, the stack within the
    board's 1,536 B (the jackknife's group sums are in the arena)."""
    r = _make("BOARD=microbit", f"GEN_DIR={gen_dir}", f"BUILD={tmp_path}", "SAMPLES=10", "bench")
    assert r.returncode == 0, r.stdout + r.stderr
    kv = firmware_runner.parse_bench(r.stdout)
    assert int(kv["runtime_stack_bytes"]) <= 1024 and int(kv["modes_stack_bytes"]) <= 1024, kv
    summary = firmware_runner.bench_summary(kv)
    assert 8.0 < summary["insn_per_weight_sample"] <= 9.0, summary
    assert summary["mean_pass_insn_per_weight"] <= 6.0, summary
    assert summary["ram_bytes"] <= 8 * 1024 and summary["flash_bytes"] <= 256 * 1024, summary


def test_bench_m55_helium_kernel(gen_dir, tmp_path):
    """Cortex-M55: the MC pass through Helium (16 weights per 25 instructions: table gathers and VMLADAVA, the
    serial xorshift words in scalar registers), <= 3 insn/weight/sample (1.81 measured at S = 10; 5.94 on the DSP
    path)."""
    r = _make("BOARD=an547", f"GEN_DIR={gen_dir}", f"BUILD={tmp_path}", "SAMPLES=10", "bench")
    assert r.returncode == 0, r.stdout + r.stderr
    summary = firmware_runner.bench_summary(firmware_runner.parse_bench(r.stdout))
    assert 1.0 < summary["insn_per_weight_sample"] <= 3.0, summary


@pytest.mark.parametrize("board", ["an385", "an386", "an547"])
def test_dense_kernel_bench_is_bit_exact(board, tmp_path):
    """The kernel bench (no model): the constant-weight FULLY_CONNECTED op (400 -> 120, int8 and int4 codes) with the
    SIMD kernel equals the reference kernel and a plain dot product; on the M4F <= 2 insn/MAC (SXTB16 / nibble
    masks and SMLAD, 1.77 int8 and 1.83 int4 measured). The PACKED Bayesian op (784 -> 32) at every pair width
    equals REF, the other table kernel and the sampler core; on the M4F pairs of 4 and 8 bits take <= 6.5
    instructions per weight and sample (5.50 at 3+1, 5.82 at 4+4 and 5+3 measured)."""
    r = _make(f"BOARD={board}", f"BUILD={tmp_path}", "kbench")
    assert r.returncode == 0 and "KBENCH PASSED" in r.stdout, r.stdout + r.stderr
    kv = firmware_runner.parse_bench(r.stdout)
    for bits in (8, 4):
        assert int(kv[f"fc_int{bits}_mismatches"]) == 0 and int(kv[f"fc_int{bits}_macs"]) == 400 * 120
        if board == "an386":
            assert int(kv[f"fc_int{bits}_insn"]) <= 2 * 400 * 120, kv
    for b, sb in [(3, 1), (4, 4), (5, 3), (2, 1), (3, 2), (4, 2), (4, 3)]:
        assert int(kv[f"packed_{b}_{sb}_mismatches"]) == 0 and int(kv[f"packed_{b}_{sb}_weights"]) == 784 * 32
        if board == "an386" and b + sb in (4, 8):
            assert int(kv[f"packed_{b}_{sb}_insn"]) <= 6.5 * 784 * 32, kv


def test_link_budget_failure_stops_the_build(gen_dir, tmp_path):
    r = _make("BOARD=an386", f"GEN_DIR={gen_dir}", f"BUILD={tmp_path}", "FLASH_BUDGET=96K", "all")
    assert r.returncode != 0
    assert "flash budget exceeded" in r.stderr + r.stdout


def test_run_on_qemu_reports_uncertainty_for_three_kinds_of_image(tmp_path_factory, tmp_path):
    export_dir = exported_jq4(tmp_path_factory.mktemp("mcu"))
    from tfqbnn.datasets.test_images import sample_test_images

    images, sources = sample_test_images(per_set=1)
    res = firmware_runner.run_on_qemu(export_dir, board="an386", images=images, sources=sources, num_samples=4,
                                      work_dir=str(tmp_path), verbose=False)
    assert [r["source"].split("-")[0] for r in res] == ["mnist", "ambiguous", "fashion"]
    assert all(r["ok"] and r["prediction"] == r["expected_prediction"] for r in res)
    for r in res:
        assert r["predictive_entropy"] >= r["expected_entropy"] - 1e-6
        assert abs(r["mutual_information"] - (r["predictive_entropy"] - r["expected_entropy"])) < 3e-6
