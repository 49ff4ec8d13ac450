"""`tfqbnn.allocate_bits`: the exact budgeted choice of per-layer (mu bits, sigma bits), on validation data."""

import itertools
import json

import keras
import numpy as np
import pytest

import tfqbnn
from tfqbnn import allocation, models


def test_solve_is_the_brute_force_optimum():
    rng = np.random.default_rng(0)
    for trial in range(30):
        n_layers = int(rng.integers(1, 4))
        choices = [(mb, sb) for mb in range(2, 6) for sb in range(1, 4)]
        sizes = [{c: int(rng.integers(1, 40)) for c in choices} for _ in range(n_layers)]
        costs = [{c: float(rng.random()) for c in choices} for _ in range(n_layers)]
        budget = int(rng.integers(1, 100))
        best = None
        for picks in itertools.product(choices, repeat=n_layers):
            b = sum(s[c] for s, c in zip(sizes, picks))
            v = sum(k[c] for k, c in zip(costs, picks))
            if b <= budget and (best is None or v < best[0] - 1e-12):
                best = (v, b)
        got = allocation.solve(costs, sizes, budget)
        if best is None:
            assert got is None
        else:
            assert got[1] == pytest.approx(best[0]) and got[2] <= budget
            assert got[2] == sum(s[c] for s, c in zip(sizes, got[0]))


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    x = rng.random((600, 20)).astype(np.float32)
    y = (x[:, :10].sum(1) > x[:, 10:].sum(1)).astype(np.int64)
    keras.utils.set_random_seed(0)
    model = models.mlp(hidden=(16, 12), num_classes=2, input_dim=20, quantization="jq8", num_examples=500, seed=0)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(x[:500], y[:500], epochs=5, batch_size=50, verbose=0)
    ood = rng.normal(0.5, 1.0, (100, 20)).astype(np.float32)
    return model, x[500:], y[500:], ood, x[:500], y[:500]


def test_allocation_fits_the_budget_and_keeps_the_weights(small):
    model, xv, yv, ood, _, _ = small
    choices = [(2, 1), (3, 2), (4, 4), (6, 2)]
    sens = allocation.layer_sensitivity(model, xv, yv, ood, choices, num_samples=4)
    sizes = [20 * 16, 16 * 12, 12 * 2]
    for budget in (sum(sizes) // 8 * 3, sum(sizes), sum(sizes) * 8 // 8):
        a = tfqbnn.allocate_bits(model, xv, yv, budget, x_ood=ood, choices=choices, sensitivity=sens)
        assert a.stored_bytes <= budget
        assert a.stored_bytes == sum(-(-n * (mb + sb) // 8) for n, (mb, sb) in zip(sizes, a.bits))
        assert a.layers == ["bayes_0", "bayes_1", "bayes_2"] and all(b in choices for b in a.bits)
    # the largest budget takes the choice of least cost per layer
    a = tfqbnn.allocate_bits(model, xv, yv, 10**6, x_ood=ood, choices=choices, sensitivity=sens)
    table, _ = sens
    for name, bits, rng in zip(a.layers, a.bits, a.sigma_ranges):
        key, = [k for k, r in table[name].items() if k[:2] == bits and r["sigma_range"] == list(rng)]
        assert table[name][key]["cost"] == min(r["cost"] for r in table[name].values())
    clone = allocation.with_quantization(model, dict(zip(a.layers, a.configs)))
    assert [l.quantization for l in allocation.variational_layers(clone)] == a.configs
    for w0, w1 in zip(model.get_weights(), clone.get_weights()):
        np.testing.assert_array_equal(w0, w1)


def test_sensitivity_grows_when_bits_drop(small):
    model, xv, yv, ood, _, _ = small
    table, ref = allocation.layer_sensitivity(model, xv, yv, ood, [(2, 1), (7, 1)], num_samples=8)
    # the first layer holds most weights: 2-bit mu costs it more validation NLL than 7-bit mu
    assert table["bayes_0"][(2, 1, "full")]["nll"] > table["bayes_0"][(7, 1, "full")]["nll"]
    assert {k[2] for k in table["bayes_0"]} <= {"full", "fit999", "fit90"}
    assert set(ref) == {"nll", "accuracy", "auroc_mi"}


def test_fitted_sigma_ranges_start_where_sampling_starts():
    sigma = np.exp(np.random.default_rng(0).normal(np.log(0.05), 1.0, 5000))
    c = allocation.sigma_range_candidates(sigma, 3, 1)
    assert c["full"] == (2.0**-10, 1.0)
    lo, hi = c["fit999"]
    assert lo == pytest.approx(0.5 / (3 * 2.886)) and hi == pytest.approx(np.quantile(sigma, 0.999))
    assert c["fit90"][1] == pytest.approx(np.quantile(sigma, 0.9))
    assert set(allocation.sigma_range_candidates(sigma, 3, 4)) == {"full"}  # wide grids keep the full range


def test_bad_arguments_are_refused(small):
    model, xv, yv, ood, _, _ = small
    with pytest.raises(ValueError, match="budget_bytes=0"):
        tfqbnn.allocate_bits(model, xv, yv, 0)
    with pytest.raises(ValueError, match="no choice fits budget_bytes=10"):
        tfqbnn.allocate_bits(model, xv, yv, 10, choices=[(2, 1)], num_samples=2)
    with pytest.raises(ValueError, match="sigma_bits=0"):
        tfqbnn.allocate_bits(model, xv, yv, 1000, choices=[(2, 0)])
    with pytest.raises(ValueError, match="received 100 and 99"):
        tfqbnn.allocate_bits(model, xv, yv[:-1], 1000)


def test_fine_tune_trains_the_chosen_configuration(small):
    model, xv, yv, ood, xt, yt = small
    a = tfqbnn.allocate_bits(model, xv, yv, 260, choices=[(2, 1), (3, 1)], num_samples=2)
    tuned = allocation.fine_tune(model, a, xt, yt, epochs=1, lr=1e-3, batch_size=100)
    assert [l.quantization for l in allocation.variational_layers(tuned)] == a.configs
    assert any(not np.array_equal(w0, w1) for w0, w1 in zip(model.get_weights(), tuned.get_weights()))


def test_pareto_bytes_and_seed_summary(tmp_path):
    from tfqbnn import pareto

    mlp = pareto.layer_weights("mlp")
    assert mlp == (78400, 10000, 1000)
    assert [pareto.uniform_bytes(q, mlp) for q in ("fp32", "jq8", "jq4", "jq3", "jq2")] == [
        715200, 178800, 89400, 67050, 44700]
    # LeNet-5: conv 6@5x5x1, conv 16@5x5x6, dense 400-120-84-10
    lenet = pareto.layer_weights("lenet5")
    assert lenet == (150, 2400, 48000, 10080, 840)
    assert pareto.uniform_bytes("jq4", lenet) == 61470
    assert pareto.small_layer_choices(lenet, list("abcde")) == {n: [(4, 4), (5, 3), (6, 2), (7, 1)] for n in "ae"}
    base = {"kind": "mixed", "budget_bytes": 50000, "stored_bytes": 48000, "bits": {"bayes_0": [3, 1]}, "nll": 0.1,
            "ece": 0.01, "auroc_aleatoric": 0.8, "auroc_epistemic": 0.9}
    points = [{**base, "point": "mixed-50000", "seed": s, "accuracy": a} for s, a in ((0, 0.97), (1, 0.98))]
    row, = pareto.write_tables(points, tmp_path)
    assert row["accuracy"] == pytest.approx(0.975) and row["accuracy_sd"] == pytest.approx(0.00707, abs=1e-5)
    assert row["seeds"] == 2 and "| mixed-50000 | 2 | 48,000 | 3/1 | 97.50 ± 0.71 |" in (tmp_path / "table.md").read_text()


def _brute_auroc(neg, pos):
    """P(score_pos > score_neg) + P(tie) / 2 over every pair."""
    neg, pos = np.asarray(neg)[:, None], np.asarray(pos)[None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


def test_entropy_auroc_term(small):
    from tfqbnn.uncertainty import predict_mc

    model, xv, yv, ood, _, _ = small
    amb = np.zeros(len(yv), bool)
    amb[::3] = True
    m = allocation.evaluate_val(model, xv, yv, ood, 6, 0, amb)
    probs = predict_mc(model, xv, num_samples=6, seed=0).mean(0)
    h = -(probs * np.log(np.clip(probs, 1e-30, 1))).sum(-1)
    assert m["auroc_entropy"] == pytest.approx(_brute_auroc(h[~amb], h[amb]), abs=1e-6)
    # the term adds exactly weight * (reference AUROC - layer's AUROC) to each cost (common random numbers)
    choices = [(2, 1), (5, 3)]
    base, _ = allocation.layer_sensitivity(model, xv, yv, ood, choices, num_samples=4, fit_bits=0)
    table, ref = allocation.layer_sensitivity(model, xv, yv, ood, choices, num_samples=4, fit_bits=0,
                                              val_ambiguous=amb, aleatoric_weight=5.0)
    assert "auroc_entropy" in ref and "auroc_entropy" not in allocation.evaluate_val(model, xv, yv, ood, 2, 0)
    for name, rows in table.items():
        for key, r in rows.items():
            assert r["nll"] == base[name][key]["nll"]
            assert r["cost"] - base[name][key]["cost"] == pytest.approx(
                5.0 * (ref["auroc_entropy"] - r["auroc_entropy"]), abs=1e-9)
    a = tfqbnn.allocate_bits(model, xv, yv, 10**6, x_ood=ood, choices=choices, num_samples=4, fit_bits=0,
                             val_ambiguous=amb, aleatoric_weight=5.0)
    for name, bits in zip(a.layers, a.bits):
        assert table[name][(*bits, "full")]["cost"] == min(r["cost"] for r in table[name].values())
    for bad in (amb[:-1], amb.astype(int), np.zeros(len(yv), bool)):
        with pytest.raises(ValueError, match="val_ambiguous"):
            allocation.layer_sensitivity(model, xv, yv, ood, choices, num_samples=2, val_ambiguous=bad)


def test_choices_per_layer(small):
    model, xv, yv, ood, _, _ = small
    table, _ = allocation.layer_sensitivity(model, xv, yv, None, {"bayes_2": [(4, 4)]}, num_samples=2, fit_bits=0)
    assert set(table["bayes_2"]) == {(4, 4, "full")}
    assert {k[:2] for k in table["bayes_0"]} == set(allocation.PACKED_CHOICES)
    with pytest.raises(ValueError, match="bayes_9"):
        allocation.layer_sensitivity(model, xv, yv, None, {"bayes_9": [(4, 4)]}, num_samples=2)


def test_pareto_validation_subset_and_baseline_rows(tmp_path):
    import types

    from tfqbnn import pareto

    rng = np.random.default_rng(0)
    clean = rng.random((50, 4)).astype(np.float32)
    images = rng.random((6, 4)).astype(np.float32)
    x = np.concatenate([clean, np.repeat(images, 10, axis=0)])
    data = types.SimpleNamespace(x_val=x, y_val=np.arange(len(x)) % 10,
                                 val_is_ambiguous=np.r_[np.zeros(50, bool), np.ones(60, bool)])
    xs, ys, amb = pareto.val_subset(data, 20)
    assert len(xs) == 26 and amb.sum() == 6 and (~amb).sum() == 20
    np.testing.assert_array_equal(xs[amb], images)  # every Ambiguous image once
    assert len({r.tobytes() for r in xs[~amb]}) == 20 and all(r.tobytes() in {c.tobytes() for c in clean}
                                                             for r in xs[~amb])
    assert pareto.val_subset(data)[0] is x

    row = {"kind": "uniform", "budget_bytes": None, "stored_bytes": 100, "bits": None, "nll": 0.1, "ece": 0.01,
           "auroc_aleatoric": 0.8, "auroc_epistemic": 0.9, "accuracy": 0.9, "seed": 0}
    (tmp_path / "points.json").write_text(json.dumps([{**row, "point": "fp32"}]))
    assert pareto.load_all(tmp_path) == [{**row, "point": "fp32"}]
    (tmp_path / "points-baseline.json").write_text(json.dumps([{**row, "point": "det-4", "kind": "deterministic"}]))
    rows = pareto.write_tables(pareto.load_all(tmp_path), tmp_path)
    assert [r["point"] for r in rows] == ["fp32", "det-4"] and rows[1]["kind"] == "deterministic"
    assert pareto._load(tmp_path) == [{**row, "point": "fp32"}]  # the resume list never holds baseline rows
