"""The portable C runtime (tflite_export/micro/qbnn_runtime.c) on the host: its fixed-point parts
against the numpy reference, the derived sampling table against the C sampler core, and the
whole runtime (REF / LUT / SIMD kernels) under ASan + UBSan against reference test vectors."""

import ctypes
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from tflite_export import artifacts, bundle, c_source, reference
from tflite_export.intmath import fixedpoint, sampler, softmax
from tfqbnn.quantizers import LogQuantizer

from mcu_models import exported_jq4, synthetic_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICRO = os.path.join(ROOT, "tflite_export", "micro")
FIRMWARE = os.path.join(ROOT, "tflite_export", "firmware")

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler (cc)")


@pytest.fixture(scope="module")
def clib(tmp_path_factory):
    """Shared library of the runtime's C sources plus a shim exposing qbnn_sample_weight."""
    d = tmp_path_factory.mktemp("clib")
    shim = d / "shim.c"
    shim.write_text(
        '#include "qbnn_sampler.h"\n'
        "void shim_sample_table(const int32_t *sq, int nsq, int32_t max_code, int8_t *out) {\n"
        "  for (uint32_t b = 0; b < 256; ++b) for (uint32_t u = 0; u < 256; ++u) {\n"
        "    int32_t mu = (int32_t)(b & 0xF); if (mu >= 8) mu -= 16;\n"
        "    uint32_t k = b >> 4; if ((int)k >= nsq) k = 0;\n"
        "    out[b << 8 | u] = (int8_t)qbnn_sample_weight(mu, sq[k], u, max_code); } }\n")
    lib = d / "libqbnn.so"
    srcs = [os.path.join(MICRO, f) for f in ("qbnn_fixedpoint.c", "qbnn_sampler.c")]
    subprocess.run(["cc", "-std=c99", "-O1", "-shared", "-fPIC", "-I", MICRO, str(shim), *srcs, "-o", str(lib)],
                   check=True)
    return ctypes.CDLL(str(lib))


@pytest.mark.parametrize("weight_bits,sigma_bits", [(4, 4), (3, 4), (2, 2), (4, 3)])
def test_derived_table_equals_c_sampler_core(clib, weight_bits, sigma_bits):
    sigma_q = sampler.sigma_q_table(LogQuantizer(sigma_bits, 2.0**-10, 1.0), weight_bits).astype(np.int32)
    table = c_source.derived_table(sigma_q, weight_bits)
    out = np.zeros(65536, np.int8)
    clib.shim_sample_table(sigma_q.ctypes.data_as(ctypes.c_void_p), len(sigma_q), 2 ** (weight_bits - 1) - 1,
                           out.ctypes.data_as(ctypes.c_void_p))
    np.testing.assert_array_equal(table, out)
    # the table is not trivial: sampling moves some weights off their mean
    mu = np.repeat(np.arange(256) & 0xF, 256)
    mu = np.where(mu >= 8, mu - 16, mu)
    assert np.mean(table != np.clip(mu, -(2 ** (weight_bits - 1) - 1), 2 ** (weight_bits - 1) - 1)) > 0.001


def test_c_softmax_matches_reference(clib):
    rng = np.random.default_rng(0)
    for _ in range(1500):
        scale = np.float32(rng.uniform(0.005, 0.6))
        x = rng.integers(-128, 128, size=int(rng.integers(2, 12))).astype(np.int8)
        m, ls, dm = softmax.softmax_params(scale)
        out = np.zeros(len(x), np.int8)
        clib.qbnn_softmax_int8(x.ctypes.data_as(ctypes.c_void_p), len(x), ctypes.c_int32(m), ctypes.c_int32(ls),
                               ctypes.c_int32(dm), out.ctypes.data_as(ctypes.c_void_p))
        np.testing.assert_array_equal(out, softmax.softmax_int8(x[None], scale)[0])


def test_c_requantization_matches_reference(clib):
    f = clib.qbnn_multiply_by_quantized_multiplier
    f.restype = ctypes.c_int32
    rng = np.random.default_rng(1)
    for _ in range(3000):
        mult, shift = fixedpoint.quantize_multiplier(float(rng.uniform(1e-5, 1.9)))
        acc = int(rng.integers(-2**20, 2**20))
        assert f(ctypes.c_int32(acc), ctypes.c_int32(mult), ctypes.c_int(shift)) == int(
            fixedpoint.multiply_by_quantized_multiplier(acc, mult, shift))


def _host_run(gen_dir, tmp_path, target="host-test", opt="-O1"):
    build = tmp_path / f"host_build{opt}"  # one per (gen, opt): host-test and host-validate share objects
    cmd = ["make", "-s", "-C", FIRMWARE, f"GEN_DIR={gen_dir}", f"HOST_BUILD={build}", f"HOST_OPT={opt}", target]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def synthetic_gen(tmp_path_factory):
    """Generated C of the synthetic paper-sized MLP with 3 images (no training)."""
    gen = tmp_path_factory.mktemp("synthetic") / "gen"
    model = synthetic_model(seed=0)
    c_source.write_model_sources(model, gen)
    images = np.random.default_rng(0).integers(0, 256, size=(3, 784)).astype(np.uint8)
    c_source.write_test_vectors(model, images, ["a", "b", "c"], gen, num_samples=4)
    return gen


@pytest.mark.parametrize("opt", ["-Os", "-O2", "-O3"])
def test_every_optimisation_level_is_bit_exact_under_asan_ubsan(synthetic_gen, opt):
    r = _host_run(synthetic_gen, synthetic_gen.parent, "host-test", opt)
    assert r.returncode == 0 and "PASSED: 0 mismatches" in r.stdout, r.stdout[-2000:] + r.stderr[-3000:]
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr


VALIDATION_CASES = ["null_rt", "null_model", "null_ops", "null_params", "predict_null_rt", "predict_null_input",
                    "predict_null_result", "forward_null_input", "forward_null_out", "act_min_below_int8",
                    "act_max_above_int8", "act_min_gt_max", "shift_plus_40", "shift_minus_40", "multiplier_negative",
                    "in_zp_overflows_int8", "in_zp_truncated_int16", "in_zp_int_min", "out_zp_overflows",
                    "sigma_code_beyond_table", "mu_code_minus_8", "chain_cols", "classes_mismatch",
                    "softmax_left_shift_40", "softmax_diff_min_positive", "softmax_multiplier_negative", "format_version",
                    "op_kind_unknown", "op_kind_zero", "op_dims_chain", "stream_shared", "stream_beyond_max", "arena_null",
                    "arena_too_small", "arena_misaligned", "bias_beyond_bound", "constant_filter_null",
                    "constant_filter_bits_5", "tensor_too_large", "zero_ops"]


@pytest.mark.parametrize("opt", ["-Os", "-O2", "-O3"])
def test_init_and_predict_refuse_everything_malformed_under_asan_ubsan(synthetic_gen, opt):
    """firmware/validate.c: each malformed model / NULL pointer gets an error code (no crash, no
    sanitizer report, no prediction), and the unmutated model still runs on every kernel."""
    r = _host_run(synthetic_gen, synthetic_gen.parent, "host-validate", opt)
    assert r.returncode == 0 and "VALIDATION PASSED: 0 of" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr
    for kernel in (1, 2, 3):
        assert f"ok valid_model kernel={kernel} code=0" in r.stdout
    assert "ok valid_model_unaligned_copy kernel=3 code=0" in r.stdout  # stored bytes at an odd address
    for case in VALIDATION_CASES:
        assert re.search(rf"^ok {case} code=[1-9]\d*$", r.stdout, re.M), case
    for case in WRAP_CASES:  # refused for their size (QBNN_RT_ERR_LIMITS), not for a side issue
        assert re.search(rf"^ok {case} code={RT_ERR_LIMITS}$", r.stdout, re.M), case


RT_ERR_LIMITS = 20
# models whose size products wrap 32 bits (firmware/validate.c): qbnn_arena_bytes accepted them and predict wrote
# outside the arena
WRAP_CASES = ["wrap_conv_filter_2_47", "wrap_pool_elems_2_32", "wrap_conv_filter_2_32", "wrap_depthwise_filter_2_32",
              "wrap_reshape_pool_2_32", "wrap_conv_operands_2_32"]
SWEEP_SRC = os.path.join(ROOT, "tests", "c", "size_sweep.c")


@pytest.mark.parametrize("opt", ["-O1", "-O3"])
def test_size_products_near_2_16_2_31_2_32_are_refused_or_run_clean_under_asan_ubsan(tmp_path, opt):
    """tests/c/size_sweep.c: every op kind (dense, conv, depthwise, max / average pool, reshape; Bayesian, int8,
    int4) with tensor elements, filter sizes and padded operands near 2^16, 2^31 and 2^32: each model is refused
    by qbnn_init with QBNN_RT_ERR_LIMITS, or runs on arrays of exactly its declared sizes without a sanitizer
    report."""
    srcs = [os.path.join(MICRO, f) for f in bundle.RUNTIME_SOURCES]
    srcs += sorted(os.path.join(MICRO, "ops", f) for f in os.listdir(os.path.join(MICRO, "ops")) if f.endswith(".c"))
    exe = tmp_path / "size_sweep"
    subprocess.run(["cc", "-std=c99", opt, "-g", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all", "-I", MICRO, SWEEP_SRC, *srcs, "-lm", "-o", str(exe)], check=True)
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "SIZE SWEEP PASSED: 0 of" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr
    cases = dict(re.findall(r"^ok (\w+) (ran code=0|refused code=\d+) arena=\d+$", r.stdout, re.M))
    assert len(cases) >= 136
    for kind in ("fc_bayes", "fc_i4", "max_pool", "avg_pool", "reshape", "conv_bayes", "conv_i8", "dw_bayes", "dw_i4"):
        assert cases[f"{kind}_t65536"] == "ran code=0"  # 2^16 elements: the largest tensor runs
        for n in ("t65538", "t2_31", "t2_31p2", "t2_32m", "t2_32", "t2_32p4", "t2_32p4096", "t2_48"):
            assert cases[f"{kind}_{n}"] == f"refused code={RT_ERR_LIMITS}", (kind, n)
    for kind in ("conv_bayes", "conv_i8", "conv_i4", "dw_bayes", "dw_i8", "dw_i4"):
        for n in ("f2_31", "f2_32m", "f2_32p4", "f2_47", "x2_30", "x2_31", "x2_32m"):
            assert cases[f"{kind}_{n}"] == f"refused code={RT_ERR_LIMITS}", (kind, n)
        assert cases[f"{kind}_x3x65535"] == "ran code=0"
    for case in ("max_pool_window_65535", "avg_pool_stride_65535", "conv_i8_stride_65535", "conv_pair_x3x65535"):
        assert cases[case] == "ran code=0"
    assert cases["conv_pair_arena_2_32m"] == f"refused code={RT_ERR_LIMITS}"  # each piece fits, the sum does not



def test_asan_ubsan_host_run_matches_exported_model(tmp_path_factory, tmp_path):
    export_dir = exported_jq4(tmp_path_factory.mktemp("mcu"))
    r = _host_run(os.path.join(export_dir, "c"), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASSED: 0 mismatches" in r.stdout
    for kernel in ("ref", "lut", "simd"):
        assert f"ok image 0 (mnist) kernel={kernel}" in r.stdout
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr


def test_host_run_detects_a_wrong_expected_value(tmp_path):
    gen = tmp_path / "gen"
    model = synthetic_model(seed=3)
    c_source.write_model_sources(model, gen)
    images = np.random.default_rng(0).integers(0, 256, size=(2, 784)).astype(np.uint8)
    exp = c_source.write_test_vectors(model, images, ["a", "b"], gen, num_samples=3)
    src = (gen / "test_vectors.c").read_text()
    first = ", ".join(f"{int(v)}u" for v in exp[0]["sums"])
    bumped = exp[0]["sums"].copy()
    bumped[int(np.argmax(bumped))] += 1
    (gen / "test_vectors.c").write_text(src.replace(first, ", ".join(f"{int(v)}u" for v in bumped), 1))
    r = _host_run(gen, tmp_path)
    assert r.returncode != 0 and "FAIL image 0" in r.stdout


def test_odd_shapes_take_the_bytewise_paths_bit_exactly(tmp_path):
    """C % 4 != 0 and R*C % 4 != 0: streams cross rows and samples mid-word."""
    gen = tmp_path / "gen"
    model = synthetic_model(sizes=(30, 13, 7, 5), seed=5)
    c_source.write_model_sources(model, gen)
    images = np.random.default_rng(2).integers(0, 256, size=(3, 30)).astype(np.uint8)
    exp = c_source.write_test_vectors(model, images, ["r0", "r1", "r2"], gen, num_samples=5)
    assert exp[0]["positions"] == [30 * 13 * 5, 13 * 7 * 5, 7 * 5 * 5]
    r = _host_run(gen, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("ok image") == 3 + 2 * 3


def test_generator_rejects_layouts_the_runtime_cannot_run():
    model = synthetic_model(sizes=(16, 8, 4), seed=1)
    model.layers[0].layout = 0  # I8
    with pytest.raises(ValueError, match="layout I8"):
        c_source.write_model_sources(model, "/nonexistent-never-written")


def test_load_exported_round_trips_the_integer_model(tmp_path_factory):
    export_dir = exported_jq4(tmp_path_factory.mktemp("mcu"))
    m = artifacts.load_exported(export_dir)
    x = np.random.default_rng(0).integers(0, 256, size=(4, 784)).astype(np.uint8)
    codes = m.predict_codes(x, num_samples=3, seed=5)
    assert isinstance(m, reference.IntegerModel) and codes.shape == (3, 4, 10)
    with pytest.raises(ValueError, match="manifest.json"):
        artifacts.load_exported(tmp_path_factory.mktemp("empty"))


def test_operands_below_the_zero_point_are_bit_exact_in_the_pair_kernels(tmp_path):
    """Hidden layers read with zero points 90 and 20, so x - zp is negative for many inputs: the kernels without
    SMLAD (two weights per multiply, host and ARMv6-M) must carry the sign of each half exactly; on the host under
    ASan/UBSan and on the Cortex-M0 (microbit, its assembly loop; at -Os, -O2 runs in test_firmware), against the
    reference."""
    gen = tmp_path / "gen"
    model = synthetic_model(seed=4)
    model.layers[1].input_zero_point, model.layers[2].input_zero_point = 90, 20
    c_source.write_model_sources(model, gen)
    images = np.random.default_rng(5).integers(0, 256, size=(2, 784)).astype(np.uint8)
    c_source.write_test_vectors(model, images, ["n0", "n1"], gen, num_samples=3)
    r = _host_run(gen, tmp_path)
    assert r.returncode == 0 and "PASSED: 0 mismatches" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    assert "ok image 0 (n0) kernel=lut" in r.stdout
    if shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"):
        r = subprocess.run(["make", "-s", "-C", FIRMWARE, "BOARD=microbit", f"GEN_DIR={gen}", f"BUILD={tmp_path / 'm0'}",
                            "OPT=-Os", "run"], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0 and "PASSED: 0 mismatches" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
