"""Bayesian (variational) and quantization-aware deterministic Keras layers.

* `base`: `VariationalLayer` (posterior, sampler, KL, config), `sample_groups`, `ClipWeights`;
* `dense`: `DenseVariational`;
* `conv`: `Conv1DVariational`, `Conv2DVariational`, `Conv3DVariational`, `DepthwiseConv2DVariational` (one
  rank-generic base);
* `quantized`: `QuantizedDense`, `QuantizedConv2D`, `QuantizedDepthwiseConv2D` (QAT).

The registered names (``"tfqbnn>DenseVariational"``, ...) are the class names, so
models saved before this was a package load unchanged.
"""

from tfqbnn.layers.base import (  # noqa: F401  (private names: used by tests and benchmarks)
    ClipWeights,
    VariationalLayer,
    _fused_weights_and_kl,
    _fused_weights_and_kl_xla,
    _weights_and_kl,
    sample_groups,
)
from tfqbnn.layers.conv import Conv1DVariational, Conv2DVariational, Conv3DVariational, DepthwiseConv2DVariational
from tfqbnn.layers.dense import DenseVariational
from tfqbnn.layers.quantized import QuantizedConv2D, QuantizedDense, QuantizedDepthwiseConv2D

__all__ = [
    "ClipWeights", "VariationalLayer", "sample_groups", "DenseVariational", "Conv1DVariational", "Conv2DVariational",
    "Conv3DVariational",
    "DepthwiseConv2DVariational", "QuantizedDense", "QuantizedConv2D", "QuantizedDepthwiseConv2D",
]
