"""`tfqbnn.predict_uncertainty`: mc / hybrid / pfp.

Where a method is exact (hybrid for FP32 / VPQ; PFP for a model without hidden layers, whose logits
are independent Gaussians) its samples must have the MC distribution: two-sample KS statistic
below the 0.1 % critical value 1.95 * sqrt(2 / n) (seeded, so deterministic)."""

import keras
import numpy as np
import pytest
from scipy import stats

import tfqbnn
from tfqbnn import models, moments, propagation
from tfqbnn.layers import DenseVariational
from tfqbnn.uncertainty import decompose, predict_mc

S = 4000


def _model(q, hidden=(16,), sigma=0.3, activation="softplus", seed=0):
    model = models.mlp(hidden=hidden, quantization=q, activation=activation, seed=seed)
    for layer in model.layers:
        if isinstance(layer, DenseVariational):
            rho = (sigma + np.log(-np.expm1(-sigma))) / layer.rho_scale
            layer.rho.assign(np.full(layer.rho.shape, rho, "float32"))
    return model


def _x(n=1, seed=0):
    return (np.random.default_rng(seed).uniform(size=(n, 784)) * 0.2).astype("float32")


def _ks_crit(n1, n2):
    return 1.95 * np.sqrt((n1 + n2) / (n1 * n2))


@pytest.mark.parametrize("q", ["fp32", "vpq4"])
def test_hybrid_has_the_mc_distribution_for_gaussian_weights(q):
    model, x = _model(q), _x()
    mc = predict_mc(model, x, S, seed=1)[:, 0]
    hy = propagation.predict_hybrid(model, x, S, seed=2)[:, 0]
    for c in range(3):  # the marginal of a class probability
        assert stats.ks_2samp(mc[:, c], hy[:, c]).statistic < _ks_crit(S, S), c
    dm, dh = decompose(mc[:, None]), decompose(hy[:, None])
    assert abs(dm["epistemic"][0] - dh["epistemic"][0]) < 0.1 * dm["epistemic"][0]


def test_hybrid_first_layer_preactivations_follow_the_exact_moments():
    """The first layer's sampled pre-activations: mean x @ E[w], variance x^2 @ Var[w] (JQ-4, the real sampler)."""
    model, x = _model("jq4", hidden=(8,), sigma=0.2), _x()
    first = model.layers[0]
    ew, vw = moments.layer_weight_moments(first)
    m, v = (x @ ew)[0], ((x * x) @ vw)[0]
    w = np.concatenate([first.sample_weights(groups=2000).numpy() for _ in range(10)])
    z = np.einsum("i,nij->nj", x[0].astype(np.float64), w)
    n = len(z)
    np.testing.assert_array_less(np.abs(z.mean(0) - m), 5 * np.sqrt(v / n))
    np.testing.assert_array_less(np.abs(z.var(0) - v), 5 * v * np.sqrt(2.0 / n) * 1.2)
    # a sum of 784 discrete terms is close to Gaussian
    for j in range(8):
        assert stats.kstest((z[:, j] - m[j]) / np.sqrt(v[j]), "norm").statistic < 0.02


@pytest.mark.parametrize("q", ["fp32", "jq4"])
def test_pfp_without_hidden_layers_is_exact(q):
    """Logits of a single variational layer are independent across classes: PFP = MC in distribution.

    (For JQ the logit is a sum of discrete terms, Gaussian only approximately; the KS bound still holds.)"""
    model, x = _model(q, hidden=(), sigma=0.15), _x()
    mc = predict_mc(model, x, S, seed=1)[:, 0]
    pfp = propagation.predict_pfp(model, x, S, seed=2)[:, 0]
    for c in range(3):
        assert stats.ks_2samp(mc[:, c], pfp[:, c]).statistic < _ks_crit(S, S), c


def test_pfp_relu_hidden_layer_moments_against_monte_carlo():
    """After the first layer (exactly Gaussian, independent units for FP32) the ReLU closed form matches MC."""
    model, x = _model("fp32", hidden=(12,), sigma=0.3, activation="relu"), _x()
    first = model.layers[0]
    ctx = propagation._Context("gaussian")
    m, v = propagation.dense_variational_moments(first, x.astype(np.float64), np.zeros_like(x, np.float64), ctx)
    hm, hv = moments.relu_moments(m, v)
    w = np.concatenate([first.sample_weights(groups=5000).numpy() for _ in range(4)]).astype(np.float64)
    h = np.maximum(np.einsum("i,nij->nj", x[0].astype(np.float64), w), 0)
    n = len(h)
    c = h - h.mean(0)
    np.testing.assert_array_less(np.abs(h.mean(0) - hm[0]), 5 * np.sqrt(hv[0] / n))
    se_var = np.sqrt(np.maximum((c**4).mean(0) - c.var(0) ** 2, 0) / n)
    np.testing.assert_array_less(np.abs(h.var(0) - hv[0]), 5 * se_var)


def test_pfp_close_to_mc_with_a_hidden_layer():
    model, x = _model("fp32", hidden=(32,), sigma=0.1), _x(20)
    mc = decompose(predict_mc(model, x, S, seed=1))
    pfp = propagation.predict_uncertainty(model, x, "pfp", num_samples=S, seed=2)
    np.testing.assert_allclose(pfp["mean_probs"], mc["mean_probs"], atol=0.02)
    np.testing.assert_allclose(pfp["predictive_entropy"], mc["predictive_entropy"], rtol=0.05)


def test_predict_uncertainty_mc_is_predict_mc_and_decompose():
    model, x = _model("jq4"), _x(5)
    got = tfqbnn.predict_uncertainty(model, x, "mc", num_samples=7, seed=3, estimator="plugin")
    want = decompose(predict_mc(model, x, 7, seed=3))
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    assert set(got) == set(want) | {"seconds", "estimator"}


def test_seeded_hybrid_and_pfp_reproduce():
    model, x = _model("jq4"), _x(5)
    for method in ("hybrid", "pfp"):
        a = propagation.predict_probs(model, x, method, 9, seed=4)
        b = propagation.predict_probs(model, x, method, 9, seed=4)
        assert a.shape == (9, 5, 10)
        np.testing.assert_array_equal(a, b)


def test_partial_bayesian_and_logit_models():
    """A deterministic Dense after the variational layer, and a model without softmax (from_logits)."""
    inp = keras.Input((784,))
    h = DenseVariational(8, activation="relu", seed=0)(inp)
    logits = keras.layers.Dense(10, name="head")(h)
    model = keras.Model(inp, logits)
    x = _x(3)
    m, v = propagation.logit_moments(model, x, from_logits=True)
    assert m.shape == (3, 10) and np.all(v > 0)
    with pytest.raises(ValueError, match="last layer 'head' is not a softmax; pass from_logits=True"):
        propagation.logit_moments(model, x)
    for method in ("hybrid", "pfp"):
        d = propagation.predict_uncertainty(model, x, method, num_samples=5, from_logits=True, seed=0)
        np.testing.assert_allclose(d["mean_probs"].sum(-1), 1.0, rtol=1e-5)


def test_errors_name_the_argument_or_layer():
    model, x = _model("fp32"), _x()
    with pytest.raises(ValueError, match="received method='sampling'"):
        propagation.predict_uncertainty(model, x, "sampling")
    with pytest.raises(ValueError, match="received num_samples=0"):
        propagation.predict_uncertainty(model, x, "pfp", num_samples=0)
    odd = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="tanh"),
                            keras.layers.Softmax()])
    with pytest.raises(ValueError, match="no moment matching for activation 'tanh'"):
        propagation.predict_uncertainty(odd, x, "pfp")
    with pytest.raises(ValueError, match="no variational layer"):
        propagation.predict_uncertainty(odd, x, "hybrid")
    conv = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(2, 3), keras.layers.Flatten(),
                             keras.layers.Dense(10), keras.layers.Softmax()])
    with pytest.raises(ValueError, match="no moment propagation for layer .* of type Conv2D"):
        propagation.predict_uncertainty(conv, np.zeros((1, 28, 28, 1), "float32"), "pfp")


def test_full_covariance_is_exact_for_linear_hidden_layers():
    """Linear hidden layer: the logits' covariance is exact; the diagonal PFP misses the cross terms."""
    model, x = _model("fp32", hidden=(6,), sigma=0.3, activation="linear"), _x()
    l1, l2 = model.layers[0], model.layers[1]
    m, cov = propagation.logit_moments(model, x, covariance="full")
    _, var_diag = propagation.logit_moments(model, x)
    z = np.concatenate([np.einsum("i,nij,njk->nk", x[0].astype(np.float64),
                                  l1.sample_weights(groups=2000).numpy(), l2.sample_weights(groups=2000).numpy())
                        for _ in range(20)])
    n = len(z)
    c = z - z.mean(0)
    emp = c.T @ c / n
    prod = c[:, :, None] * c[:, None, :]
    se = np.sqrt(np.maximum(prod.var(0), 1e-30) / n)
    np.testing.assert_array_less(np.abs(z.mean(0) - m[0]), 5 * np.sqrt(np.diag(cov[0]) / n))
    np.testing.assert_array_less(np.abs(emp - cov[0]), 5 * se)
    # the logits are clearly correlated, which the diagonal PFP sets to zero (its variances are the diagonal)
    off = ~np.eye(10, dtype=bool)
    assert np.max(np.abs(emp[off]) / se[off]) > 10
    # with one hidden layer (independent hidden units) the diagonal PFP's variances are the exact ones
    np.testing.assert_allclose(var_diag[0], np.diag(cov[0]), rtol=1e-9)


def test_activation_slope_is_the_expected_derivative():
    from scipy.integrate import quad
    from scipy.special import expit

    for m, s in [(0.3, 0.5), (-1.0, 1.5), (2.0, 3.0), (0.0, 10.0)]:
        ref = quad(lambda z: expit(z) * stats.norm.pdf(z, m, s), m - 12 * s, m + 12 * s, points=[0.0], limit=300)[0]
        assert moments.activation_slope("softplus", m, s * s) == pytest.approx(ref, abs=1e-6)
        assert moments.activation_slope("relu", m, s * s) == pytest.approx(stats.norm.cdf(m / s), abs=1e-12)
    assert moments.activation_slope(None, 0.0, 1.0) == 1.0


def test_full_covariance_pfp_runs_and_rejects_other_layers():
    model, x = _model("jq4", hidden=(16, 8)), _x(4)
    d = propagation.predict_uncertainty(model, x, "pfp", num_samples=50, seed=0, covariance="full")
    assert d["mean_probs"].shape == (4, 10) and np.all(d["epistemic"] >= 0)
    with pytest.raises(ValueError, match="received covariance='banded'"):
        propagation.logit_moments(model, x, covariance="banded")


def test_evaluate_model_by_method_and_cli_flag():
    from types import SimpleNamespace

    from tfqbnn import evaluation

    model = _model("jq4")
    rng = np.random.default_rng(0)
    data = SimpleNamespace(x_test=_x(20, 1), y_test=rng.integers(0, 10, 20), x_amb_test=_x(20, 2), x_ood=_x(20, 3))
    for method in ("mc", "hybrid", "pfp"):
        m, per_image = evaluation.evaluate_model(model, data, num_samples=4, method=method)
        assert m["method"] == method and m["num_samples"] == 4 and 0 <= m["auroc_epistemic"] <= 1
        assert per_image["ood_epistemic"].shape == (20,)
    with pytest.raises(ValueError, match="received method='exact'"):
        evaluation.evaluate_model(model, data, num_samples=4, method="exact")
    from tfqbnn.cli import evaluate as cli

    assert cli.parse_args(["m.keras", "--out", "o", "--method", "pfp"])[1].method == "pfp"
    assert cli.parse_args(["m.keras", "--out", "o"])[1].method == "mc"
    args = cli.parse_args(["m.keras", "--out", "o", "--estimator", "delta", "--images", "12"])[1]
    assert (args.estimator, args.images) == ("delta", 12)
    plug, _ = evaluation.evaluate_model(model, data, num_samples=6, seed=1)
    jk, _ = evaluation.evaluate_model(model, data, num_samples=6, seed=1, estimator="jackknife")
    assert (plug["estimator"], jk["estimator"]) == ("plugin", "jackknife")
    assert jk["mean_epistemic_ood"] > plug["mean_epistemic_ood"]  # the correction raises the low-biased MI
