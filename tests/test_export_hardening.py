"""Issue 10, export side: models whose integer version would differ from Keras are rejected, export
artifacts are hashed and cross-checked by `load_exported`, and QBNN_SAMPLE options cannot make the
reader allocate before the shapes are checked. Untrained tiny models: fast, no data files needed."""

import hashlib
import json
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from tflite_export import artifacts, c_source, convert, tflite_io
from tfqbnn.layers import DenseVariational

ROOT = Path(__file__).resolve().parents[1]


def _tiny(quantization="jq4", sample_at_inference=True, softmax_axis=-1, hidden=(12,), input_dim=32):
    layers = [keras.Input((input_dim,))]
    for units, act in [(u, "softplus") for u in hidden] + [(10, None)]:
        layers.append(DenseVariational(units, activation=act, quantization=quantization, seed=3,
                                       sample_at_inference=sample_at_inference))
    layers.append(keras.layers.Softmax(axis=softmax_axis))
    return keras.Sequential(layers)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    x = np.random.default_rng(0).random((64, 32)).astype(np.float32)
    convert.export_all(_tiny(), out, weights="int4", seed=7, calibration_x=x)
    return out


def _copy(export_dir, tmp_path, name="copy"):
    dst = tmp_path / name
    shutil.copytree(export_dir, dst)
    return dst


# --- 3. models the integer engine would run differently from Keras -------------------------------------------


def test_softmax_over_the_batch_axis_is_rejected():
    model = _tiny(softmax_axis=0)
    with pytest.raises(ValueError, match=r"layer 'softmax\w*'.*axis=0") as err:
        convert.check_model(model, "int4")
    assert "\n" not in str(err.value)
    convert.check_model(_tiny(softmax_axis=1), "int4")  # the class axis of a 2D output: same as -1


def test_sample_at_inference_false_is_rejected():
    model = _tiny(sample_at_inference=False)
    with pytest.raises(ValueError, match=r"layer 'dense_variational\w*'.*sample_at_inference=False") as err:
        convert.check_model(model, "int4")
    assert "\n" not in str(err.value)


# --- 1. hashes and cross-checks -----------------------------------------------------------------------------


def test_manifest_holds_sha256_of_every_written_file(export_dir):
    man = json.loads((export_dir / "manifest.json").read_text())
    files = man["files"]
    assert set(files) == {"model.tflite", "model_split.tflite"}
    for name, entry in files.items():
        data = (export_dir / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def test_extra_writer_files_are_hashed_and_user_files_left_alone(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")

    def writer(imodel, manifest, d):
        (Path(d) / "c").mkdir()
        (Path(d) / "c" / "model_data.h").write_text("/* generated */\n")

    x = np.random.default_rng(0).random((16, 32)).astype(np.float32)
    convert.export_all(_tiny(), out, calibration_x=x, extra_writers=[writer])
    files = json.loads((out / "manifest.json").read_text())["files"]
    assert files["c/model_data.h"]["sha256"] == hashlib.sha256(b"/* generated */\n").hexdigest()
    assert "notes.txt" not in files and (out / "notes.txt").read_text() == "mine"
    artifacts.load_exported(out)
    (out / "c" / "model_data.h").write_text("/* edited */\n")
    with pytest.raises(ValueError, match=r"c/model_data.h: SHA-256"):
        artifacts.load_exported(out)


def _flip_outcomes(export_dir, tmp_path, flips, seed, rehash=False):
    """Load `flips` copies of model.tflite with one random bit flipped; returns how many loaded."""
    d = _copy(export_dir, tmp_path, f"flips{int(rehash)}")
    original = (export_dir / "model.tflite").read_bytes()
    man = json.loads((export_dir / "manifest.json").read_text())
    rng = np.random.default_rng(seed)
    loaded, messages = 0, set()
    for _ in range(flips):
        data = bytearray(original)
        bit = int(rng.integers(len(data) * 8))
        data[bit // 8] ^= 1 << (bit % 8)
        (d / "model.tflite").write_bytes(bytes(data))
        if rehash and "files" in man:  # an editor that re-hashes: the cross-checks alone must catch it
            man["files"]["model.tflite"]["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
            (d / "manifest.json").write_text(json.dumps(man))
        try:
            artifacts.load_exported(d)
            loaded += 1
        except ValueError as err:
            assert "\n" not in str(err), str(err)
            messages.add(str(err).split(":")[0])
    return loaded, messages


def test_bit_flips_of_model_tflite_never_load(export_dir, tmp_path):
    loaded, messages = _flip_outcomes(export_dir, tmp_path, 100, seed=1)
    assert loaded == 0
    assert messages == {str(tmp_path / "flips0" / "model.tflite")}  # the error names the file


def test_bit_flips_are_caught_by_the_cross_checks_alone(export_dir, tmp_path):
    loaded, _ = _flip_outcomes(export_dir, tmp_path, 100, seed=2, rehash=True)
    assert loaded == 0


def _tamper(export_dir, tmp_path, edit):
    d = _copy(export_dir, tmp_path, "tampered")
    man = json.loads((d / "manifest.json").read_text())
    edit(man)
    (d / "manifest.json").write_text(json.dumps(man))
    return d


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["layers"][0]["sigma_q"].__setitem__(3, m["layers"][0]["sigma_q"][3] + 1), r"sigma_q"),
    (lambda m: m["layers"][0]["softplus_lut"].__setitem__(200, m["layers"][0]["softplus_lut"][200] - 1),
     r"softplus_lut"),
    (lambda m: m["layers"][0].__setitem__("activation", "relu"), r"activation"),
    (lambda m: m["layers"].reverse(), r"layer"),
    (lambda m: m["layers"].pop(), r"layer"),
    (lambda m: m["layers"][1].__setitem__("name", "other"), r"name"),
    (lambda m: m["layers"][0].__setitem__("cols", 31), r"shape|cols"),
    (lambda m: m["layers"][0].__setitem__("output_scale", m["layers"][0]["output_scale"] * 1.001), r"scale"),
    (lambda m: m["layers"][1].__setitem__("input_zero_point", 3), r"zero_point"),
    (lambda m: m["layers"][0]["stored_tensors"][0].__setitem__("sha256", "0" * 64), r"stored"),
    (lambda m: m.__setitem__("default_seed", 8), r"default_seed"),
    (lambda m: m["softmax"].__setitem__("input_multiplier", 1), r"softmax"),
    (lambda m: m.pop("files"), r"files"),
    (lambda m: m["layers"][0].__setitem__("output_scale", "abc"), r"malformed"),  # wrong JSON types
    (lambda m: m["layers"].__setitem__(0, [1, 2]), r"malformed"),
    (lambda m: m.__setitem__("softmax", None), r"softmax"),
])
def test_manifest_edits_are_caught_against_model_tflite(export_dir, tmp_path, edit, message):
    d = _tamper(export_dir, tmp_path, edit)
    with pytest.raises(ValueError, match=message) as err:
        artifacts.load_exported(d)
    assert "\n" not in str(err.value) and "manifest.json" in str(err.value)


def test_untouched_export_loads_and_matches_the_exporter(export_dir):
    m = artifacts.load_exported(export_dir)
    x = np.random.default_rng(0).integers(0, 256, size=(3, 32)).astype(np.uint8)
    assert m.predict_codes(x, num_samples=2).shape == (2, 3, 10)


# --- 2. QBNN_SAMPLE options are checked before anything is allocated -----------------------------------------

_RSS_PROBE = textwrap.dedent("""
    import json, resource, sys
    from tflite_export import tflite_io
    tflite_io._schema()  # import TensorFlow's schema module first: measure only the reader
    data = open(sys.argv[1], "rb").read()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        tflite_io.read_qbnn_layers(data)
        kind, msg = "loaded", ""
    except Exception as err:
        kind, msg = type(err).__name__, str(err)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"error": kind, "message": msg, "growth_mib": (peak - base) / 1024}))
""")


def _patched_options(export_dir, what, nbytes):
    """model.tflite with the first QBNN_SAMPLE options' rows (or cols) patched to make rows*cols*2 = nbytes."""
    data = bytearray((export_dir / "model.tflite").read_bytes())
    at = data.index(tflite_io.OPTIONS_MAGIC)
    rows, cols = struct.unpack_from("<II", data, at + 12)
    if what == "rows":
        struct.pack_into("<I", data, at + 12, nbytes // 2 // cols)
    else:
        struct.pack_into("<I", data, at + 16, nbytes // 2 // rows)
    return bytes(data)


def _probe(path, limit_bytes=None):
    import os

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    pre = None
    if limit_bytes is not None:  # never let the old reader take the machine down
        import resource

        def pre():
            resource.setrlimit(resource.RLIMIT_DATA, (limit_bytes, limit_bytes))
    run = subprocess.run([sys.executable, "-c", _RSS_PROBE, str(path)], capture_output=True, text=True, env=env,
                         preexec_fn=pre, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("what", ["rows", "cols"])
def test_huge_rows_or_cols_in_options_fail_before_allocating(export_dir, tmp_path, what):
    path = tmp_path / "patched.tflite"
    path.write_bytes(_patched_options(export_dir, what, 8 << 30))  # one 4-byte field: 8 GiB of int16 codes
    result = _probe(path, limit_bytes=6 << 30)
    assert result["error"] == "ValueError", result
    assert what in result["message"] and "\n" not in result["message"]
    assert result["growth_mib"] < 64, result


@pytest.mark.parametrize("layout, sigma_bits", [(0, 3), (0, 6), (1, 4), (2, 6)])
@pytest.mark.parametrize("shape", [(3, 5), (4, 4), (1, 7)])
def test_stored_shapes_are_the_shapes_pack_writes(layout, sigma_bits, shape):
    from tflite_export import storage

    packed = storage.pack(np.zeros(shape, np.int16), np.zeros(shape, np.int16), layout, sigma_bits)
    assert [(n, a.dtype, a.shape) for n, a in packed] == storage.stored_shapes(layout, sigma_bits, shape)


@pytest.mark.parametrize("name", ["model.tflite", "model_split.tflite", "manifest.json"])
def test_export_refuses_to_replace_a_file_it_did_not_write(tmp_path, name):
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_bytes(b"the user's own file")
    x = np.random.default_rng(0).random((16, 32)).astype(np.float32)
    with pytest.raises(ValueError, match=rf"{out}: holds '{name}', which tflite_export did not write"):
        convert.export_all(_tiny(), out, calibration_x=x)
    assert (out / name).read_bytes() == b"the user's own file"


def test_export_replaces_its_own_earlier_export(export_dir, tmp_path):
    out = _copy(export_dir, tmp_path)
    x = np.random.default_rng(0).random((16, 32)).astype(np.float32)
    convert.export_all(_tiny(), out, weights="int4", seed=7, calibration_x=x)
    artifacts.load_exported(out)


# --- 4. manifests: exact seeds, known versions, each file once; C sources checked before they are written ------


def _conv_export(tmp_path_factory):
    from tfqbnn.layers import Conv2DVariational

    model = keras.Sequential([keras.Input((6, 6, 1)), Conv2DVariational(2, 3, activation="softplus", quantization="jq4", seed=1),
                              keras.layers.Flatten(), DenseVariational(10, quantization="jq4", seed=2), keras.layers.Softmax()])
    out = tmp_path_factory.mktemp("conv-export")
    convert.export_all(model, out, seed=7, calibration_x=np.random.default_rng(0).random((16, 6, 6, 1)))
    return out


@pytest.fixture(scope="module")
def conv_export_dir(tmp_path_factory):
    return _conv_export(tmp_path_factory)


@pytest.mark.parametrize("which", ["mlp", "conv"])
@pytest.mark.parametrize("seed", [7 + 2**32, 7 + 2**40, 7 - 2**32])
def test_default_seed_must_equal_the_models_exactly(export_dir, conv_export_dir, tmp_path, which, seed):
    d = _tamper(export_dir if which == "mlp" else conv_export_dir, tmp_path, lambda m: m.__setitem__("default_seed", seed))
    assert "kind" in json.loads((d / "manifest.json").read_text())["layers"][0] or which == "mlp"
    with pytest.raises(ValueError, match=rf"default_seed={seed}") as err:
        artifacts.load_exported(d)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("version", [99, 1, "2", None])
def test_unknown_manifest_versions_are_refused(export_dir, tmp_path, version):
    d = _tamper(export_dir, tmp_path, lambda m: m.__setitem__("version", version))
    with pytest.raises(ValueError, match=rf"manifest.json: version {version!r} .*supported"):
        artifacts.load_exported(d)


def test_each_file_is_listed_once(export_dir, tmp_path):
    def alias(m):
        for i in range(1, 200):
            m["files"]["./" * i + "model.tflite"] = m["files"]["model.tflite"]

    d = _tamper(export_dir, tmp_path, alias)
    with pytest.raises(ValueError, match=r"file entry '\./model.tflite' names model.tflite again") as err:
        artifacts.load_exported(d)
    assert "\n" not in str(err.value)
    d = _tamper(export_dir, tmp_path / "trailing-slash",
                lambda m: m["files"].__setitem__("model.tflite/", m["files"]["model.tflite"]))
    with pytest.raises(ValueError, match=r"again"):
        artifacts.load_exported(d)


def test_c_sources_check_everything_before_writing_anything(export_dir, tmp_path):
    images = np.zeros((2, 32), np.uint8)
    for kwargs in (dict(sources=["mnist", "no spaces allowed"]), dict(sources=["a", "b"], seed=2**32),
                   dict(sources=["a", "b"], seed=-1), dict(sources=["a", "b"], num_samples=70000)):
        g = tmp_path / f"gen{len(list(tmp_path.iterdir()))}"
        sources = kwargs.pop("sources")
        with pytest.raises(ValueError):
            c_source.generate(export_dir, g, images, sources, **kwargs)
        assert not g.exists()
