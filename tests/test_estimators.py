"""`tfqbnn.estimators`: bias-corrected predictive entropy / MI, checked against closed forms.

The exact expectation of an estimator over S samples of a two-point distribution (sample = a with
probability q, else b) is a finite sum over the binomial count of a's, so biases are computed exactly,
not by simulation."""

import math

import numpy as np
import pytest
from scipy import stats

import tfqbnn
from tfqbnn import estimators, models, propagation, uncertainty
from tfqbnn.layers import DenseVariational

A = np.array([0.90, 0.08, 0.02])
B = np.array([0.05, 0.15, 0.80])


def _configurations(s, a=A, b=B):
    """probs [S, S + 1, C]: column k holds k samples a then S - k samples b (order does not matter for delete-one)."""
    k = np.arange(s + 1)
    rows = np.arange(s)[:, None] < k[None, :]
    return np.where(rows[..., None], a, b), k


def _expected(s, q, fn, a=A, b=B):
    probs, k = _configurations(s, a, b)
    return float(np.sum(stats.binom.pmf(k, s, q) * fn(probs)))


def _true_entropy(q, a=A, b=B):
    return float(estimators.entropy(q * a + (1 - q) * b))


@pytest.mark.parametrize("q", [0.1, 0.3])
def test_corrections_remove_the_first_order_bias(q):
    h = _true_entropy(q)
    sizes = (30, 60, 120)
    # delete-one (groups=None) and delta do not depend on the samples' order, so the binomial count suffices; the
    # grouped jackknife is checked by full enumeration below
    bias = {e: {s: _expected(s, q, lambda p, e=e: estimators.entropy_of_mean(p, e, groups=None)) - h for s in sizes}
            for e in estimators.ESTIMATORS}
    var = q * (1 - q) * (A - B) ** 2  # Var[p_c] of the two-point distribution
    first_order = -np.sum(var / (q * A + (1 - q) * B)) / 2
    for s in sizes:
        # the plug-in's bias is the textbook -(1/2S) sum Var[p_c] / E[p_c] to leading order ...
        assert bias["plugin"][s] * s == pytest.approx(first_order, rel=0.1)
        # ... and both corrections cut it by at least 10x
        for e in ("jackknife", "delta"):
            assert abs(bias[e][s]) < abs(bias["plugin"][s]) / 10
    assert 1.8 < bias["plugin"][30] / bias["plugin"][60] < 2.2  # O(1/S)
    if q == 0.3:  # what the corrections leave is O(1/S^2): doubling S about quarters it
        for e in ("jackknife", "delta"):
            assert 3.0 < bias[e][30] / bias[e][60] < 5.0 and 3.0 < bias[e][60] / bias[e][120] < 5.0


def test_group_jackknife_of_a_quadratic_statistic_is_exactly_unbiased():
    """For T(m) = 1 - sum m_c^2 the bias of T(mean of n) is exactly -sum Var[p_c] / n: the delete-a-group
    jackknife removes it exactly, also for unequal groups (S = 7 in 3 groups of 2, 2, 3)."""
    gini = lambda m: 1.0 - np.sum(m * m, axis=-1)  # noqa: E731
    s, q = 7, 0.3
    truth = float(gini(q * A + (1 - q) * B))
    for groups in (7, 3, 2):
        bounds = estimators.group_bounds(s, groups)
        sizes = np.diff(bounds)

        # every sequence of a / b draws (2^7), weighted by its probability: the exact expectation
        seqs = (np.arange(2**s)[None, :] >> np.arange(s)[:, None]) & 1  # [S, 128]: 1 = a
        probs = np.where(seqs[..., None] == 1, A, B)
        weight = q ** seqs.sum(0) * (1 - q) ** (s - seqs.sum(0))
        jk = estimators.jackknife_from_group_sums(gini, np.add.reduceat(probs, bounds[:-1], axis=0), sizes)
        plugin = gini(probs.mean(0))
        assert np.sum(weight * jk) == pytest.approx(truth, abs=1e-12)
        assert np.sum(weight * plugin) - truth == pytest.approx(-np.sum(q * (1 - q) * (A - B) ** 2) / s, rel=1e-9)
        assert sizes.tolist() == {7: [1] * 7, 3: [2, 2, 3], 2: [3, 4]}[groups]


@pytest.mark.parametrize("s,groups", [(40, 32), (7, 3), (30, 30), (1000, 32)])
def test_group_jackknife_leaves_a_linear_statistic_unchanged(s, groups):
    """For T(m) = a . m every leave-out difference is linear in the data: the weights must cancel it exactly for
    any samples (weights that only cancel the expected bias leave a zero-mean term of order 1 / sqrt(S), which on
    unequal groups swamps the O(1 / S) correction)."""
    rng = np.random.default_rng(s)
    probs = rng.dirichlet(np.ones(5), size=(s, 4))
    a = rng.normal(size=5)
    linear = lambda m: m @ a  # noqa: E731
    bounds = estimators.group_bounds(s, groups)
    jk = estimators.jackknife_from_group_sums(linear, np.add.reduceat(probs, bounds[:-1], axis=0), np.diff(bounds))
    np.testing.assert_allclose(jk, linear(probs.mean(0)), rtol=1e-10, atol=1e-12)


def test_delete_one_jackknife_matches_the_textbook_formula():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4) * 0.5, size=(9, 5)).transpose(0, 1, 2)  # [S=9, N=5, C=4]
    s = probs.shape[0]
    h = estimators.entropy(probs.mean(0))
    loo = np.stack([estimators.entropy(np.delete(probs, i, axis=0).mean(0)) for i in range(s)])
    want = s * h - (s - 1) * loo.mean(0)
    np.testing.assert_allclose(estimators.entropy_of_mean(probs, "jackknife"), want, rtol=1e-12)  # 32 >= S
    np.testing.assert_allclose(estimators.entropy_of_mean(probs, "jackknife", groups=None), want, rtol=1e-12)
    # chunking over images (the vectorised steps) does not change anything
    old = estimators._CHUNK_ELEMENTS
    try:
        estimators._CHUNK_ELEMENTS = 40
        np.testing.assert_allclose(estimators.entropy_of_mean(probs, "jackknife"), want, rtol=1e-12)
    finally:
        estimators._CHUNK_ELEMENTS = old


def test_delta_is_miller_madow_for_one_hot_samples():
    """One-hot samples: H(counts / S) + (K_seen - 1) / (2 (S - 1))."""
    labels = np.array([0, 0, 1, 2, 0, 1, 0, 0, 2, 0])  # 10 samples, 3 of 5 classes seen
    probs = np.eye(5)[labels][:, None, :]
    counts = np.bincount(labels, minlength=5) / len(labels)
    want = estimators.entropy(counts) + (3 - 1) / (2 * (len(labels) - 1))
    assert estimators.entropy_of_mean(probs, "delta")[0] == pytest.approx(want, rel=1e-12)


def test_identical_samples_and_one_sample():
    p = np.tile(A, (6, 2, 1))
    for e in estimators.ESTIMATORS:
        d = estimators.decompose(p, e)
        np.testing.assert_allclose(d["epistemic"], 0.0, atol=1e-12)
        np.testing.assert_allclose(d["predictive_entropy"], estimators.entropy(A), rtol=1e-12)
        np.testing.assert_allclose(estimators.entropy_of_mean(p[:1], e), estimators.entropy(A), rtol=1e-12)


def test_two_disagreeing_one_hots():
    """Plug-in MI ln 2; delete-one jackknife 2 H - H_-1 - H_-2 = 2 ln 2 (each leave-one-out mean is one-hot);
    delta: ln 2 + (2 - 1) / (2 (2 - 1)) = ln 2 + 1/2."""
    probs = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert uncertainty.decompose(probs)["epistemic"][0] == pytest.approx(math.log(2))
    assert uncertainty.decompose(probs, "jackknife")["epistemic"][0] == pytest.approx(2 * math.log(2))
    assert uncertainty.decompose(probs, "delta")["epistemic"][0] == pytest.approx(math.log(2) + 0.5)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="received estimator='bootstrap'"):
        estimators.entropy_of_mean(np.ones((2, 1, 2)) / 2, "bootstrap")
    with pytest.raises(ValueError, match=r"shape \(S, N, C\)"):
        estimators.entropy_of_mean(np.ones((2, 2)) / 2, "jackknife")
    with pytest.raises(ValueError, match="groups=0"):
        estimators.group_bounds(5, 0)
    assert estimators.check_estimator(None) == estimators.DEFAULT_ESTIMATOR


def _model(sigma=0.3):
    model = models.mlp(hidden=(16,), quantization="jq4", seed=0)
    for layer in model.layers:
        if isinstance(layer, DenseVariational):
            layer.rho.assign(np.full(layer.rho.shape, (sigma + np.log(-np.expm1(-sigma))) / layer.rho_scale,
                                     "float32"))
    return model


def _x(n):
    return (np.random.default_rng(0).uniform(size=(n, 784)) * 0.2).astype("float32")


@pytest.mark.parametrize("method", ["mc", "hybrid"])
def test_seeded_calls_leave_the_model_random_state_alone(method):
    model, x = _model(), _x(4)
    for i, layer in enumerate(l for l in model.layers if isinstance(l, DenseVariational)):
        layer.reseed(100 + i)
    before = [l._rng.state.numpy().copy() for l in model.layers if isinstance(l, DenseVariational)]
    a = propagation.predict_uncertainty(model, x, method, num_samples=5, seed=7)
    after = [l._rng.state.numpy() for l in model.layers if isinstance(l, DenseVariational)]
    for u, v in zip(before, after):
        np.testing.assert_array_equal(u, v)
    b = propagation.predict_uncertainty(model, x, method, num_samples=5, seed=7)
    np.testing.assert_array_equal(a["epistemic"], b["epistemic"])
    # an unseeded call does move the state (the check above is not vacuous)
    propagation.predict_uncertainty(model, x, method, num_samples=5)
    moved = [l._rng.state.numpy() for l in model.layers if isinstance(l, DenseVariational)]
    assert any(np.any(u != v) for u, v in zip(before, moved))


def test_predict_uncertainty_estimator_option():
    model, x = _model(), _x(6)
    probs = tfqbnn.predict_mc(model, x, 9, seed=3)
    for e in estimators.ESTIMATORS:
        d = tfqbnn.predict_uncertainty(model, x, "mc", num_samples=9, seed=3, estimator=e)
        assert d["estimator"] == e
        np.testing.assert_allclose(d["epistemic"], estimators.decompose(probs, e)["epistemic"], rtol=1e-12)
    d = tfqbnn.predict_uncertainty(model, x, "mc", num_samples=9, seed=3)
    assert d["estimator"] == estimators.DEFAULT_ESTIMATOR
    with pytest.raises(ValueError, match="received estimator='mle'"):
        tfqbnn.predict_uncertainty(model, x, "mc", num_samples=9, estimator="mle")


def test_independent_draws_per_example():
    model = _model()
    x = np.repeat(_x(1), 6, axis=0)  # six copies of one image
    shared = tfqbnn.predict_mc(model, x, 5, seed=1)
    np.testing.assert_allclose(shared[:, 0], shared[:, 5], rtol=1e-5)  # one draw per pass: copies agree
    ind = tfqbnn.predict_mc(model, x, 5, seed=1, independent=True, max_samples_per_call=10)  # 2 images per call
    assert ind.shape == (5, 6, 10)
    assert np.all(np.abs(ind[:, 0] - ind[:, 5]).max(-1) > 1e-4)  # every sample differs between the copies
    again = tfqbnn.predict_mc(model, x, 5, seed=1, independent=True, max_samples_per_call=10)
    np.testing.assert_array_equal(ind, again)
    # the per-image distribution is the shared one's: the mean probabilities of many draws agree
    many_ind = tfqbnn.predict_mc(model, x[:2], 400, seed=2, independent=True).mean(axis=(0, 1))
    many_shared = tfqbnn.predict_mc(model, x[:1], 800, seed=3).mean(axis=(0, 1))
    np.testing.assert_allclose(many_ind, many_shared, atol=0.02)


@pytest.mark.parametrize("s", [7, 100])
def test_streamed_decomposition_equals_the_array_one(s):
    """Chunks of samples in any order give `decompose`'s values (group sums for the jackknife, sums of squares for
    the delta), so `predict_uncertainty` keeps its memory bound in S."""
    probs = np.random.default_rng(s).dirichlet(np.ones(6) * 0.3, size=(s, 9))
    for e in estimators.ESTIMATORS:
        want = estimators.decompose(probs, e)
        acc = estimators.Decomposition(s, e)
        cuts = [0, 3, s // 2, s]
        for a, b in reversed(list(zip(cuts[:-1], cuts[1:]))):
            acc.add(a, probs[a:b])
        got = acc.result()
        for k in want:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-12)
    acc = estimators.Decomposition(s, "jackknife")
    acc.add(0, probs[:2])
    with pytest.raises(ValueError, match=f"received 2 samples; expected {s}"):
        acc.result()


def test_predict_uncertainty_streams_the_estimators():
    model, x = _model(), _x(5)
    for method in ("mc", "hybrid", "pfp"):
        probs = propagation.predict_probs(model, x, method, 40, seed=2, max_samples_per_call=7)
        for e in estimators.ESTIMATORS:
            got = propagation.predict_uncertainty(model, x, method, 40, seed=2, estimator=e, max_samples_per_call=7)
            np.testing.assert_allclose(got["epistemic"], estimators.decompose(probs, e)["epistemic"], rtol=1e-9,
                                       atol=1e-12)
