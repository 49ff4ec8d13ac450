import math

import numpy as np
import pytest

from tfqbnn import models, uncertainty
from tfqbnn.uncertainty import auroc, decompose, predict_mc


def test_identical_samples_have_zero_mi():
    p = np.array([0.7, 0.2, 0.1])
    d = decompose(np.tile(p, (5, 1, 1)))
    h = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    assert d["epistemic"][0] == pytest.approx(0.0, abs=1e-12)
    assert d["aleatoric"][0] == pytest.approx(h)
    assert d["predictive_entropy"][0] == pytest.approx(h)


def test_two_disagreeing_one_hots_give_ln2():
    probs = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    d = decompose(probs)
    assert d["epistemic"][0] == pytest.approx(math.log(2))
    assert d["aleatoric"][0] == pytest.approx(0.0, abs=1e-9)
    assert d["predictive_entropy"][0] == pytest.approx(math.log(2))


def test_auroc_hand_cases():
    assert auroc([0.1, 0.2], [0.3, 0.4]) == 1.0
    assert auroc([0.3, 0.4], [0.1, 0.2]) == 0.0
    assert auroc([0.1, 0.3], [0.2, 0.4]) == 0.75
    with pytest.raises(ValueError, match="non-empty"):
        auroc([], [1.0])


def test_predict_mc_shapes_and_vectorisation():
    model = models.mlp(hidden=(16,), quantization="jq4", seed=0)
    for layer in model.layers[:-1]:
        layer.rho.assign(np.full(layer.rho.shape, 0.05, "float32"))  # sigma ~ 0.69: visible sampling
    x = np.random.default_rng(0).uniform(size=(37, 784)).astype("float32")
    probs = predict_mc(model, x, num_samples=7, batch_size=10, seed=1)
    assert probs.shape == (7, 37, 10)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    # the 7 samples differ from each other (independent weights per sample) ...
    assert np.mean(np.abs(probs[0] - probs[1])) > 1e-3
    # ... but within one sample, all rows in a batch share weights: identical inputs -> identical outputs
    same = predict_mc(model, np.repeat(x[:1], 10, axis=0), num_samples=3, batch_size=10)
    np.testing.assert_allclose(same[:, 0], same[:, 9], rtol=1e-5)  # rows of one matmul: ~1e-6 apart
    # reseeding reproduces
    again = predict_mc(model, x, num_samples=7, batch_size=10, seed=1)
    np.testing.assert_array_equal(probs, again)


def test_predict_mc_bad_input():
    model = models.mlp(hidden=(8,), quantization="fp32")
    x = np.zeros((3, 784), "float32")
    with pytest.raises(ValueError, match="rank 2"):
        predict_mc(model, np.zeros((3, 28, 28), "float32"))
    with pytest.raises(ValueError, match="size 100 on axis 1, the model expects 784"):
        predict_mc(model, np.zeros((3, 100), "float32"))
    bad = x.copy()
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="1 non-finite"):
        predict_mc(model, bad)
    with pytest.raises(ValueError, match="num_samples=0"):
        predict_mc(model, x, num_samples=0)
    with pytest.raises(ValueError, match=r"shape \(S, N, C\)"):
        uncertainty.decompose(np.zeros((3, 4)))
