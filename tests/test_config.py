import pytest

from tfqbnn import QuantizationConfig
from tfqbnn.quantizers import LogQuantizer, UniformQuantizer


@pytest.mark.parametrize(
    "s, strategy, mu, sigma, sample",
    [("fp32", "none", None, None, None), ("vpq4", "vpq", 4, 4, None), ("spq7", "spq", None, None, 7),
     ("jq4", "jq", 4, 4, 4), ("JQ8", "jq", 8, 8, 8)],
)
def test_shorthands(s, strategy, mu, sigma, sample):
    c = QuantizationConfig.get(s)
    assert (c.strategy, c.mu_bits, c.sigma_bits, c.sample_bits) == (strategy, mu, sigma, sample)
    assert QuantizationConfig.from_config(c.get_config()) == c


def test_quantizer_kinds():
    c = QuantizationConfig("jq", bits=4)
    assert isinstance(c.mu_quantizer, UniformQuantizer) and isinstance(c.sigma_quantizer, LogQuantizer)
    u = QuantizationConfig("vpq", bits=4, sigma_quantizer="uniform")
    assert isinstance(u.sigma_quantizer, UniformQuantizer) and u.name == "vpq4-uniform"
    mixed = QuantizationConfig("jq", bits=4, sigma_bits=8)
    assert mixed.sigma_quantizer.bits == 8 and mixed.name == "jq-mu4-s8-w4"


@pytest.mark.parametrize(
    "args, match",
    [(("int4",), "Unknown quantization strategy 'int4'.*'vpq'"),
     (("jq",), "needs `bits`"),
     (("jq", 1), "bits=1"), (("jq", 17), "bits=17"), (("spq", 33), "bits=33"),
     (("none", 4), "strategy 'none' takes no bit widths")],
)
def test_bad_configs(args, match):
    with pytest.raises(ValueError, match=match):
        QuantizationConfig(*args)


def test_bad_strings_and_kinds():
    with pytest.raises(ValueError, match="Unknown quantization 'jq'"):
        QuantizationConfig.get("jq")
    with pytest.raises(ValueError, match=r"\['log', 'uniform'\]; received 'linear'"):
        QuantizationConfig("vpq", 4, sigma_quantizer="linear")
    with pytest.raises(ValueError, match="does not use `sample_bits`"):
        QuantizationConfig("vpq", 4, sample_bits=4)
