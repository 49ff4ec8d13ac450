"""Bounded resources and one-line errors: reprs of untrusted data, memory of every uncertainty method in S,
sample counts and quadrature orders, seeds, non-finite weights, and the arguments Keras users get wrong."""

import math
import subprocess
import sys
import textwrap
import tracemalloc

import keras
import numpy as np
import pytest

from tflite_export import convert
from tfqbnn import callbacks, models
from tfqbnn.layers import DenseVariational, QuantizedConv2D
from tfqbnn.propagation import predict_uncertainty
from tfqbnn.uncertainty import decompose, predict_mc


@pytest.fixture(scope="module")
def mlp():
    return models.mlp(hidden=(8,), quantization="jq4", seed=0)


def _x(n=2):
    return np.random.default_rng(0).random((n, 784)).astype(np.float32)


# --- the .pt reader ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["pid", "numel"])
def test_pt_reader_never_builds_the_repr_of_a_huge_record(field):
    from tfqbnn.datasets import ddu_pt
    from tfqbnn.datasets.errors import DatasetFileError

    big = "x" * 100_000
    refs = [big] * 2000  # its repr would be 200 MB
    pid = refs if field == "pid" else ("storage", ddu_pt._StorageType("FloatStorage"), "0", "cpu", refs)
    unpickler = ddu_pt._RestrictedUnpickler(b"", "bad.pt", None, "")
    tracemalloc.start()
    try:
        with pytest.raises(DatasetFileError) as e:
            unpickler.persistent_load(pid)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, f"{peak} bytes to refuse a record"
    assert len(str(e.value)) < 300 and str(e.value).startswith("bad.pt")


# --- memory and counts bounded in S -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["hybrid", "pfp"])
def test_uncertainty_memory_is_bounded_in_the_number_of_samples(method):
    code = textwrap.dedent(f"""
        import resource, numpy as np
        from tfqbnn import models, predict_uncertainty
        model = models.mlp(quantization="jq4", seed=0)
        x = np.zeros((1, 784), "float32")
        predict_uncertainty(model, x, method={method!r}, num_samples=2)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        u = predict_uncertainty(model, x, method={method!r}, num_samples=8000)
        assert u["mean_probs"].shape == (1, 10) and np.isfinite(u["epistemic"]).all()
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    grown_mb = int(out.stdout.split()[-1])
    assert grown_mb < 120, f"{method} (S=8000) grew RSS by {grown_mb} MB"


def test_streamed_decomposition_equals_the_whole_one(mlp):
    from tfqbnn.propagation import predict_probs

    x = _x(3)
    for method in ("mc", "hybrid", "pfp"):
        whole = decompose(predict_probs(mlp, x, method, num_samples=50, seed=3, max_samples_per_call=7))
        streamed = predict_uncertainty(mlp, x, method, num_samples=50, seed=3, max_samples_per_call=7)
        for k in ("mean_probs", "predictive_entropy", "aleatoric", "epistemic"):
            np.testing.assert_allclose(streamed[k], whole[k], rtol=1e-6, atol=1e-9, err_msg=f"{method} {k}")


@pytest.mark.parametrize("method", ["mc", "hybrid", "pfp"])
@pytest.mark.parametrize("s", [65537, 0, 2.5, True])
def test_sample_counts_are_bounded_as_the_runtime_bounds_them(mlp, method, s):
    with pytest.raises(ValueError, match=rf"num_samples.*1\.\.65536.*num_samples={s!r}"):
        predict_uncertainty(mlp, _x(1), method, num_samples=s)
    if method == "mc":
        with pytest.raises(ValueError, match=r"num_samples"):
            predict_mc(mlp, _x(1), num_samples=s)


@pytest.mark.parametrize("order", [0, -5, 10**6, 2.5])
def test_softplus_order_is_bounded(mlp, order):
    with pytest.raises(ValueError, match=rf"softplus_order.*received softplus_order={order!r}"):
        predict_uncertainty(mlp, _x(1), "pfp", num_samples=2, softplus_order=order)


# --- unclear errors and silent acceptance ---------------------------------------------------------------------


def _one_line(excinfo, *words):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize("method", ["mc", "hybrid", "pfp"])
def test_an_empty_batch_is_one_line(mlp, method):
    with pytest.raises(ValueError) as e:
        predict_uncertainty(mlp, _x(0), method, num_samples=2)
    _one_line(e, "`x`", "empty")


def test_hybrid_on_a_branching_model_is_one_line():
    inp = keras.Input((784,))
    a = DenseVariational(8, activation="softplus", seed=1)(inp)
    b = keras.layers.Dense(8)(inp)
    out = keras.layers.Softmax()(DenseVariational(10, seed=2)(keras.layers.Add()([a, b])))
    model = keras.Model(inp, out)
    for method in ("hybrid", "pfp"):
        with pytest.raises(ValueError) as e:
            predict_uncertainty(model, _x(1), method, num_samples=2)
        _one_line(e, method, "chain")


def test_lenet5_input_dim_is_checked():
    with pytest.raises(ValueError) as e:
        models.lenet5(input_dim=100)
    _one_line(e, "input_dim=100")


def test_quantized_conv_data_format_is_ours():
    with pytest.raises(ValueError) as e:
        QuantizedConv2D(4, 3, data_format="channels_first")
    _one_line(e, "data_format='channels_first'", "channels_last")


@pytest.mark.parametrize("kwargs, name", [(dict(warmup="0.5"), "warmup"), (dict(end=math.nan), "end"),
                                          (dict(end=math.inf), "end"), (dict(start=math.nan), "start"),
                                          (dict(tolerance="x"), "tolerance"), (dict(cycles=1.5), "cycles")])
def test_kl_annealing_arguments_are_checked(kwargs, name):
    with pytest.raises(ValueError) as e:
        callbacks.KLAnnealing(**kwargs)
    _one_line(e, f"{name}=")


def test_huge_seeds_are_one_line(mlp):
    with pytest.raises(ValueError) as e:
        DenseVariational(4, seed=2**70)
    _one_line(e, "seed=")
    with pytest.raises(ValueError) as e:
        predict_mc(mlp, _x(1), num_samples=2, seed=2**70)
    _one_line(e, "seed=")


def test_complex_input_is_refused(mlp):
    with pytest.raises(ValueError) as e:
        predict_mc(mlp, _x(1).astype(np.complex64) + 1j, num_samples=2)
    _one_line(e, "`x`", "complex")


def test_decompose_of_zero_samples_is_refused():
    with pytest.raises(ValueError) as e:
        decompose(np.zeros((0, 3, 10)))
    _one_line(e, "`probs`", "S")


@pytest.mark.parametrize("value", [math.nan, math.inf, 1e30])
def test_non_finite_or_huge_weights_are_refused_naming_the_layer(tmp_path, value):
    model = keras.Sequential([keras.Input((32,)), DenseVariational(12, activation="softplus", quantization="jq4", seed=3, name="first"),
                              DenseVariational(10, quantization="jq4", seed=4, name="second"), keras.layers.Softmax()])
    mu = model.get_layer("second").mu
    w = mu.numpy()
    w[2, 3] = value
    mu.assign(w)
    x = np.random.default_rng(0).random((8, 32)).astype(np.float32)
    with pytest.raises(ValueError) as e:
        convert.export_all(model, tmp_path / "out", calibration_x=x)
    _one_line(e, "'second'")
    assert not (tmp_path / "out").exists()
    if not math.isfinite(value):  # a saved model with NaN weights loads, and is refused when it predicts
        model.save(tmp_path / "m.keras")
        loaded = keras.saving.load_model(tmp_path / "m.keras")
        for method in ("mc", "hybrid", "pfp"):
            with pytest.raises(ValueError) as e:
                predict_uncertainty(loaded, x, method, num_samples=2)
            _one_line(e, "'second'", "non-finite")
