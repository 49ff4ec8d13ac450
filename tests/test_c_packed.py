"""The C runtime on PACKED Bayesian weights (SPEC.md section 2: (mu code, sigma code) pairs of mu_bits + sigma_bits
<= 8 bits packed little-endian across bytes; the 2^p x 256 pair table of SPEC 3.3): MLPs and a conv network run
bit-exactly against the numpy reference on the host (REF / LUT / SIMD kernels, mean pass) and in QEMU."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from tflite_export import c_source, firmware_runner, storage
from mcu_models import synthetic_conv_model, synthetic_model

FIRMWARE = firmware_runner.FIRMWARE_DIR
HAVE_CC = shutil.which("cc") is not None
MISSING = firmware_runner.missing_tools()
PAIRS = [(3, 1), (5, 3), (2, 1), (4, 4), (7, 1), (2, 6), (3, 2), (4, 3)]  # p = 4, 8, 3, 8, 8, 8, 5, 7
SOURCES = ["r0", "r1", "r2", "r3"]


def _make(*args):
    return subprocess.run(["make", "-s", "-C", FIRMWARE, *args], capture_output=True, text=True, timeout=600)


def _images(n=4, size=784):
    return np.random.default_rng(1).integers(0, 256, size=(n, size)).astype(np.uint8)


def _gen(model, gen):
    c_source.write_model_sources(model, gen)
    return c_source.write_test_vectors(model, _images(), SOURCES, gen, num_samples=5)


def _host_run(gen, build, opt="-O1"):
    r = _make(f"GEN_DIR={gen}", f"HOST_BUILD={build}", f"HOST_OPT={opt}", "host-test")
    assert r.returncode == 0 and "PASSED: 0 mismatches" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr
    for kernel in ("ref", "lut", "simd"):
        assert f"ok image 1 (r1) kernel={kernel}" in r.stdout
    return r.stdout


@pytest.mark.skipif(not HAVE_CC, reason="no host C compiler")
@pytest.mark.parametrize("b,sb", PAIRS)
def test_packed_mlp_is_bit_exact_on_the_host(b, sb, tmp_path):
    """Rows of 37 and 23 columns: pairs straddle bytes and rows start mid-byte for every p but 8."""
    model = synthetic_model(sizes=(784, 37, 23, 10), seed=b * 8 + sb, weight_bits=b, sigma_bits=sb, weights="packed")
    assert {op.layout for op in model.layers} == {storage.LAYOUT_PACKED}
    exp = _gen(model, tmp_path / "gen")
    assert len({tuple(e["sums"]) for e in exp}) > 1  # the images are told apart
    data = (tmp_path / "gen" / "model_data.c").read_text()
    assert f"{256 << (b + sb)}u" in data  # the pair table's size, checked by the runtime
    out = _host_run(tmp_path / "gen", tmp_path / "build")
    # HYBRID and PFP through the 2^p-entry moment tables indexed by the pair: every image, then image 0 per kernel;
    # PFP's float32 probabilities bit-identical to the numpy reference
    lines = re.findall(r"^ok modes image \d \(r\d\) kernel=\w+ hybrid=ok .* pfp=ok .* max\|diff\|=(\d+) \(1e-9\)$", out,
                       re.M)
    assert len(lines) == 4 + 3 and all(int(d) == 0 for d in lines), out


@pytest.mark.skipif(not HAVE_CC, reason="no host C compiler")
@pytest.mark.parametrize("b,sb", [(3, 2), (5, 3)])
def test_packed_conv_network_is_bit_exact_on_the_host(b, sb, tmp_path):
    """Bayesian CONV_2D and dense ops stored PACKED (the filter rows of the conv kernels)."""
    model = synthetic_conv_model(seed=3, bayesian_conv=True, packed=(b, sb))
    assert sum(getattr(getattr(op, "weights", None), "layout", None) == storage.LAYOUT_PACKED
               for op in model.layers) == 3
    _gen(model, tmp_path / "gen")
    _host_run(tmp_path / "gen", tmp_path / "build", "-O3")


# One mixed-bits MLP for every kernel of the sampled pass: 3+1 and 2+2 (p = 4: 784 columns, whole words of
# nibble pairs; 36 columns, every other row at 2 mod 4 bytes and a last group of 4), 4+4 and 5+3 (p = 8: the
# I4_FUSED byte kernels; on ARMv6-M 5+3 takes the p = 8 assembly row, |w| > 7), 3+2 (p = 5: groups of 8
# pairs in 5 bytes, the tensor's last group through the bit reservoir) and 4+2 (p = 6, 12 columns: every other
# row starts mid-group and every row ends with 4 weights outside its groups).
MIXED_SIZES = (784, 36, 20, 24, 16, 12, 10)
MIXED_BITS = [(3, 1), (2, 2), (4, 4), (5, 3), (3, 2), (4, 2)]


@pytest.fixture(scope="module")
def mixed_gen(tmp_path_factory):
    model = synthetic_model(sizes=MIXED_SIZES, seed=24, weight_bits=[b for b, _ in MIXED_BITS],
                            sigma_bits=[sb for _, sb in MIXED_BITS], weights="packed")
    assert [(op.weight_bits, op.sigma_bits) for op in model.layers] == MIXED_BITS
    gen = tmp_path_factory.mktemp("mixed") / "gen"
    c_source.write_model_sources(model, gen)
    exp = c_source.write_test_vectors(model, _images(2), SOURCES[:2], gen, num_samples=3)
    assert len({tuple(e["sums"]) for e in exp}) > 1
    return gen


@pytest.mark.skipif(not HAVE_CC, reason="no host C compiler")
def test_mixed_bits_packed_mlp_is_bit_exact_on_the_host(mixed_gen, tmp_path):
    data = (mixed_gen / "model_data.c").read_text()
    for b, sb in MIXED_BITS:  # a pair table per width
        assert f"{256 << (b + sb)}u" in data
    _host_run(mixed_gen, tmp_path / "build")


@pytest.mark.skipif(bool(MISSING), reason=f"missing {', '.join(MISSING)}")
@pytest.mark.parametrize("board", sorted(firmware_runner.BOARDS))
def test_mixed_bits_packed_mlp_is_bit_exact_on_every_board(board, mixed_gen, tmp_path):
    """Each board's kernels (DSP, Helium, ARMv6-M, the C loops): REF, LUT, SIMD and the default kernel against the
    numpy reference."""
    r = _make(f"BOARD={board}", f"GEN_DIR={mixed_gen}", f"BUILD={tmp_path / 'build'}", "run")
    assert r.returncode == 0 and "PASSED: 0 mismatches" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    for kernel in ("ref", "lut", "simd"):
        assert f"ok image 1 (r1) kernel={kernel}" in r.stdout
    # HYBRID exact and PFP's floats identical to the numpy reference on every board too
    modes = re.findall(r"^ok modes image \d \(r\d\) kernel=(\w+) hybrid=ok .* pfp=ok .* max\|diff\|=(\d+) \(1e-9\)$",
                       r.stdout, re.M)
    assert len(modes) >= 2 and all(int(d) == 0 for _, d in modes), r.stdout[-3000:]


@pytest.mark.skipif(not HAVE_CC, reason="no host C compiler")
def test_a_pair_table_of_the_wrong_size_is_refused_by_the_table_kernels(tmp_path):
    """qbnn_init checks the pair table's entries against 256 << p (a short table would be read past its end):
    LUT / SIMD refuse the model with QBNN_RT_ERR_KERNEL (22); REF, which reads no table, still runs it bit-exactly."""
    model = synthetic_model(sizes=(784, 37, 23, 10), seed=9, weight_bits=3, sigma_bits=1, weights="packed")
    gen = tmp_path / "gen"
    _gen(model, gen)
    data = (gen / "model_data.c").read_text()
    good = ".wlut = qbnn_pair_table0, .wlut_entries = 4096u"
    assert data.count(good) == 3  # the three layers share one table
    (gen / "model_data.c").write_text(data.replace(good, good.replace("4096u", "2048u"), 1))
    r = _make(f"GEN_DIR={gen}", f"HOST_BUILD={tmp_path / 'build'}", "host-test")
    assert r.returncode != 0
    assert "FAIL qbnn_init(kernel=lut) = 22" in r.stdout and "FAIL qbnn_init(kernel=simd) = 22" in r.stdout
    assert "ok image 1 (r1) kernel=ref" in r.stdout and "kernel=ref) =" not in r.stdout
