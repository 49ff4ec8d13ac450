"""tfqbnn: uncertainty-preserving quantized Bayesian neural networks for Keras 3.

Implements "Uncertainty-Preserving QBNNs: Multi-Level Quantization of SVI-Based
Bayesian Neural Networks" (arXiv 2512.10602): a mean-field Gaussian
`DenseVariational` layer with VPQ / SPQ / JQ quantization, KL annealing, and
Monte-Carlo uncertainty decomposition; Bayesian convolutions and quantized
deterministic layers for partial-Bayesian models (`tfqbnn.layers`).
"""

__version__ = "0.1.0"

from tfqbnn.config import QuantizationConfig  # noqa: E402
from tfqbnn.quantizers import LogQuantizer, UniformQuantizer  # noqa: E402

from tfqbnn import callbacks, layers, models, uncertainty  # noqa: E402
from tfqbnn.layers import (  # noqa: E402
    Conv1DVariational, Conv2DVariational, Conv3DVariational, DenseVariational, DepthwiseConv2DVariational,
    QuantizedConv2D, QuantizedDense, QuantizedDepthwiseConv2D, VariationalLayer,
)
from tfqbnn.uncertainty import predict_mc  # noqa: E402
from tfqbnn.propagation import predict_uncertainty  # noqa: E402
from tfqbnn.allocation import allocate_bits  # noqa: E402


def __getattr__(name):
    # datasets pulls in file handling and is not needed to build models: import on first use.
    if name == "datasets":
        import importlib

        return importlib.import_module("tfqbnn.datasets")
    raise AttributeError(f"module 'tfqbnn' has no attribute {name!r}")


__all__ = [
    "QuantizationConfig", "allocate_bits", "UniformQuantizer", "LogQuantizer", "VariationalLayer", "DenseVariational",
    "Conv1DVariational", "Conv2DVariational", "Conv3DVariational", "DepthwiseConv2DVariational", "QuantizedDense",
    "QuantizedConv2D", "QuantizedDepthwiseConv2D", "predict_mc", "predict_uncertainty",
    "callbacks", "layers", "models", "uncertainty",
]
