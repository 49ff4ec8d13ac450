"""tfqbnn: uncertainty-preserving quantized Bayesian neural networks for Keras 3.

Implements "Uncertainty-Preserving QBNNs: Multi-Level Quantization of SVI-Based
Bayesian Neural Networks" (arXiv 2512.10602): a mean-field Gaussian
`DenseVariational` layer with VPQ / SPQ / JQ quantization, KL annealing, and
Monte-Carlo uncertainty decomposition.
"""

__version__ = "0.1.0"

from tfqbnn.config import QuantizationConfig  # noqa: E402
from tfqbnn.quantizers import LogQuantizer, UniformQuantizer  # noqa: E402

_LAZY = {
    "layers": "tfqbnn.layers",
    "callbacks": "tfqbnn.callbacks",
    "uncertainty": "tfqbnn.uncertainty",
    "models": "tfqbnn.models",
    "datasets": "tfqbnn.datasets",
    "predict_mc": "tfqbnn.uncertainty",
    "DenseVariational": "tfqbnn.layers",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        mod = importlib.import_module(_LAZY[name])
        return mod if _LAZY[name].endswith(name) else getattr(mod, name)
    raise AttributeError(f"module 'tfqbnn' has no attribute {name!r}")


__all__ = ["QuantizationConfig", "UniformQuantizer", "LogQuantizer", "predict_mc", "DenseVariational"]
