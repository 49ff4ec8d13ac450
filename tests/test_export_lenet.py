"""Issue 12, Python side: LeNet-5 "all" (Bayesian convs) and "head" (int4 QAT convs + dense, Bayesian head) go
through the Keras front end; model_split.tflite runs in pip TFLM bit-exactly with the numpy reference on real
MNIST / Fashion-MNIST images; model.tflite holds a QBNN_SAMPLE op (options v2, OHWI) per Bayesian conv."""

import os
import re
import subprocess

import numpy as np
import pytest

from tflite_export import artifacts, convert, firmware_runner, tflite_io

pytestmark = pytest.mark.slow

tflm = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")


def _lenet(bayesian):
    """A briefly trained LeNet-5 (JQ-4; "head": int4 per-channel QAT convs / dense), sigma large enough that
    the samples differ."""
    import keras

    from tfqbnn import models
    from tfqbnn.datasets import load_mnist

    x, y = load_mnist("train")
    x, y = x[:3000], y[:3000]
    model = models.lenet5(bayesian=bayesian, quantization="jq4", deterministic_bits=4 if bayesian == "head" else None,
                          num_examples=len(x), init_sigma=0.05, seed=1)
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy())
    model.fit(x, y, batch_size=128, epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def images():
    from tfqbnn.datasets import calibration_images, load_fashion_mnist, load_mnist

    x, y = load_mnist("test")
    return {"calibration": calibration_images(300), "mnist": (x[:40], y[:40]), "fashion": load_fashion_mnist("test")[0][:20]}


@pytest.fixture(scope="module")
def lenets(images, tmp_path_factory):
    """bayesian -> (bayesian, Keras model, export result), each built on first use."""
    cache = {}

    def get(bayesian):
        if bayesian not in cache:
            model = _lenet(bayesian)
            out = tmp_path_factory.mktemp(f"lenet_{bayesian}")
            cache[bayesian] = (bayesian, model, convert.export_all(model, out, weights="int4", seed=77,
                                                                  calibration_x=images["calibration"]))
        return cache[bayesian]

    return get


@pytest.fixture(scope="module", params=["all", "head"])
def exported(request, lenets):
    return lenets(request.param)


def _tflm_codes(interp, q, weights):
    interp.set_input(q, 0)
    for i, w in enumerate(weights):
        interp.set_input(w, i + 1)
    interp.invoke()
    return interp.get_output(0)[0]


def test_ops_from_the_keras_front_end(exported):
    bayesian, model, result = exported
    kinds = [op.kind for op in result["integer_model"].ops]
    conv = "CONV_2D"
    head = ["FULLY_CONNECTED" if bayesian == "head" else "QBNN_FULLY_CONNECTED"] + ["QBNN_FULLY_CONNECTED"] * 2
    assert kinds == ["RESHAPE", conv, "MAX_POOL_2D", conv, "MAX_POOL_2D", "RESHAPE", *head, "SOFTMAX"]
    ops = result["integer_model"].layers
    assert [op.bayesian for op in ops if op.has_weights] == ([True] * 5 if bayesian == "all" else [False] * 3 + [True] * 2)
    assert result["integer_model"].prefix_length == (1 if bayesian == "all" else 7)
    # the QBNN_SAMPLE ops of model.tflite: one per Bayesian op, stream ids in order, OHWI filters for the convs
    stored = tflite_io.read_qbnn_layers(result["model"])
    bayes = [op for op in ops if op.bayesian]
    assert [s["index"] for s in stored] == list(range(len(bayes)))
    for s, op in zip(stored, bayes):
        shape = op.weights.shape if op.kind == "CONV_2D" else op.shape
        assert s["filter_shape"] == tuple(shape)
        assert s["version"] == (2 if op.kind == "CONV_2D" else 1)


def test_constant_filters_are_the_keras_qat_grid(lenets):
    """The head model's deterministic filters: codes * scale == the QAT layer's fake-quantized kernel (float32)."""
    _, model, result = lenets("head")
    ops = {op.name: op for op in result["integer_model"].layers}
    checked = 0
    for layer in model.layers:
        if not hasattr(layer, "kernel_bits"):
            continue
        w = ops[layer.name].weights
        fq = np.asarray(layer.quantized_kernel(), np.float64)  # HWIO or [in, out]
        deq = w.codes.astype(np.float64) * np.asarray(w.scales, np.float64).reshape(-1, *[1] * (w.codes.ndim - 1))
        deq = np.transpose(deq, (1, 2, 3, 0)) if deq.ndim == 4 else deq.T
        np.testing.assert_allclose(deq, fq, rtol=2e-6, atol=1e-7)
        assert w.bits == 4 and w.scales.size == w.shape[0] and np.abs(w.codes).max() == 7
        checked += 1
    assert checked == 3


def test_tflm_split_model_bit_exact_with_reference(exported, images):
    bayesian, _, result = exported
    imodel = result["integer_model"]
    x = np.concatenate([images["mnist"][0], images["fashion"]])
    interp = tflm.Interpreter.from_bytes(result["model_split"].read_bytes(), arena_size=1 << 21)
    q = imodel.quantize_input(x.reshape(-1, *imodel.input_shape))
    ref = imodel.predict_codes(x, num_samples=2, streams=imodel.streams(5))
    streams = imodel.streams(5)
    for s in range(2):
        w = [wi for wi, op in zip(imodel.sample_weights(streams), imodel.layers) if op.bayesian]
        got = np.stack([_tflm_codes(interp, q[n:n + 1], w) for n in range(len(x))])
        np.testing.assert_array_equal(got, ref[s])
    assert not np.array_equal(ref[0], ref[1])  # the sampler is live


def test_tflm_runs_model_tflite_with_its_sampling_ops(exported, images, tmp_path):
    """model.tflite, QBNN_SAMPLE ops in the graph (OHWI filters for "all"), in real TFLM (QBNN_TFLM_TEST_BIN)."""
    from tflm_bin import run_in_graph

    _, _, result = exported
    x = np.concatenate([images["mnist"][0], images["fashion"]])
    got, ref, arena = run_in_graph(result["model"], result["integer_model"], x, 30, 9, tmp_path)
    np.testing.assert_array_equal(got, ref)
    assert not np.array_equal(ref[0], ref[1]) and arena > 0


def test_export_loads_back_and_rebuilds_both_files(exported):
    _, _, result = exported
    m = artifacts.load_exported(result["model"].parent)
    assert [op.kind for op in m.ops] == [op.kind for op in result["integer_model"].ops]
    x = np.random.default_rng(0).integers(0, 256, size=(3, 784)).astype(np.uint8)
    np.testing.assert_array_equal(m.predict_codes(x, num_samples=2), result["integer_model"].predict_codes(x, num_samples=2))


def test_litert_runs_the_split_models(exported, images):
    """LiteRT (the wheel's reference kernels, built with single rounding) runs the files and predicts as the
    reference within 2 softmax codes; TFLM, the target, is bit-exact above."""
    interpreter = pytest.importorskip("ai_edge_litert.interpreter")
    _, _, result = exported
    imodel = result["integer_model"]
    lt = interpreter.Interpreter(model_content=result["model_split"].read_bytes(),
                                 experimental_op_resolver_type=interpreter.OpResolverType.BUILTIN_REF)
    lt.allocate_tensors()
    details = sorted(lt.get_input_details(), key=lambda d: d["index"])
    x = images["mnist"][0]
    q = imodel.quantize_input(x.reshape(-1, *imodel.input_shape))
    w = imodel.sample_weights(imodel.streams(5))
    ref = imodel.forward(q, w)
    got = []
    for n in range(len(x)):
        lt.set_tensor(details[0]["index"], q[n:n + 1])
        for d, wl in zip(details[1:], [wi for wi, op in zip(w, imodel.layers) if op.bayesian]):
            lt.set_tensor(d["index"], wl)
        lt.invoke()
        got.append(lt.get_tensor(lt.get_output_details()[0]["index"])[0])
    # within 2 softmax codes everywhere (1 measured), so the argmax agrees wherever the reference's top two are
    # more than 4 codes apart (the briefly trained "all" model's often are not: an agreement rate would be a coin)
    got, ref = np.stack(got).astype(np.int32), np.asarray(ref, np.int32)
    assert np.max(np.abs(got - ref)) <= 2
    top = np.sort(ref, axis=-1)
    clear = top[:, -1] - top[:, -2] > 4
    np.testing.assert_array_equal(np.argmax(got[clear], -1), np.argmax(ref[clear], -1))


FIRMWARE = os.path.join(os.path.dirname(convert.__file__), "firmware")


def _make(*args):
    return subprocess.run(["make", "-s", "-C", FIRMWARE, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def c_gen(exported, images, tmp_path_factory):
    """The exported LeNet as C (model_data + test vectors on real MNIST, Ambiguous-MNIST and Fashion-MNIST test
    images, 6 MC samples each)."""
    from tflite_export import c_source

    bayesian, _, result = exported
    imodel = artifacts.load_exported(result["model"].parent)  # what a user deploys: the files, read back
    gen = tmp_path_factory.mktemp(f"c_{bayesian}")
    c_source.write_model_sources(imodel, gen)
    from tfqbnn.datasets.test_images import sample_test_images

    x, sources = sample_test_images(per_set=2, seed=3)
    c_source.write_test_vectors(imodel, x, sources, gen, num_samples=6, seed=21)
    return bayesian, gen


def test_tflm_example_runs_the_export_bit_exactly(exported, c_gen, tmp_path):
    """firmware/tflm_example (real TFLM, QBNN_SAMPLE and the resolver of qbnn_tflm_ops.h) on the host against the
    test vectors; needs QBNN_TFLM_DIR (a TFLM tree) and QBNN_TFLM_LIB (its host microlite library)."""
    import shutil
    import sys

    tflm_dir, tflm_lib = os.environ.get("QBNN_TFLM_DIR"), os.environ.get("QBNN_TFLM_LIB")
    if not (tflm_dir and tflm_lib):
        pytest.skip("QBNN_TFLM_DIR / QBNN_TFLM_LIB not set (a TensorFlow Lite Micro tree and its host library)")
    _, _, result = exported
    _, gen = c_gen
    ex = tmp_path / "export"
    (ex / "c").mkdir(parents=True)
    shutil.copy(result["model"], ex / "model.tflite")
    for f in gen.glob("test_vectors.*"):
        shutil.copy(f, ex / "c")
    r = subprocess.run(["make", "-s", "-C", os.path.join(FIRMWARE, "tflm_example"), f"TFLM_DIR={tflm_dir}",
                        f"TFLM_LIB={tflm_lib}", f"EXPORT_DIR={ex}", f"BUILD={tmp_path / 'build'}",
                        f"PYTHON={sys.executable}", "run"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and "PASSED: 0 mismatches" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]


def test_c_runtime_bit_exact_on_host_under_asan_ubsan(c_gen, tmp_path):
    """Every kernel (REF / LUT / SIMD emulated), the MC counts, entropies, stream positions and the mean-code pass
    equal the numpy reference for the exported LeNet."""
    _, gen = c_gen
    r = _make(f"GEN_DIR={gen}", f"HOST_BUILD={tmp_path}", "host-test")
    assert r.returncode == 0 and "PASSED: 0 mismatches" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr
    assert len(re.findall(r"^ok image \d \((mnist|ambiguous|fashion)[^)]*\) kernel=auto", r.stdout, re.M)) == 6


@pytest.mark.skipif(bool(firmware_runner.missing_tools()), reason="no arm-none-eabi-gcc / qemu-system-arm")
@pytest.mark.parametrize("board", ["an385", "an386", "an500"])
def test_c_runtime_bit_exact_on_cortex_m(c_gen, board, tmp_path):
    _, gen = c_gen
    r = _make(f"BOARD={board}", f"GEN_DIR={gen}", f"BUILD={tmp_path}", "run")
    assert r.returncode == 0 and "PASSED: 0 mismatches" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    for src in ("mnist", "ambiguous", "fashion"):
        assert f"({src}" in r.stdout


def test_pfp_real_units_of_the_head_are_the_ops_own(lenets):
    """PFP works in real units: input scale x weight scale of each Bayesian dense op of the exported head must be
    the op's own accumulator scale (what its requantisation multiplies by), for every op PFP propagates through."""
    from tflite_export import modes

    _, _, result = lenets("head")
    m = artifacts.load_exported(result["model"].parent)
    k = modes.pfp_entry(m)
    assert k > 0 and len(m.layers) - k == 2  # the int4 prefix, then dense 84 and 10
    for op in m.layers[k:]:  # v1 layers: s_in * (1 / M) (their multiplier's scale); others: real_scales()
        own = op.real_scales()[0] if hasattr(op, "real_scales") else np.float32(op.input_scale) * op.weight_scale
        assert modes.input_scale_f32(op) * modes.weight_scale_f32(op) == np.float32(own)
