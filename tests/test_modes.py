"""SPEC.md section 11 (issue 13, integer side): exact code moments, the hybrid and PFP modes of the numpy
reference (tflite_export/modes.py) against Monte-Carlo estimates, and the C runtime (micro/qbnn_modes.c) against
the reference on the host under ASan/UBSan (hybrid bit-exact, PFP within 1e-6, mode argument validated)."""

import ctypes
import math
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from tflite_export import c_source, modes, reference, statistics, storage
from tflite_export.intmath import float32, sampler
from tfqbnn.quantizers import LogQuantizer

from mcu_models import synthetic_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICRO = os.path.join(ROOT, "tflite_export", "micro")
FIRMWARE = os.path.join(ROOT, "tflite_export", "firmware")
HAVE_CC = shutil.which("cc") is not None
N_MC = 100_000


def _sigma_q(weight_bits, sigma_bits):
    return sampler.sigma_q_table(LogQuantizer(sigma_bits, 2.0**-10, 1.0), weight_bits)


@pytest.fixture(scope="module")
def core(tmp_path_factory):
    """The C sampler core with a shim that enumerates qbnn_sample_weight over the 256 stream bytes."""
    d = tmp_path_factory.mktemp("core")
    shim = d / "shim.c"
    shim.write_text(
        '#include "qbnn_sampler.h"\n'
        "void shim_moments(const int32_t *sq, int nsq, int32_t max_code, int64_t *out) {\n"
        "  for (int mu = -max_code; mu <= max_code; ++mu) for (int k = 0; k < nsq; ++k) {\n"
        "    int64_t s1 = 0, s2 = 0;\n"
        "    for (uint32_t u = 0; u < 256; ++u) { int64_t w = qbnn_sample_weight(mu, sq[k], u, max_code);\n"
        "      s1 += w; s2 += w * w; }\n"
        "    int64_t *o = out + 2 * ((mu + max_code) * nsq + k); o[0] = s1; o[1] = 256 * s2 - s1 * s1; } }\n")
    lib = d / "libcore.so"
    subprocess.run(["cc", "-std=c99", "-O1", "-shared", "-fPIC", "-I", MICRO, str(shim),
                    os.path.join(MICRO, "qbnn_sampler.c"), "-o", str(lib)], check=True)
    return ctypes.CDLL(str(lib))


@pytest.mark.skipif(not HAVE_CC, reason="no host C compiler (cc)")
@pytest.mark.parametrize("weight_bits,sigma_bits", [(4, 4), (3, 4), (2, 2), (4, 3), (8, 8)])
def test_code_moments_equal_the_c_sampler_cores_enumeration(core, weight_bits, sigma_bits):
    sq = _sigma_q(weight_bits, sigma_bits).astype(np.int32)
    m = 2 ** (weight_bits - 1) - 1
    out = np.zeros((2 * m + 1, len(sq), 2), np.int64)
    core.shim_moments(sq.ctypes.data_as(ctypes.c_void_p), len(sq), m, out.ctypes.data_as(ctypes.c_void_p))
    mu, k = np.meshgrid(np.arange(-m, m + 1), np.arange(len(sq)), indexing="ij")
    s1, v = modes.code_moments(mu, k, sq, weight_bits)
    np.testing.assert_array_equal(s1, out[..., 0])
    np.testing.assert_array_equal(v, out[..., 1])
    # and with exact rationals from the formula: E = S1/256, Var = V/65536
    from fractions import Fraction
    for mu_i, k_i in [(0, len(sq) - 1), (m, len(sq) // 2), (-m + 1, 1)]:
        w = [int(sampler.sample_codes(mu_i, k_i, sq, u, weight_bits)) for u in range(256)]
        e = Fraction(sum(w), 256)
        var = Fraction(sum(x * x for x in w), 256) - e * e
        i = (mu_i + m, k_i)
        assert Fraction(int(s1[i]), 256) == e and Fraction(int(v[i]), 65536) == var
    assert v.max() > 0  # sampling moves codes
    if weight_bits == 4 and sigma_bits == 4:  # the C runtime's per-byte table holds the same numbers
        table = modes.moment_table(sq, weight_bits)
        byte = (mu & 0xF) | (k << 4)
        np.testing.assert_array_equal(table[byte.ravel(), 0], s1.ravel())
        np.testing.assert_array_equal(table[byte.ravel(), 1], v.ravel())


def test_packed_moment_tables_are_indexed_by_the_pair():
    """For every PACKED width, entry v of the 2^p-entry table holds the code moments of pair v's (mu, sigma code)
    (mu field two's complement, sigma code above it, SPEC 2); at 4 + 4 bits it is the I4_FUSED byte table."""
    for b in range(2, 8):
        for sb in range(1, 9 - b):
            sq = _sigma_q(b, sb)
            table = modes.moment_table(sq, b, storage.LAYOUT_PACKED, sb)
            assert table.shape == (2 ** (b + sb), 2) and table.dtype == np.int32
            m = 2 ** (b - 1) - 1
            mu, k = np.meshgrid(np.arange(-m, m + 1), np.arange(2**sb), indexing="ij")
            s1, v = modes.code_moments(mu, k, sq, b)
            pairs = storage.pair_values(mu.ravel(), k.ravel(), b)
            np.testing.assert_array_equal(table[pairs], np.stack([s1.ravel(), v.ravel()], 1))
    sq = _sigma_q(4, 4)
    np.testing.assert_array_equal(modes.moment_table(sq, 4, storage.LAYOUT_PACKED, 4), modes.moment_table(sq, 4))
    with pytest.raises(ValueError, match="weight_bits \\+ sigma_bits <= 8"):
        modes.moment_table(_sigma_q(5, 4), 5, storage.LAYOUT_PACKED, 4)
    with pytest.raises(ValueError, match="I8 has no table index"):
        modes.moment_table(sq, 4, storage.LAYOUT_I8)


@pytest.mark.parametrize("weight_bits,sigma_bits", [(4, 4), (3, 3)])
def test_code_moments_match_1e5_draws_of_the_integer_sampler(weight_bits, sigma_bits):
    """Every (mu, sigma code): mean and variance of 10^5 sampled codes (bytes from a real layer stream) within
    5 standard errors of S1/256 and V/65536."""
    sq = _sigma_q(weight_bits, sigma_bits)
    m = 2 ** (weight_bits - 1) - 1
    u = sampler.ByteStream(12345, 0).take(N_MC)
    worst = 0.0
    for mu in range(-m, m + 1):
        for k in range(len(sq)):
            w = sampler.sample_codes(mu, k, sq, u, weight_bits).astype(np.float64)
            s1, v = modes.code_moments(mu, k, sq, weight_bits)
            e, var = s1 / 256, v / 65536
            if var == 0:
                assert np.all(w == e)
                continue
            z_mean = abs(w.mean() - e) / math.sqrt(var / N_MC)
            m4 = np.mean((w - e) ** 4)
            z_var = abs(w.var() - var) / math.sqrt(max(m4 - var**2, 1e-12) / N_MC)
            worst = max(worst, z_mean, z_var)
    assert worst < 5.0, worst


def _mnist_like_input(n=1, seed=0):
    """uint8 images with a dark background (as MNIST): about 20 % nonzero pixels."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 784)).astype(np.uint8)
    x[rng.random((n, 784)) < 0.8] = 0
    return x


def test_hybrid_preactivation_moments_match_1e5_mc_samples_of_the_integer_layer():
    """First layer of a JQ-4 model, one input: E[acc] = A1/256 and Var[acc] = A2/65536 against 10^5 MC samples
    of the integer layer (weights drawn with the sampler from uniform bytes, 4 units); the hybrid's own draws
    (Gaussian generator with the variance gain) have the same mean and variance within 5 standard errors."""
    model = synthetic_model(seed=2)
    layer = model.layers[0]
    q = model.quantize_input(_mnist_like_input())
    x = q[0].astype(np.int64) - layer.input_zero_point
    nz = np.flatnonzero(x)
    a1, a2 = modes.first_layer_sums(layer, q)
    rng = np.random.default_rng(7)
    sd8 = modes.isqrt_round(a2)
    for r in (0, 17, 42, 99):
        mean, var = a1[0, r] / 256, a2[0, r] / 65536
        acc = np.zeros(N_MC)
        for c in nz:  # weights of unit r at the nonzero inputs, 10^5 draws each
            u = rng.integers(0, 256, N_MC)
            w = sampler.sample_codes(layer.mu_codes[r, c], layer.sigma_codes[r, c], layer.sigma_q, u, 4)
            acc += w.astype(np.float64) * x[c]
        se = math.sqrt(var / N_MC)
        assert abs(acc.mean() - mean) < 5 * se, (r, acc.mean(), mean)
        assert abs(acc.var() / var - 1) < 5 * math.sqrt(2 / N_MC) + 0.002, (r, acc.var(), var)
        # the hybrid's draws: rounding adds 1/12 to the variance
        h = modes.hybrid_accumulators(np.full(N_MC, a1[0, r]), np.full(N_MC, sd8[0, r]),
                                      rng.integers(0, 256, N_MC)).astype(np.float64)
        assert abs(h.mean() - mean) < 5 * se + 0.01, (r, h.mean(), mean)
        assert abs(h.var() / (var + 1 / 12) - 1) < 5 * math.sqrt(2 / N_MC) + 0.002, (r, h.var(), var)


def test_hybrid_z_gain_gives_unit_variance_and_isqrt_rounds():
    z = sampler.EPS_Q.astype(np.float64) * modes.Z_GAIN / 2.0 ** (modes.Z_GAIN_BITS + sampler.EPS_FRAC_BITS)
    assert abs(np.mean(z)) < 1e-12 and abs(np.var(z) - 1) < 1e-4
    a = np.array([0, 1, 2, 3, 6, 7, 12, 13, 2**47 + 12345, (2**24 - 1) ** 2 + 2**24 - 1], np.int64)
    expect = [int(math.floor(math.sqrt(int(v)) + 0.5)) if int(v) < 2**40 else None for v in a]
    got = modes.isqrt_round(a)
    for v, g, e in zip(a, got, expect):
        r = math.isqrt(int(v))
        assert int(g) == r + (int(v) - r * r > r)
        if e is not None:
            assert int(g) == e


def test_hybrid_with_zero_variance_equals_the_mean_pass():
    """Every sigma at the smallest level (sampling never moves a code): the hybrid's accumulators are the exact
    mean-code accumulators, so every sample gives the mean pass's softmax codes."""
    model = synthetic_model(sizes=(64, 12, 8, 5), seed=4)
    for layer in model.layers:
        layer.sigma_codes[:] = 0
    x = _mnist_like_input(3, seed=1)[:, :64]
    codes = modes.hybrid_predict_codes(model, x, num_samples=4, seed=3)
    mean = modes.forward_mean_codes(model, x)
    assert np.all(codes == mean[None])
    assert np.array_equal(model.predict_codes(x, num_samples=2, seed=3)[0], mean)


def test_float32_helpers_are_accurate():
    xs = np.linspace(-40, 40, 200001).astype(np.float32)
    assert np.max(np.abs(modes.qsoftplus(xs) - np.logaddexp(0, xs.astype(np.float64)))) < 1e-6
    xe = -np.linspace(0, 87, 100001).astype(np.float32)
    assert np.max(np.abs(float32.qexp_neg(xe) / np.exp(xe.astype(np.float64)) - 1)) < 5e-7
    ps = (np.float32(10.0) ** np.linspace(-37, 0, 10001)).astype(np.float32)
    ref = np.log(ps.astype(np.float64))
    assert np.max(np.abs(float32.qlog(ps) - ref) / np.maximum(1.0, np.abs(ref))) < 3e-7
    a = np.linspace(-6, 6, 2001).astype(np.float32)
    from statistics import NormalDist
    phi = np.array([NormalDist().cdf(float(v)) for v in a])
    cdf, ccdf, _ = modes.qphi_cdf(a)
    assert np.max(np.abs(cdf - phi)) < 3e-7 and np.max(np.abs(ccdf - (1 - phi))) < 3e-7


def test_pfp_activation_moments_against_float64_quadrature():
    """SoftPlus by pruned Gauss-Hermite (10 / 14 / 22 nodes): against tfqbnn.moments (float64, GH + Laguerre); ReLU
    closed form against the float64 closed form."""
    from tfqbnn import moments

    m = np.linspace(-6, 6, 49)
    for sd, tol_m, tol_v in ((0.1, 1e-6, 1e-6), (0.8, 1e-6, 1e-6), (1.5, 1e-6, 2e-6), (3.0, 2e-5, 2e-4)):
        got_m, got_v = modes.softplus_moments_f32(m, np.full_like(m, sd * sd))
        ref_m, ref_v = moments.softplus_moments(m, np.full_like(m, sd * sd))
        assert np.max(np.abs(got_m - ref_m)) < tol_m, sd
        assert np.max(np.abs(got_v - ref_v)) < tol_v, sd
        got_m, got_v = modes.relu_moments_f32(m, np.full_like(m, sd * sd))
        ref_m, ref_v = moments.relu_moments(m, np.full_like(m, sd * sd))
        assert np.max(np.abs(got_m - ref_m)) < 2e-6 * max(1.0, sd) and np.max(np.abs(got_v - ref_v)) < 2e-6 * sd * sd


def test_pfp_first_layer_moments_are_the_exact_accumulator_moments():
    model = synthetic_model(sizes=(64, 10), seed=6)
    x = _mnist_like_input(2, seed=3)[:, :64]
    m, v = modes.pfp_logit_moments(model, x)
    a1, a2 = modes.first_layer_sums(model.layers[0], model.quantize_input(x))
    s = float(np.float32(1) / np.float32(255)) * float(np.float32(1) / np.float32(7))
    np.testing.assert_allclose(m, a1 / 256 * s, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(v, a2 / 65536 * s * s, rtol=1e-6)


def test_predict_rejects_an_unknown_mode_and_non_dense_models():
    model = synthetic_model(sizes=(16, 8, 4), seed=1)
    with pytest.raises(ValueError, match="mode='mcmc'"):
        modes.predict(model, np.zeros((1, 16), np.uint8), mode="mcmc")
    from tflite_export.ir.reshape import Reshape

    # a deterministic op before the first Bayesian one is a prefix: the hybrid and PFP run it once
    prefixed = reference.IntegerModel([Reshape(name="r", shape=(16,))] + model.layers, input_shape=(16,),
                                      default_seed=model.default_seed)
    x = np.random.default_rng(2).integers(0, 256, size=(3, 16)).astype(np.uint8)
    np.testing.assert_array_equal(modes.hybrid_predict_codes(prefixed, x, 3, seed=4),
                                  modes.hybrid_predict_codes(model, x, 3, seed=4))
    a, b = modes.pfp_uncertainty(prefixed, x, 2, seed=4), modes.pfp_uncertainty(model, x, 2, seed=4)
    np.testing.assert_array_equal(a["mean_prob"], b["mean_prob"])
    # PFP needs every op from the first Bayesian one to be a Bayesian dense layer
    broken = reference.IntegerModel([model.layers[0], Reshape(name="r2", shape=(8,))] + model.layers[1:],
                                    input_shape=(16,), default_seed=model.default_seed)
    with pytest.raises(ValueError, match="pfp: op 1 \\(RESHAPE 'r2'\\)"):
        modes.pfp_uncertainty(broken, x, 2)
    # the first Bayesian op must be a dense layer
    from mcu_models import synthetic_conv_model

    with pytest.raises(ValueError, match="CONV_2D 'conv1'.* not a bias-free dense"):
        modes.hybrid_predict_codes(synthetic_conv_model(seed=0), np.zeros((1, 784), np.uint8), 1)


# ---- C runtime on the host (ASan / UBSan), bit-exact with the reference ---------------------------------------

def _host(gen, build, target="host-test"):
    cmd = ["make", "-s", "-C", FIRMWARE, f"GEN_DIR={gen}", f"HOST_BUILD={build}", "HOST_OPT=-O2", target]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _relu_model(sizes, seed):
    """synthetic_model with ReLU hidden layers (fused clamp at the output zero point, no LUT)."""
    model = synthetic_model(sizes=sizes, seed=seed)
    for layer in model.layers[:-1]:
        layer.activation, layer.lut, layer.lut_scale, layer.lut_zero_point = "relu", None, None, None
        layer.output_zero_point = -100
    for prev, layer in zip(model.layers[:-1], model.layers[1:]):
        layer.input_scale, layer.input_zero_point = prev.output_scale, prev.output_zero_point
    return model


@pytest.mark.skipif(not HAVE_CC, reason="no host C compiler (cc)")
@pytest.mark.parametrize("kind", ["softplus", "relu", "odd_shapes", "wide", "packed_mixed"])
def test_c_modes_equal_the_reference_under_asan_ubsan(kind, tmp_path):
    if kind == "softplus":
        model, dim = synthetic_model(seed=0), 784
    elif kind == "packed_mixed":  # PACKED pairs of 4, 6 and 8 bits (moment tables of 16, 64, 256 pairs), odd rows
        model, dim = synthetic_model(sizes=(61, 29, 13, 6), seed=7, weight_bits=(3, 4, 5), sigma_bits=(1, 2, 3),
                                     weights="packed"), 61
        assert {op.layout for op in model.layers} == {storage.LAYOUT_PACKED}
    elif kind == "relu":
        model, dim = _relu_model((784, 100, 100, 10), seed=1), 784
    elif kind == "wide":  # wider than the 128 units the modes' old static buffers held (sized by the arena now)
        model, dim = synthetic_model(sizes=(40, 200, 150, 5), seed=6), 40
    else:
        model, dim = synthetic_model(sizes=(30, 13, 7, 5), seed=5), 30
    gen = tmp_path / "gen"
    c_source.write_model_sources(model, gen)
    images = _mnist_like_input(3, seed=4)[:, :dim]
    exp = c_source.write_test_vectors(model, images, ["a", "b", "c"], gen, num_samples=6)
    assert all("hybrid" in e and "pfp" in e for e in exp)
    r = _host(gen, tmp_path / "build")
    assert r.returncode == 0 and "PASSED: 0 mismatches" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr
    lines = re.findall(r"^ok modes image \d .* hybrid=ok .* pfp=ok .* max\|diff\|=(\d+) \(1e-9\)$", r.stdout,
                       re.M)
    assert len(lines) == 3 + 3 and all(int(d) == 0 for d in lines), r.stdout  # PFP: bit-identical floats here
    # the modes really differ from MC and sample: hybrid counts are not all the same as MC's
    assert any(not np.array_equal(e["hybrid"]["sums"], e["sums"]) for e in exp)
    assert any(e["pfp"]["entropy"][2] > 0 for e in exp)


@pytest.mark.skipif(not HAVE_CC, reason="no host C compiler (cc)")
def test_the_arena_plan_holds_the_modes_scratch(tmp_path):
    """A dense Bayesian MLP's arena covers HYBRID (over the first layer's operands) and PFP (over everything); the
    host test of every model compares this plan with qbnn_arena_bytes, and ASan sees the arena's end."""
    model = synthetic_model(sizes=(30, 13, 7, 5), seed=5)
    c_source.write_model_sources(model, tmp_path)
    r8 = lambda n: (n + 7) // 8 * 8  # noqa: E731
    # MC: activations 13 (x2); operands of layer 0 (30, padded to 32) and of the others (13 -> 16); filter 30
    # HYBRID at layer 0 (13 x 30): nonzero list uint16[30], A1 / A2 int64[13], sdq int32[13], output int8[13]
    hybrid = r8(2 * 30) + 2 * r8(8 * 13) + r8(4 * 13) + r8(13)
    mc = 2 * r8(13) + r8(2 * 16) + r8(2 * 30) + max(r8(2 * 32), hybrid)
    # PFP: layer 0's list and sums, means and variances of two layers (widest: 13 rows), E[h^2] of 13 inputs
    pfp = r8(2 * 30) + 2 * r8(8 * 13) + 4 * r8(4 * 13) + r8(4 * 13)
    assert pfp > mc
    jackknife = 4 * 32 * 10  # SPEC 7.1's group sums, uint32[QBNN_JK_GROUPS][QBNN_MAX_CLASSES], before either plan
    assert c_source.arena_bytes(tmp_path) == jackknife + pfp


@pytest.mark.skipif(not HAVE_CC, reason="no host C compiler (cc)")
def test_c_detects_a_wrong_pfp_value(tmp_path):
    """The firmware's PFP comparison is live: one expected probability moved by 1e-5 fails the run."""
    gen = tmp_path / "gen"
    model = synthetic_model(sizes=(30, 13, 7, 5), seed=5)
    c_source.write_model_sources(model, gen)
    exp = c_source.write_test_vectors(model, _mnist_like_input(2, seed=4)[:, :30], ["a", "b"], gen, num_samples=3)
    src = (gen / "test_vectors.c").read_text()
    first = c_source._hex_floats(exp[0]["pfp"]["mean_prob"])
    moved = exp[0]["pfp"]["mean_prob"].copy()
    moved[0] += np.float32(1e-5)
    assert first in src
    (gen / "test_vectors.c").write_text(src.replace(first, c_source._hex_floats(moved), 1))
    r = _host(gen, tmp_path / "build")
    assert r.returncode != 0 and "FAIL modes image 0" in r.stdout and "pfp=FAIL" in r.stdout, r.stdout[-2000:]


@pytest.mark.skipif(not HAVE_CC, reason="no host C compiler (cc)")
def test_c_validates_the_mode_argument_and_moment_tables(tmp_path):
    gen = tmp_path / "gen"
    model = synthetic_model(sizes=(32, 16, 8, 4), seed=9)
    c_source.write_model_sources(model, gen)
    c_source.write_test_vectors(model, _mnist_like_input(1, seed=2)[:, :32], ["a"], gen, num_samples=2)
    r = _host(gen, tmp_path / "build", "host-validate")
    assert r.returncode == 0 and "VALIDATION PASSED" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr
    for case in ("predict_mode_unknown", "predict_mode_negative", "predict_hybrid_without_moments",
                 "predict_pfp_without_last_moments"):
        assert re.search(rf"^ok {case} code=26$", r.stdout, re.M), case  # QBNN_RT_ERR_MODE
    for case in ("predict_hybrid_null_input", "forward_mean_null_out"):
        assert re.search(rf"^ok {case} code=1$", r.stdout, re.M), case
    assert re.search(r"^ok predict_pfp_zero_samples code=23$", r.stdout, re.M)
    for case in ("moments_s1_out_of_range", "moments_v_negative", "moments_activation_unknown",
                 "moments_last_not_linear"):
        assert re.search(rf"^ok {case} code=25$", r.stdout, re.M), case
    assert re.search(r"^ok moments_null_table code=1$", r.stdout, re.M)


def test_c_float_constants_are_the_references_float32_values():
    """The hex literals in qbnn_modes.c are modes.py's float32 constants (Gauss-Hermite tables, polynomials)."""
    src = open(os.path.join(MICRO, "qbnn_modes.c")).read()

    def table(name):
        body = re.search(rf"static const float {name}\[\d+\] = \{{(.*?)\}};", src, re.S).group(1)
        return np.array([float.fromhex(v.strip().rstrip("f")) for v in body.split(",") if v.strip()], np.float32)

    np.testing.assert_array_equal(table("kExpC"), float32.EXP_C)
    np.testing.assert_array_equal(table("kAtanhC"), [np.float32(1 / (2 * j + 1)) for j in range(float32.ATANH_TERMS)])
    for _, n in modes.GH_TIERS:
        np.testing.assert_array_equal(table(f"kGhNodes{n}"), modes.GH[n][0])
        np.testing.assert_array_equal(table(f"kGhWeights{n}"), modes.GH[n][1])
    consts = dict(re.findall(r"#define K_(\w+) (-?0x[0-9a-fp.+-]+)f", src))
    f = float32
    for name, value in (("LOG2E", f.LOG2E), ("LN2", f.LN2), ("LN2_HI", f.LN2_HI), ("LN2_LO", f.LN2_LO),
                        ("EXP_MIN", f.EXP_MIN), ("INV_SQRT2PI", modes.INV_SQRT2PI), ("FLT_MIN", f.FLT_MIN)):
        assert np.float32(float.fromhex(consts[name])) == value, name
    hdr = open(os.path.join(MICRO, "qbnn_modes.h")).read()
    assert f"#define QBNN_HYBRID_Z_GAIN {modes.Z_GAIN} " in hdr
    assert f"#define QBNN_HYBRID_GAIN_BITS {modes.Z_GAIN_BITS}" in hdr


# ---- against Keras (tfqbnn.propagation) and integer MC on a trained model ------------------------------------

def test_integer_modes_agree_with_keras_and_with_integer_mc(tmp_path_factory):
    """The trained JQ-4 export of the firmware tests, 300 MNIST test digits:
    * first-layer moments: the integer exact code moments against Keras' exact moments of the quantized weights
      (Gaussian eps): pre-activation means within 1 % of the largest (measured 3e-8), variances within 1 %
      (measured 0.53 %: the integer sampler's eps table, cut at 2.886, has variance 0.995);
    * PFP logits (numpy float32, integer moments) against `tfqbnn.propagation.logit_moments` (float64, Keras):
      |mean difference| <= 0.01 logit-sd (measured 0.002), variances within 2 % (measured 0.8 %);
    * decisions: hybrid and PFP agree with integer MC (S = 30, seed 1) at least as often as integer MC with
      another seed does, minus 2 points (this one-epoch model is uncertain: MC vs MC 0.92, hybrid 0.98,
      PFP 0.93 measured)."""
    import keras

    from tfqbnn import moments, propagation
    from tfqbnn.datasets.mnist import load_idx_uint8
    from tflite_export.artifacts import load_exported

    from mcu_models import exported_jq4

    root = tmp_path_factory.mktemp("mcu")
    export_dir = exported_jq4(root)
    kmodel = keras.saving.load_model(os.path.join(os.path.dirname(export_dir), "jq4.keras"))
    imodel = load_exported(export_dir)
    xs, _ = load_idx_uint8("mnist", "test")
    x = xs[np.random.default_rng(0).choice(len(xs), 300, replace=False)].reshape(300, -1)
    xf = x.astype(np.float32) / np.float32(255.0)

    dense = [layer for layer in kmodel.layers if moments.is_variational(layer)]
    ew, vw = moments.layer_weight_moments(dense[0])
    k_mean, k_var = xf.astype(np.float64) @ ew, (xf.astype(np.float64) ** 2) @ vw
    a1, a2 = modes.first_layer_sums(imodel.layers[0], imodel.quantize_input(x))
    s = float(modes.INPUT_SCALE_F32) / 7.0
    i_mean, i_var = a1 / 256 * s, a2 / 65536 * s * s
    d_mean = np.abs(i_mean - k_mean).max() / np.abs(k_mean).max()
    d_var = np.abs(i_var - k_var) / k_var
    print(f"layer 0: max |d mean| / max |mean| = {d_mean:.2e}; var rel diff median {np.median(d_var):.2e} "
          f"max {d_var.max():.2e}")
    assert d_mean < 0.01 and d_var.max() < 0.01

    km, kv = propagation.logit_moments(kmodel, xf)
    im, iv = modes.pfp_logit_moments(imodel, x)
    dm = np.abs(im - km) / np.sqrt(kv)
    dv = np.abs(iv - kv) / kv
    print(f"logits: |d mean| / sd max {dm.max():.3f} median {np.median(dm):.4f}; var rel diff max {dv.max():.3f} "
          f"median {np.median(dv):.4f}")
    assert dm.max() < 0.01 and dv.max() < 0.02

    mc = modes.predict(imodel, x, "mc", 30, seed=1)["prediction"]
    floor = np.mean(modes.predict(imodel, x, "mc", 30, seed=2)["prediction"] == mc)
    for mode in ("hybrid", "pfp"):
        agree = np.mean(modes.predict(imodel, x, mode, 30, seed=1)["prediction"] == mc)
        print(f"{mode}: agrees with integer MC on {agree:.3f} (MC vs MC: {floor:.3f})")
        assert agree >= floor - 0.02


# ---- SPEC 7.1: the jackknife correction, numpy float32 reference and C -----------------------------------------

@pytest.mark.parametrize("num_samples", [1, 6, 30, 40])
def test_reference_jackknife_is_the_estimators_group_jackknife(num_samples):
    """The float32 reference (pooled counts A[c] / T, as SPEC 7) against `tfqbnn.estimators` in float64 on the
    per-sample probabilities P_s / T_s with the same 32 groups: equal up to float32 and the normalisation."""
    from tfqbnn import estimators

    model = synthetic_model(sizes=(30, 13, 7, 5), seed=5)
    x = _mnist_like_input(4, seed=4)[:, :30]
    codes = model.predict_codes(x, num_samples=num_samples, streams=model.streams(3))
    u = statistics.uncertainty(codes)
    p = (codes.astype(np.int64) + 128) / (codes.astype(np.int64) + 128).sum(-1, keepdims=True)
    want = estimators.entropy_of_mean(p, "jackknife", groups=32) - estimators.entropy(p.mean(0))
    np.testing.assert_allclose(u["entropy_correction"], want, rtol=0.01, atol=1e-7)  # T_s vs T: < 1 %
    assert u["entropy_correction"].dtype == np.float32
    if num_samples > 1:
        assert np.all(u["entropy_correction"] > 0)  # the plug-in is biased low here
    np.testing.assert_allclose(u["mutual_information_corrected"] - u["mutual_information"],
                               u["entropy_correction"], rtol=1e-6)
    # PFP: the same estimator on its float32 sample probabilities
    pf = modes.pfp_uncertainty(model, x, num_samples=num_samples, seed=3)
    assert pf["entropy_correction"].dtype == np.float32
    if num_samples > 1:
        assert np.all(pf["entropy_correction"] > 0)
    np.testing.assert_array_equal(pf["mutual_information_corrected"],
                                  (pf["mutual_information"] + pf["entropy_correction"]).astype(np.float32))


def test_jackknife_group_of_a_sample_is_its_bounds_interval():
    for s_total in (1, 5, 31, 32, 33, 40, 1000, 65536):
        b = statistics.jk_bounds(s_total)
        want = np.searchsorted(b, np.arange(s_total), side="right") - 1
        got = [statistics.jk_group_of(s, s_total) for s in range(s_total)] if s_total < 2000 else \
            [statistics.jk_group_of(s, s_total) for s in (0, 1, 2047, 2048, s_total - 1)]
        idx = np.arange(s_total) if s_total < 2000 else np.array([0, 1, 2047, 2048, s_total - 1])
        np.testing.assert_array_equal(got, want[idx])


@pytest.mark.skipif(not HAVE_CC, reason="no host C compiler (cc)")
def test_c_jackknife_is_bit_identical_and_checked(tmp_path):
    """S = 40 (32 groups of 1 or 2 samples): the C correction of MC, HYBRID and PFP equals the reference's float32
    bit for bit on every kernel; one expected value moved by one ulp fails the run."""
    gen = tmp_path / "gen"
    model = synthetic_model(sizes=(30, 13, 7, 5), seed=5)
    c_source.write_model_sources(model, gen)
    exp = c_source.write_test_vectors(model, _mnist_like_input(2, seed=4)[:, :30], ["a", "b"], gen, num_samples=40)
    assert all(e["jk"] > 0 and e["hybrid"]["jk"] > 0 and e["pfp"]["jk"] > 0 for e in exp)
    r = _host(gen, tmp_path / "build")
    assert r.returncode == 0 and "PASSED: 0 mismatches" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
    got = re.findall(r"^ok jackknife image (\d) mode=(\w+) kernel=(\w+) correction=(-?\d+) expected=(-?\d+)",
                     r.stdout, re.M)
    assert {(m, k) for _, m, k, _, _ in got} >= {(m, k) for m in ("mc", "hybrid", "pfp")
                                                   for k in ("auto", "ref", "lut", "simd")}
    src = (gen / "test_vectors.c").read_text()
    row = c_source._hex_floats([exp[0]["jk"], exp[0]["hybrid"]["jk"], exp[0]["pfp"]["jk"]])
    moved = np.array([exp[0]["jk"], exp[0]["hybrid"]["jk"], exp[0]["pfp"]["jk"]], np.float32)
    moved[2] = np.nextafter(moved[2], np.float32(1))
    assert row in src
    (gen / "test_vectors.c").write_text(src.replace(row, c_source._hex_floats(moved), 1))
    r = _host(gen, tmp_path / "build")
    assert r.returncode != 0 and re.search(r"^FAIL jackknife image 0 mode=pfp", r.stdout, re.M), r.stdout[-2000:]
