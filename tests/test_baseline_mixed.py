"""The HGQ2 mixed-precision baseline: bit and byte bookkeeping, its Pareto rows, and (with hgq2 installed) that
the counted widths hold the weights the model really uses."""

import importlib.util
import json
import math

import numpy as np
import pytest

from tfqbnn import pareto
from tfqbnn.baselines import mixed_precision as mp
from tfqbnn.evaluation import metrics_from_probs

HAVE_HGQ = importlib.util.find_spec("hgq") is not None
needs_hgq = pytest.mark.skipif(not HAVE_HGQ, reason="hgq2 is an optional extra (pip install 'tfqbnn[baselines]')")


def test_weight_bits_adds_a_sign_bit_to_live_weights_and_nothing_for_pruned_ones():
    # b rounds half to even like HGQ2: 1.4 -> 1, 2.6 -> 3, 2.5 -> 2; b <= 0 stores nothing
    b = np.array([[0.0, 1.4, 3.0], [2.6, -1.0, 8.0], [2.5, 0.4, 1.0]])
    assert mp.weight_bits(b) == (1 + 1) + (3 + 1) + (3 + 1) + (8 + 1) + (2 + 1) + (1 + 1)
    assert mp.weight_bits(b, k=0) == 1 + 3 + 3 + 8 + 2 + 1


def test_index_bytes():
    assert mp.index_bytes(100, 1) == 0
    assert mp.index_bytes(100, 2) == 13  # 100 bits
    assert mp.index_bytes(100, 5) == 38  # 3 bits each
    with pytest.raises(ValueError, match="num_formats=0"):
        mp.index_bytes(10, 0)


def test_entropy_bytes():
    assert mp.entropy_bytes(np.zeros(100)) == 0
    assert mp.entropy_bytes(np.tile([0.5, -0.5], 8)) == 2  # 16 values, 1 bit each
    assert mp.entropy_bytes([0.0, 0.0, 1.0, 2.0] * 4) == 3  # 1.5 bits each: 24 bits


def test_layer_report_counts_formats_widths_and_bytes_of_one_layer():
    b = np.array([[0, 3, 3], [3, 5, 0]], float)
    i = np.array([[0, 0, 1], [0, 1, 1]], float)
    r = mp.layer_report("l", b, i)
    assert r["bits"] == 4 + 4 + 4 + 6
    assert r["stored_bytes"] == 3
    assert r["pruned"] == 2
    assert r["formats"] == 4  # (3, 0), (3, 1), (5, 1) and pruned
    assert r["index_bytes"] == 2  # 6 weights x 2 bits
    assert r["width_histogram"] == {"0": 2, "4": 3, "6": 1}
    assert "entropy_bytes" not in r
    assert mp.layer_report("l", b, i, values=np.array([0, 1, 1, 2, 2, 2]))["entropy_bytes"] == 2  # 8.75 bits


def _metrics(seed=0, n=50):
    rng = np.random.default_rng(seed)
    probs = {name: rng.dirichlet(np.ones(10), size=n)[None].astype(np.float32)
             for name in ("mnist", "ambiguous", "ood")}
    return metrics_from_probs(probs, rng.integers(0, 10, n))[0]


def test_baseline_row_has_the_pareto_columns_and_per_layer_byte_rounding():
    layers = [mp.layer_report("a", np.full(3, 2.0), 0), mp.layer_report("b", np.full(3, 2.0), 0)]
    assert [r["bits"] for r in layers] == [9, 9]
    row = mp.baseline_row(1e-6, 2, _metrics(), layers, seconds=1.5)
    assert set(pareto.COLUMNS) <= set(row)
    assert row["kind"] == "deterministic" and row["point"] == "hgq-1e-06" and row["seed"] == 2
    assert row["stored_bytes"] == 4  # each layer rounds up to whole bytes: 2 + 2, not ceil(18 / 8)
    assert row["bits"] == {"a": 3.0, "b": 3.0}
    # one softmax pass: every MI is 0, so the MI AUROC is the chance value
    assert row["auroc_epistemic"] == 0.5 and row["mi_defined"] is False
    assert row["auroc_entropy_ood"] == _metrics()["auroc_entropy_ood"]
    json.dumps(row, allow_nan=False)
    assert pareto.summarise([row, {**row, "seed": 3}])[0]["kind"] == "deterministic"


def test_run_says_how_to_install_hgq2_when_missing(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_hgq(name, *args, **kwargs):
        if name == "hgq" or name.startswith("hgq."):
            raise ImportError("No module named 'hgq'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_hgq)
    with pytest.raises(ImportError, match=r"pip install 'tfqbnn\[baselines\]'"):
        mp.hgq_model("mlp", 1e-6)


@needs_hgq
@pytest.mark.parametrize("arch", mp.ARCHS)
def test_counted_widths_hold_the_quantized_weights(arch):
    import keras

    from tfqbnn import models

    beta = 1e-6
    model = mp.hgq_model(arch, beta, seed=0)
    model(np.zeros((1, 784), np.float32))
    det = models.deterministic_model(arch, seed=0)
    assert sum(math.prod(l.kernel.shape) for l in mp.quantized_layers(model)) == det.count_params()
    rng = np.random.default_rng(0)
    for layer in mp.quantized_layers(model):
        q = layer.kq.quantizer
        # spread the formats: magnitude bits 0..6, integer bits -2..1, weights up to +-1.5 (some saturate)
        q._b.assign(rng.integers(0, 7, q._b.shape).astype("float32"))
        q._i.assign(rng.integers(-2, 2, q._i.shape).astype("float32"))
        layer.kernel.assign(rng.uniform(-1.5, 1.5, layer.kernel.shape).astype("float32"))
    expected_penalty = beta * sum(float(np.sum(l.kq.quantizer._b)) for l in mp.quantized_layers(model))
    model(np.zeros((1, 784), np.float32))
    assert float(sum(keras.ops.convert_to_numpy(x) for x in model.losses)) == pytest.approx(expected_penalty, rel=1e-5)
    report = mp.model_report(model)
    for layer, r in zip(mp.quantized_layers(model), report):
        b, i, k, w = mp.layer_formats(layer)
        assert np.all(w[b == 0] == 0)
        live = b > 0
        codes = w[live] * 2.0 ** (b[live] - i[live])  # integer codes of b magnitude bits and a sign
        assert np.array_equal(codes, np.round(codes))
        assert np.all(np.abs(codes) <= 2.0 ** b[live] - 1)
        assert r["bits"] == int((b[live] + 1).sum())
        assert r["pruned"] == int((~live).sum())


def test_table_orders_points_by_mean_bytes_and_averages_seeds():
    small = [mp.layer_report("a", np.full(8, 1.0), 0)]  # 16 bits: 2 B
    big = [mp.layer_report("a", np.full(8, 3.0), 0)]  # 32 bits: 4 B
    rows = [mp.baseline_row(1e-5, 0, _metrics(0), small), mp.baseline_row(1e-7, 0, _metrics(1), big),
            mp.baseline_row(1e-7, 1, _metrics(2), big)]
    lines = mp.table_markdown(rows).splitlines()
    assert lines[2].startswith("| hgq-1e-07 | 2 | 4 | 0 | - | 0.0 |") and lines[3].startswith("| hgq-1e-05 | 1 | 2 |")
    acc = np.array([rows[1]["accuracy"], rows[2]["accuracy"]]) * 100
    assert f"| {acc.mean():.2f} ± {acc.std(ddof=1):.2f} |" in lines[2]


def _tiny_data(n=256):
    import types

    rng = np.random.default_rng(0)
    x = lambda m: rng.uniform(0, 1, (m, 784)).astype(np.float32)  # noqa: E731
    return types.SimpleNamespace(x_train=x(n), y_train=rng.integers(0, 10, n), x_val=x(64), y_val=rng.integers(0, 10, 64),
                                 x_test=x(64), y_test=rng.integers(0, 10, 64), x_amb_test=x(64), x_ood=x(64))


@needs_hgq
def test_run_writes_one_row_per_point_and_resumes(tmp_path):
    data = _tiny_data()
    rows = mp.run(tmp_path, "mlp", [1e-6], [0], data, data, epochs=1, log=lambda s: None)
    assert [(r["point"], r["seed"], r["kind"]) for r in rows] == [("hgq-1e-06", 0, "deterministic")]
    saved = np.load(tmp_path / "runs" / "hgq-1e-06-s0.npz")
    b = saved["qdense_0_b"]
    assert rows[0]["layers"][0]["bits"] == mp.weight_bits(b) and b.shape == (784, 100)
    assert rows[0]["stored_bytes"] == sum(-(-mp.weight_bits(saved[f"qdense_{i}_b"]) // 8) for i in range(3))
    again = mp.run(tmp_path, "mlp", [1e-6], [0], data, data, epochs=1, log=pytest.fail)
    assert again == rows
    ref = mp.run_float_reference(tmp_path, "mlp", [0], data, data, epochs=1, log=lambda s: None)
    assert ref[-1]["point"] == "det-fp32" and ref[-1]["stored_bytes"] == 4 * 89400 and len(ref) == 2
