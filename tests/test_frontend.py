"""The Keras front end (`tflite_export.frontend`), the op-level manifest and its load-side cross-checks, and the
TFLite lowering of every converter, on small untrained models (no data files): every registration of
`frontend.converters()` from its own example (exported, run in pip TFLM and the C runtime bit-exactly with the
numpy reference, float-checked, every manifest field tamper-checked) and one network chaining the layer kinds;
refusals name the layer."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tflite_export import artifacts, convert, frontend, tflite_io
from every_kind import export_every_kind, export_registration
from tflm_bin import split_model_matches
from tfqbnn import layers as tl

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return export_every_kind(tmp_path_factory.mktemp("every_kind"))


def test_every_kind_maps_to_its_op(export_dir):
    _, _, result = export_dir
    imodel = result["integer_model"]
    got = [(op.kind, op.bayesian, getattr(op, "activation", None)) for op in imodel.ops]
    assert got == [("RESHAPE", False, None), ("CONV_2D", True, "relu"), ("DEPTHWISE_CONV_2D", False, "softplus"),
                   ("AVERAGE_POOL_2D", False, "linear"), ("DEPTHWISE_CONV_2D", True, "softplus"),
                   ("CONV_2D", False, "softplus"), ("MAX_POOL_2D", False, "linear"), ("RESHAPE", False, None),
                   ("FULLY_CONNECTED", False, "relu"), ("QBNN_FULLY_CONNECTED", True, "linear"),
                   ("SOFTMAX", False, None)]
    assert [op.index for op in imodel.bayesian_ops] == [0, 1, 2]
    ops = {op.name: op for op in imodel.layers}
    assert ops["qdw"].weights.shape == (1, 3, 3, 6) and ops["qdw"].weights.scales.size == 6  # 1HWO, per channel
    assert ops["qconv"].weights.scales.size == 1 and ops["qconv"].weights.bits == 4
    assert ops["bdw"].weights.shape == (1, 2, 2, 6) and ops["bdw"].strides == (2, 2)
    assert ops["avg"].strides == (1, 1) and ops["avg"].padding == "same"


REGISTERED = list(frontend.converters())
_EXPORTS = {}


def _registration(cls, tmp_path_factory):
    """export_registration(cls) once per session."""
    if cls not in _EXPORTS:
        _EXPORTS[cls] = export_registration(cls, tmp_path_factory.mktemp(f"reg_{cls.__name__}"))
    return _EXPORTS[cls]


@pytest.mark.parametrize("cls", REGISTERED, ids=[c.__name__ for c in REGISTERED])
def test_every_registration_exports_and_runs_in_tflm_bit_exactly(cls, tmp_path_factory):
    """Each registered layer kind, from its registration's example, exports (manifest, model.tflite, split model),
    runs in pip TFLM bit-exactly with the numpy reference and loads back to the same integer model."""
    out, model, names, result = _registration(cls, tmp_path_factory)
    imodel = result["integer_model"]
    assert {op.name for op in imodel.layers} >= set(names)  # every example layer became an op
    shape = tuple(model.inputs[0].shape[1:])
    x = np.random.default_rng(1).integers(0, 256, size=(12, *shape)).astype(np.uint8)
    ref = split_model_matches(result, x)
    assert not np.array_equal(ref[0], ref[1])  # the samples differ: the comparison is not of constants
    back = artifacts.load_exported(out)
    np.testing.assert_array_equal(back.predict_codes(x, num_samples=2), imodel.predict_codes(x, num_samples=2))


@pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")
@pytest.mark.parametrize("cls", REGISTERED, ids=[c.__name__ for c in REGISTERED])
def test_every_registration_is_bit_exact_in_the_c_runtime(cls, tmp_path_factory):
    """The same export, generated to C (tfqbnn-c-sources' path) and run on the host under ASan / UBSan: MC counts,
    entropies, stream positions and the mean-code pass of every C kernel equal the numpy reference."""
    from tflite_export import c_source, firmware_runner

    out, model, _, _ = _registration(cls, tmp_path_factory)
    shape = tuple(model.inputs[0].shape[1:])
    images = np.random.default_rng(2).integers(0, 256, size=(3, int(np.prod(shape)))).astype(np.uint8)
    if "c" not in _EXPORTS:  # one GEN_DIR and host build for all: the runtime's objects are compiled once
        _EXPORTS["c"] = tmp_path_factory.mktemp("gen"), tmp_path_factory.mktemp("host")
    gen, build = _EXPORTS["c"]
    c_source.generate(out, gen, images, ["r0", "r1", "r2"], num_samples=4)
    r = subprocess.run(["make", "-s", "-C", firmware_runner.FIRMWARE_DIR, f"GEN_DIR={gen}", f"HOST_BUILD={build}",
                        "host-test"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "PASSED: 0 mismatches" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr
    for kernel in ("ref", "lut", "simd"):
        assert f"ok image 1 (r1) kernel={kernel}" in r.stdout


def _leaves(value, path=()):
    """Paths to the editable leaves of a manifest entry (the first item of each list)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list):
        if value:
            yield from _leaves(value[0], (*path, 0))
    elif value is not None:
        yield path


def _edited(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 1.5 + 0.125
    return value + "x"


@pytest.mark.parametrize("cls", REGISTERED, ids=[c.__name__ for c in REGISTERED])
def test_every_manifest_field_of_every_registration_is_checked(cls, tmp_path_factory, tmp_path):
    """Any single edit of any field of the manifest entries of a registration's ops (names aside) makes
    load_exported refuse the export in one line: the manifest is cross-checked against model.tflite field by field."""
    out, _, names, _ = _registration(cls, tmp_path_factory)
    man = json.loads((out / "manifest.json").read_text())
    edits = 0
    for li, entry in enumerate(man["layers"]):
        if entry["name"] not in names:
            continue
        for path in _leaves(entry):
            if path[-1] == "name" or path[0] == "sigma_range":  # the Keras quantizer's range: descriptive
                continue
            d = tmp_path / f"e{edits}"
            shutil.copytree(out, d)
            bad = json.loads(json.dumps(man))
            node = bad["layers"][li]
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = _edited(node[path[-1]])
            (d / "manifest.json").write_text(json.dumps(bad))
            with pytest.raises(ValueError) as err:
                artifacts.load_exported(d)
            assert "\n" not in str(err.value) and "manifest.json" in str(err.value), (path, str(err.value))
            shutil.rmtree(d)
            edits += 1
    assert edits >= (1 if names else 0)


@pytest.mark.parametrize("cls", [c for c in REGISTERED if not frontend.converters()[c].weighted],
                         ids=lambda c: c.__name__)
def test_deterministic_registrations_match_their_float_keras_layers(cls, tmp_path_factory):
    """A weightless layer kind's integer ops give Keras' float outputs (of the dequantized int8 input) within one
    rounding (half an output code): an independent float reference for each such registration."""
    _, model, names, result = _registration(cls, tmp_path_factory)
    if not names:
        pytest.skip(f"{cls.__name__} is the model's own last layer (checked in every export)")
    imodel = result["integer_model"]
    shape = tuple(model.inputs[0].shape[1:])
    x = np.random.default_rng(3).integers(0, 256, size=(16, *shape)).astype(np.uint8)
    q = imodel.quantize_input(x)
    quant = imodel.quants()[0]
    real = (q.astype(np.float64) - quant[1]) * np.float64(np.float32(quant[0]))
    want = keras.Sequential(model.layers[:len(names)])(real.astype(np.float32)).numpy().astype(np.float64)
    k = [i for i, op in enumerate(imodel.layers) if op.name == names[-1]][-1] + 1
    got = imodel._run(q, [None] * k, 0, k)
    out_quant = imodel.quants()[k]
    err = np.abs(got.astype(np.float64) - (want / np.float64(np.float32(out_quant[0])) + out_quant[1]))
    assert got.shape == want.shape and err.max() <= 0.5 + 1e-3, err.max()
    assert np.unique(got).size > 8


def test_qat_codes_reproduce_the_keras_fake_quantized_kernels(export_dir):
    _, model, result = export_dir
    ops = {op.name: op for op in result["integer_model"].layers}
    for layer in model.layers:
        if not hasattr(layer, "kernel_bits"):
            continue
        w = ops[layer.name].weights
        s = np.asarray(w.scales, np.float64)
        axis = w.channel_axis
        shape = [1] * w.codes.ndim
        shape[axis] = -1
        deq = w.codes * (s.reshape(shape) if s.size > 1 else s)
        fq = np.asarray(layer.quantized_kernel(), np.float64)
        ir = {2: lambda k: k.T, 4: (lambda k: k.reshape(1, k.shape[0], k.shape[1], -1)) if "dw" in layer.name
              else (lambda k: np.transpose(k, (3, 0, 1, 2)))}[fq.ndim](fq)
        np.testing.assert_allclose(deq, ir, rtol=2e-6, atol=1e-7, err_msg=layer.name)


def test_tflm_runs_the_split_model_of_every_kind_bit_exactly(export_dir):
    _, _, result = export_dir
    x = np.random.default_rng(1).integers(0, 256, size=(25, 64)).astype(np.uint8)
    ref = split_model_matches(result, x)
    assert not np.array_equal(ref[0], ref[1])


def test_model_tflite_holds_v2_qbnn_sample_ops(export_dir):
    _, _, result = export_dir
    read = tflite_io.read_qbnn_layers(result["model"])
    assert [(r["index"], r["filter_format"], r["filter_shape"]) for r in read] == [
        (0, tflite_io.FILTER_OHWI, (3, 3, 3, 1)), (1, tflite_io.FILTER_1HWO, (1, 2, 2, 6)),
        (2, tflite_io.FILTER_FC, (6, 12))]
    ops = [op for op in result["integer_model"].layers if op.bayesian]
    for r, op in zip(read, ops):
        mu = op.weights.mu_codes if hasattr(op, "weights") else op.mu_codes
        np.testing.assert_array_equal(r["mu_codes"], mu)


def test_manifest_entries_describe_every_op(export_dir):
    out, _, result = export_dir
    man = json.loads((out / "manifest.json").read_text())
    kinds = [e.get("kind", "QBNN_FULLY_CONNECTED") for e in man["layers"]]
    assert kinds == [op.kind for op in result["integer_model"].layers]
    by = {e["name"]: e for e in man["layers"]}
    assert by["qdw"]["input_shape"] == [8, 8, 3] and by["qdw"]["output_shape"] == [6, 6, 6]
    assert by["qdw"]["stored_bytes"] == 27 and by["qdw"]["float32_mu_sigma_bytes"] == 4 * 54  # 54 int4 codes
    assert by["bconv"]["stored_bytes"] == 27 and by["bconv"]["table_bytes"] == 64  # I4_FUSED, SIGMA_Q[16]
    assert by["qconv"]["table_bytes"] == 256  # its SoftPlus LUT
    assert by["max"]["stored_bytes"] == 0 and by["flat"]["output_shape"] == [4]
    assert man["input"]["shape"] == [1, 64]
    assert man["totals"]["stored_weight_bytes"] == sum(e["stored_bytes"] for e in man["layers"])


def test_export_loads_back_bit_identically(export_dir):
    out, _, result = export_dir
    m = artifacts.load_exported(out)
    x = np.random.default_rng(3).integers(0, 256, size=(4, 64)).astype(np.uint8)
    np.testing.assert_array_equal(m.predict_codes(x, num_samples=2), result["integer_model"].predict_codes(x, num_samples=2))


def _tampered(out, tmp_path, edit):
    d = tmp_path / "tampered"
    shutil.copytree(out, d)
    man = json.loads((d / "manifest.json").read_text())
    edit(man)
    (d / "manifest.json").write_text(json.dumps(man))
    return d


def _layer(man, name):
    return next(e for e in man["layers"] if e["name"] == name)


@pytest.mark.parametrize("edit, message", [
    (lambda m: _layer(m, "bconv")["sigma_q"].__setitem__(3, 5), r"layer 'bconv': operator \d+ .*QBNN_SAMPLE option sigma_q"),
    (lambda m: _layer(m, "qdw")["filter_scales"].__setitem__(1, 0.5), r"'qdw': multipliers"),
    (lambda m: _layer(m, "qdw").__setitem__("activation", "relu"), r"'qdw'"),
    (lambda m: _layer(m, "qconv")["softplus_lut"].__setitem__(100, 0), r"'qconv': softplus_lut"),
    (lambda m: _layer(m, "qconv").__setitem__("padding", "same"), r"'qconv': (output_shape|.*shape)"),
    (lambda m: _layer(m, "avg").__setitem__("strides", [2, 2]), r"'avg': output_shape"),
    (lambda m: _layer(m, "max").__setitem__("kind", "AVERAGE_POOL_2D"), r"operator|'max'"),
    (lambda m: _layer(m, "flat").__setitem__("kind", "GATHER"), r"'flat': unknown op kind 'GATHER'"),
    (lambda m: _layer(m, "bdw")["stored_tensors"][0].__setitem__("sha256", "0" * 64), r"'bdw': stored_tensors"),
    (lambda m: _layer(m, "qdense").__setitem__("weight_bits", 4), r"layer 'qdense': malformed.*int4 codes"),
    (lambda m: _layer(m, "qdense").__setitem__("output", {"scale": 0.5, "zero_point": 0}), r"'qdense': multipliers"),
    (lambda m: m["layers"].pop(3), r"layer|tensor|operator"),
    (lambda m: m["layers"].reverse(), r"layer|input"),
    (lambda m: m.__setitem__("default_seed", 12), r"operator"),
    (lambda m: m["softmax"].__setitem__("diff_min", 0), r"softmax"),
    (lambda m: m["input"].__setitem__("shape", [1, 8, 8, 1]), r"layer 'image': input_shape"),
    (lambda m: _layer(m, "bdw").__setitem__("bias", [1, 2]), r"'bdw'"),
])
def test_manifest_edits_are_caught(export_dir, tmp_path, edit, message):
    out, _, _ = export_dir
    with pytest.raises(ValueError, match=message) as err:
        artifacts.load_exported(_tampered(out, tmp_path, edit))
    assert "\n" not in str(err.value) and "manifest.json" in str(err.value)


def test_bit_flips_of_model_tflite_never_load(export_dir, tmp_path):
    """With the file hashes re-written (an editor that re-hashes), the cross-checks alone reject every flip."""
    import hashlib

    out, _, _ = export_dir
    d = tmp_path / "flips"
    shutil.copytree(out, d)
    original = (out / "model.tflite").read_bytes()
    man = json.loads((out / "manifest.json").read_text())
    rng = np.random.default_rng(4)
    for _ in range(60):
        data = bytearray(original)
        bit = int(rng.integers(len(data) * 8))
        data[bit // 8] ^= 1 << (bit % 8)
        (d / "model.tflite").write_bytes(bytes(data))
        man["files"]["model.tflite"]["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
        (d / "manifest.json").write_text(json.dumps(man))
        with pytest.raises(ValueError) as err:
            artifacts.load_exported(d)
        assert "\n" not in str(err.value)


# --- refusals: one line, naming the layer ----------------------------------------------------------------------


def _seq(*layers, inp=(8, 8, 1)):
    return keras.Sequential([keras.Input(inp), *layers])


@pytest.mark.parametrize("make, message", [
    (lambda: _seq(tl.QuantizedConv2D(2, 3, name="c", use_bias=True), keras.layers.Flatten(),
                  tl.DenseVariational(3, quantization="jq4"), keras.layers.Softmax()), r"layer 'c': biases"),
    (lambda: _seq(tl.QuantizedConv2D(2, 3, dilation_rate=2, use_bias=False, name="c"), keras.layers.Flatten(),
                  tl.DenseVariational(3, quantization="jq4"), keras.layers.Softmax()), r"layer 'c': dilation_rate"),
    (lambda: _seq(keras.layers.Conv2D(2, 3, name="c"), keras.layers.Flatten(), keras.layers.Softmax()),
     r"layer 'c': Conv2D is not supported \(use QuantizedConv2D"),
    (lambda: _seq(keras.layers.Flatten(), keras.layers.Softmax(name="s0"), tl.DenseVariational(3, quantization="jq4"),
                  keras.layers.Softmax()), r"layer 's0': Softmax is supported only as the model's last layer"),
    (lambda: _seq(keras.Sequential([keras.layers.Flatten()], name="inner"),
                  tl.DenseVariational(3, quantization="jq4"), keras.layers.Softmax()), r"layer 'inner': nested models"),
    (lambda: _seq(keras.layers.Flatten(), tl.DenseVariational(3, quantization="jq4", activation="relu", name="d"),
                  keras.layers.Softmax()), r"layer 'd': the last weighted layer must have no activation"),
    (lambda: _seq(tl.Conv2DVariational(2, 3, quantization="spq4", name="c"), keras.layers.Flatten(),
                  tl.DenseVariational(3, quantization="jq4"), keras.layers.Softmax()), r"layer 'c'.*only JQ"),
    (lambda: _seq(tl.QuantizedConv2D(2, 3, activation="tanh", use_bias=False, name="c"), keras.layers.Flatten(),
                  tl.DenseVariational(3, quantization="jq4"), keras.layers.Softmax()), r"layer 'c': activation 'tanh'"),
    (lambda: _seq(keras.layers.Dropout(0.1, name="drop"), keras.layers.Flatten(),
                  tl.DenseVariational(3, quantization="jq4"), keras.layers.Softmax()), r"layer 'drop': Dropout"),
    (lambda: _seq(keras.layers.Flatten(), keras.layers.Softmax()), r"no weighted layer"),
])
def test_unsupported_layers_are_refused_in_one_line(make, message):
    model = make()
    with pytest.raises(ValueError, match=message) as err:
        frontend.integer_ops(model, "int4")
    assert "\n" not in str(err.value)


def test_export_needs_calibration_images(tmp_path):
    model = _seq(keras.layers.Flatten(), tl.DenseVariational(3, quantization="jq4"), keras.layers.Softmax())
    with pytest.raises(ValueError, match="calibration_x is required"):
        convert.export_all(model, tmp_path / "out")
    with pytest.raises(ValueError, match=r"calibration_x rows have 10 values; the model's input \[8, 8, 1\] has 64"):
        convert.export_all(model, tmp_path / "out", calibration_x=np.zeros((2, 10), np.float32))


def test_tflite_export_does_not_import_tfqbnn_datasets():
    code = ("import sys, tflite_export, pkgutil, importlib\n"
            "for m in pkgutil.walk_packages(tflite_export.__path__, 'tflite_export.'):\n"
            "    importlib.import_module(m.name)\n"
            "print(sorted(n for n in sys.modules if n.startswith('tfqbnn.datasets')))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
