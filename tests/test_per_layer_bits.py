"""Per-layer quantization configs: builders, validation, get_config and .keras round trips."""

import keras
import numpy as np
import pytest

from tfqbnn import models
from tfqbnn.config import QuantizationConfig
from tfqbnn.layers import VariationalLayer


def jq(mu, sigma):
    return QuantizationConfig("jq", mu_bits=mu, sigma_bits=sigma, sample_bits=mu)


def _configs(model):
    return [l.quantization for l in model.layers if isinstance(l, VariationalLayer)]


def test_mlp_list_and_dict_give_each_layer_its_config():
    qs = [jq(3, 2), jq(5, 1), jq(8, 8)]
    by_list = models.mlp(hidden=(8, 6), input_dim=12, quantization=qs, seed=0)
    assert _configs(by_list) == qs
    by_name = models.mlp(hidden=(8, 6), input_dim=12, seed=0,
                         quantization={"bayes_2": qs[2].get_config(), "bayes_0": qs[0], "bayes_1": "jq4"})
    assert _configs(by_name) == [qs[0], QuantizationConfig.get("jq4"), qs[2]]
    # a config dict (it has "strategy") is still one config for every layer
    one = models.mlp(hidden=(8,), input_dim=12, quantization=qs[0].get_config())
    assert _configs(one) == [qs[0], qs[0]]


def test_mu_and_sigma_bits_are_independent_1_to_8():
    for mu in range(2, 9):
        for sigma in range(1, 9):
            q = jq(mu, sigma)
            assert (q.mu_bits, q.sigma_bits, q.sample_bits) == (mu, sigma, mu)
            assert len(q.sigma_quantizer.levels()) == 2**sigma


@pytest.mark.parametrize("quantization, message", [
    ([jq(4, 4)] * 2, "received 2 configs"),
    ({"bayes_0": "jq4", "bayes_1": "jq4"}, "received keys ['bayes_0', 'bayes_1']"),
    ({"bayes_0": "jq4", "bayes_1": "jq4", "bayes_2": "jq4", "dense_9": "jq4"}, "'dense_9'"),
    ([jq(4, 4), "jq4", "jq1"], "bits=1"),
])
def test_builder_refuses_bad_per_layer_configs(quantization, message):
    with pytest.raises(ValueError, match=None) as e:
        models.mlp(hidden=(8, 6), input_dim=12, quantization=quantization)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_one_bit_sigma_only_on_the_log_grid():
    with pytest.raises(ValueError, match="sigma_bits=1"):
        QuantizationConfig("jq", mu_bits=4, sigma_bits=1, sample_bits=4, sigma_quantizer="uniform")
    with pytest.raises(ValueError, match="mu_bits=1"):
        QuantizationConfig("jq", mu_bits=1, sigma_bits=4, sample_bits=4)


def test_lenet_per_layer_configs_by_name_and_order():
    head = models.lenet5("head", quantization={"bayes_dense_3": jq(6, 2), "bayes_dense_4": jq(3, 3)})
    assert _configs(head) == [jq(6, 2), jq(3, 3)]
    qs = [jq(b, 9 - b if b > 1 else 1) for b in (2, 3, 4, 5, 6)]
    full = models.bayesian_model("lenet5", "all", quantization=qs)
    assert [l.name for l in full.layers if isinstance(l, VariationalLayer)] == [
        "bayes_conv_0", "bayes_conv_1", "bayes_dense_2", "bayes_dense_3", "bayes_dense_4"]
    assert _configs(full) == qs


def test_per_layer_configs_round_trip_through_get_config_and_keras_file(tmp_path):
    qs = [jq(2, 6), jq(7, 1), jq(4, 3)]
    model = models.mlp(hidden=(8, 6), input_dim=12, quantization=qs, seed=3)
    clone = keras.Sequential.from_config(model.get_config())
    assert _configs(clone) == qs
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert _configs(loaded) == qs
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
