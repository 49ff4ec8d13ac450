"""The PACKED layout (SPEC.md section 2): (mu code, sigma code) pairs of mu_bits + sigma_bits <= 8 bits packed
little-endian across bytes; its sampling table (2^p x 256, SPEC 3.3); exports of a mixed-bits MLP."""

import json
import re

import numpy as np
import pytest

from tflite_export import artifacts, c_source, convert, storage
from tflite_export.intmath import sampler
from tfqbnn.quantizers import LogQuantizer
from tflm_bin import split_model_matches

PAIRS = [(b, sb) for b in range(2, 8) for sb in range(1, 9 - b)]


def _bitwise_pack(mu, sig, b, sb):
    """SPEC 2 written out bit by bit in Python ints (independent of storage.pack)."""
    p = b + sb
    out = bytearray(-(-len(mu) * p // 8))
    for n, (m, k) in enumerate(zip(mu, sig)):
        v = (int(m) & ((1 << b) - 1)) | (int(k) << b)
        for j in range(p):
            i = n * p + j
            out[i >> 3] |= ((v >> j) & 1) << (i & 7)
    return np.frombuffer(bytes(out), np.uint8)


@pytest.mark.parametrize("b,sb", PAIRS)
def test_pack_unpack_round_trip_and_bit_order(b, sb):
    rng = np.random.default_rng(b * 16 + sb)
    m = 2 ** (b - 1) - 1
    for shape in [(1, 1), (3, 7), (5, 13), (10, 100)]:
        mu = rng.integers(-m, m + 1, shape)
        sig = rng.integers(0, 2**sb, shape)
        (name, packed), = storage.pack(mu, sig, storage.LAYOUT_PACKED, sb, b)
        assert name == "pairs" and packed.dtype == np.uint8
        assert packed.size == -(-mu.size * (b + sb) // 8) == storage.packed_bytes(mu.size, b, sb)
        np.testing.assert_array_equal(packed, _bitwise_pack(mu.reshape(-1), sig.reshape(-1), b, sb))
        assert storage.stored_shapes(storage.LAYOUT_PACKED, sb, shape, b) == [("pairs", np.uint8, packed.shape)]
        mu_u, sig_u = storage.unpack([(name, packed)], storage.LAYOUT_PACKED, sb, shape, b)
        np.testing.assert_array_equal(mu_u, mu)
        np.testing.assert_array_equal(sig_u, sig)


def test_four_plus_four_pairs_are_the_i4_fused_bytes():
    rng = np.random.default_rng(0)
    mu, sig = rng.integers(-7, 8, (9, 11)), rng.integers(0, 16, (9, 11))
    (_, fused), = storage.pack(mu, sig, storage.LAYOUT_I4_FUSED, 4)
    (_, packed), = storage.pack(mu, sig, storage.LAYOUT_PACKED, 4, 4)
    np.testing.assert_array_equal(packed, fused.reshape(-1))
    table = sampler.pair_table(sampler.sigma_q_table(LogQuantizer(4), 4), 4, 4)
    np.testing.assert_array_equal(table, c_source.derived_table(sampler.sigma_q_table(LogQuantizer(4), 4), 4))


@pytest.mark.parametrize("b,sb", PAIRS)
def test_pair_table_is_spec_3_3_for_every_pair_and_byte(b, sb):
    """T[v << 8 | u] against SPEC 3.3 in Python ints, for every valid pair v and stream byte u."""
    sigma_q = sampler.sigma_q_table(LogQuantizer(sb), b)
    table = sampler.pair_table(sigma_q, b, sb)
    assert table.shape == (2 ** (b + sb) * 256,) and table.dtype == np.int8
    m = 2 ** (b - 1) - 1
    eps = [int(e) for e in sampler.EPS_Q]
    pairs, bytes_, want = [], [], []
    for v in range(2 ** (b + sb)):
        mu = v & ((1 << b) - 1)
        mu = mu - (1 << b) if mu >= 1 << (b - 1) else mu
        if mu < -m:
            continue  # never stored: |mu code| <= M
        k = v >> b
        for u in range(256):
            off = (int(sigma_q[k]) * eps[u] + (1 << 21)) >> 22
            pairs.append(v)
            bytes_.append(u)
            want.append(max(-m, min(m, mu + off)))
    got = sampler.sample_pairs(np.array(pairs), table, np.array(bytes_))
    np.testing.assert_array_equal(got, want)


def test_packed_layout_refuses_what_does_not_fit():
    for b, sb in [(4, 5), (7, 2), (8, 1), (1, 4), (3, 0)]:
        with pytest.raises(ValueError, match=f"mu_bits={b} \\+ sigma_bits={sb}"):
            storage.choose_layout("packed", b, sb, "layer 'x'")
    with pytest.raises(ValueError, match="weight_bits"):
        storage.pack(np.zeros((2, 2)), np.zeros((2, 2)), storage.LAYOUT_PACKED, 4)
    with pytest.raises(ValueError, match="13 bytes"):
        storage.unpack([("pairs", np.zeros(13, np.uint8))], storage.LAYOUT_PACKED, 3, (5, 7), 3)


def _mixed_mlp(seed=0, num_examples=None):
    from tfqbnn import models
    from tfqbnn.config import QuantizationConfig

    qs = [QuantizationConfig("jq", mu_bits=mb, sigma_bits=sb, sample_bits=mb) for mb, sb in [(3, 2), (4, 4), (6, 1)]]
    return models.mlp(hidden=(24, 16), quantization=qs, seed=seed, num_examples=num_examples)


@pytest.fixture(scope="module")
def trained_mixed():
    import keras

    from tfqbnn.datasets import load_mnist

    x, y = load_mnist("train")
    x, y = x[:6000], y[:6000]
    keras.utils.set_random_seed(0)
    model = _mixed_mlp(num_examples=len(x))
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy())
    model.fit(x, y, batch_size=128, epochs=2, verbose=0)
    return model


@pytest.fixture(scope="module")
def packed_export(trained_mixed, tmp_path_factory):
    from tfqbnn.datasets import calibration_images

    out = tmp_path_factory.mktemp("packed")
    return convert.export_all(trained_mixed, out, weights="packed", seed=7, calibration_x=calibration_images(300))


def test_mixed_export_manifest_and_reload(trained_mixed, packed_export):
    info = json.loads(packed_export["manifest_path"].read_text())
    assert info["version"] == artifacts.PACKED_MANIFEST_VERSION and info["weights"] == "packed"
    for layer, entry in zip(trained_mixed.layers[:-1], info["layers"]):
        q = layer.quantization
        n = int(np.prod(layer.mu.shape))
        assert (entry["weight_bits"], entry["sigma_bits"], entry["layout"]) == (q.mu_bits, q.sigma_bits, "PACKED")
        assert entry["stored_bytes"] == -(-n * (q.mu_bits + q.sigma_bits) // 8)
    assert info["totals"]["stored_weight_bytes"] == sum(e["stored_bytes"] for e in info["layers"])
    loaded = artifacts.load_exported(packed_export["manifest_path"].parent)
    imodel = packed_export["integer_model"]
    x = np.random.default_rng(1).integers(0, 256, (5, 784)).astype(np.uint8)
    np.testing.assert_array_equal(loaded.predict_codes(x, 3, seed=2), imodel.predict_codes(x, 3, seed=2))
    for layer, op in zip(trained_mixed.layers[:-1], loaded.layers):
        q = layer.quantization
        m = 2 ** (q.mu_bits - 1) - 1
        np.testing.assert_array_equal(op.mu_codes, np.round(np.clip(layer.mu.numpy().T, -1, 1) * m))
        np.testing.assert_array_equal(op.sigma_codes, q.sigma_quantizer.codes(layer.sigma.numpy().T))


def test_packed_export_is_tamper_checked(packed_export, tmp_path):
    import shutil

    src = packed_export["manifest_path"].parent
    man = json.loads((src / "manifest.json").read_text())
    for mutate, message in [
        (lambda m: m.update(version=2), "version 2 but its layers' layouts make it version 3"),
        (lambda m: m["layers"][1].update(sigma_bits=3), "sigma_bits"),
    ]:
        d = tmp_path / f"t{len(message)}"
        shutil.copytree(src, d)
        bad = json.loads(json.dumps(man))
        mutate(bad)
        (d / "manifest.json").write_text(json.dumps(bad))
        with pytest.raises(artifacts.ArtifactError, match=message):
            artifacts.load_exported(d)


def test_packed_export_writes_c_sources_that_run_bit_exact_on_the_host(trained_mixed, tmp_path):
    """The mixed MLP (3+2, 4+4, 6+1 bits) exported with the C-source writer: its pair tables in model_data.c and
    its C run on the host equal the numpy reference (test vectors from the exported integer model)."""
    import shutil
    import subprocess

    from tflite_export import firmware_runner
    from tfqbnn.datasets import calibration_images

    out = tmp_path / "export"
    images = np.random.default_rng(4).integers(0, 256, (3, 784)).astype(np.uint8)
    convert.export_all(trained_mixed, out, weights="packed", seed=7, calibration_x=calibration_images(50),
                       extra_writers=[c_source.export_writer(images, ["a", "b", "c"], num_samples=4)])
    data = (out / "c" / "model_data.c").read_text()
    assert data.count("qbnn_pair_table") >= 3 and "qbnn_sample_table" not in data
    if shutil.which("cc") is None:
        pytest.skip("no host C compiler")
    r = subprocess.run(["make", "-s", "-C", firmware_runner.FIRMWARE_DIR, f"GEN_DIR={out / 'c'}",
                        f"HOST_BUILD={tmp_path / 'build'}", "host-test"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "PASSED: 0 mismatches" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    # HYBRID and PFP on the mixed widths (moment tables of 32, 256 and 128 pairs), exact against the reference
    assert data.count("qbnn_pair_moments") >= 6  # three arrays, each referenced by its layer
    modes = re.findall(r"^ok modes image \d \(\w\) kernel=\w+ hybrid=ok .* pfp=ok .* max\|diff\|=(\d+) \(1e-9\)$",
                       r.stdout, re.M)
    assert len(modes) == 3 + 3 and all(int(d) == 0 for d in modes), r.stdout[-3000:]


def test_integer_sampling_matches_keras_quantized_sampling(trained_mixed, packed_export):
    """Per layer, the integer sampler's weight codes and Keras' JQ sampled kernels (same mu / sigma grids) agree in
    mean and standard deviation over 400 draws, weight by weight on average (within the draws' standard error;
    the 256-atom eps table and round-half-up are the only differences)."""
    imodel = packed_export["integer_model"]
    streams = imodel.streams(11)
    draws = [imodel.sample_weights(streams) for _ in range(400)]
    for i, (layer, op) in enumerate(zip(trained_mixed.layers[:-1], imodel.layers)):
        a = np.stack([d[i] for d in draws]).astype(np.float64)
        m = 2 ** (layer.quantization.mu_bits - 1) - 1
        k = np.round(np.transpose(np.asarray(layer.sample_kernel(400)), (0, 2, 1)) * m)
        se = np.sqrt((a.var(0) + k.var(0)) / len(a))  # standard error of the difference of the two means
        assert abs(a.mean(0) - k.mean(0)).mean() < 0.05 + 2 * se.mean(), i
        assert abs(a.std(0) - k.std(0)).mean() < 0.05 + 2 * se.mean() / np.sqrt(2), i
        assert a.std(0).mean() > 0.01  # the sampler is live in every layer


def test_tflm_runs_the_packed_export_split_model_bit_exactly(packed_export):
    """model_split.tflite takes the sampled filters as inputs, so pip TFLM runs a PACKED export as it is."""
    from tfqbnn.datasets import load_mnist

    split_model_matches(packed_export, load_mnist("test")[0][:40], samples=2, seed=5)


def test_tflm_runs_the_packed_export_model_with_its_sampling_ops(packed_export, tmp_path):
    """model.tflite of the mixed export: QBNN_SAMPLE ops reading PACKED pairs of 5, 8 and 7 bits, in real TFLM
    (QBNN_TFLM_TEST_BIN) bit-exactly with the numpy reference."""
    from tflite_export import tflite_io
    from tfqbnn.datasets import load_mnist
    from tflm_bin import run_in_graph

    layers = tflite_io.read_qbnn_layers(packed_export["model"])
    assert [(L["weight_bits"], L["sigma_bits"], L["layout"]) for L in layers] == \
        [(3, 2, storage.LAYOUT_PACKED), (4, 4, storage.LAYOUT_PACKED), (6, 1, storage.LAYOUT_PACKED)]
    got, ref, _ = run_in_graph(packed_export["model"], packed_export["integer_model"], load_mnist("test")[0][:20], 10,
                               5, tmp_path)
    np.testing.assert_array_equal(got, ref)
    assert not np.array_equal(ref[0], ref[1])


def test_tflm_example_runs_the_packed_export_bit_exactly(trained_mixed, tmp_path):
    """firmware/tflm_example (real TFLM, QBNN_SAMPLE reading PACKED pairs) on the host against the export's test
    vectors; needs QBNN_TFLM_DIR (a TFLM tree) and QBNN_TFLM_LIB (its host microlite library)."""
    import os
    import subprocess
    import sys

    from tflite_export import firmware_runner
    from tfqbnn.datasets import calibration_images

    tflm_dir, tflm_lib = os.environ.get("QBNN_TFLM_DIR"), os.environ.get("QBNN_TFLM_LIB")
    if not (tflm_dir and tflm_lib):
        pytest.skip("QBNN_TFLM_DIR / QBNN_TFLM_LIB not set (a TensorFlow Lite Micro tree and its host library)")
    out = tmp_path / "export"
    images = np.random.default_rng(6).integers(0, 256, (3, 784)).astype(np.uint8)
    convert.export_all(trained_mixed, out, weights="packed", seed=7, calibration_x=calibration_images(50),
                       extra_writers=[c_source.export_writer(images, ["a", "b", "c"], num_samples=4)])
    r = subprocess.run(["make", "-s", "-C", os.path.join(firmware_runner.FIRMWARE_DIR, "tflm_example"),
                        f"TFLM_DIR={tflm_dir}", f"TFLM_LIB={tflm_lib}", f"EXPORT_DIR={out}",
                        f"BUILD={tmp_path / 'build'}", f"PYTHON={sys.executable}", "run"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and "PASSED: 0 mismatches" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
