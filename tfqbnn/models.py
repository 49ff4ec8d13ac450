"""The paper's models: a bias-free SoftPlus MLP, Bayesian and deterministic."""

from __future__ import annotations

import keras
import numpy as np

from tfqbnn.layers import ClipWeights, DenseVariational
from tfqbnn.priors import softplus_inverse


def _check_hidden(hidden, num_classes, input_dim):
    hidden = tuple(hidden)
    for name, v in [("num_classes", num_classes), ("input_dim", input_dim)] + [
        (f"hidden[{i}]", h) for i, h in enumerate(hidden)
    ]:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise ValueError(f"`{name}` must be a positive integer; received {name}={v!r}")
    return hidden


def mlp(
    hidden=(100, 100),
    num_classes=10,
    activation="softplus",
    quantization=None,
    input_dim=784,
    num_examples=None,
    prior_std=1.0,
    init_sigma=5e-3,
    rho_scale=10.0,
    seed=None,
    name=None,
):
    """The paper's Bayesian MLP: bias-free `DenseVariational` layers, softmax output.

    Args:
        hidden: hidden layer widths.
        num_classes: output classes.
        activation: hidden activation (the paper: ``"softplus"``).
        quantization: `QuantizationConfig` or shorthand (``"fp32"``, ``"jq4"``, ...),
            applied to every layer.
        input_dim: flattened input size (784 for MNIST; inputs in [0, 1]).
        num_examples: training-set size N (the KL is divided by it).
        prior_std, init_sigma, rho_scale: see `DenseVariational`.
        seed: base seed; layer i uses ``seed + i``.

    Returns:
        An uncompiled `keras.Sequential` that outputs class probabilities.
    """
    hidden = _check_hidden(hidden, num_classes, input_dim)
    layers = [keras.Input((input_dim,))]
    for i, units in enumerate(hidden + (num_classes,)):
        layers.append(
            DenseVariational(
                units,
                activation=activation if i < len(hidden) else None,
                quantization=quantization,
                prior_std=prior_std,
                num_examples=num_examples,
                init_sigma=init_sigma,
                rho_scale=rho_scale,
                seed=None if seed is None else seed + i,
                name=f"bayes_{i}",
            )
        )
    layers.append(keras.layers.Softmax(name="probs"))
    return keras.Sequential(layers, name=name or "qbnn_mlp")


def deterministic_mlp(hidden=(100, 100), num_classes=10, activation="softplus", input_dim=784, seed=None,
                      name=None):
    """The pretraining twin of `mlp`: bias-free Dense layers, kernels clipped to [-1, 1]."""
    hidden = _check_hidden(hidden, num_classes, input_dim)
    layers = [keras.Input((input_dim,))]
    for i, units in enumerate(hidden + (num_classes,)):
        layers.append(
            keras.layers.Dense(
                units,
                activation=activation if i < len(hidden) else None,
                use_bias=False,
                kernel_constraint=ClipWeights(1.0),
                kernel_initializer=keras.initializers.GlorotUniform(seed=None if seed is None else seed + i),
                name=f"dense_{i}",
            )
        )
    layers.append(keras.layers.Softmax(name="probs"))
    return keras.Sequential(layers, name=name or "det_mlp")


def init_from_deterministic(bnn, det, init_sigma=None):
    """Copy a pretrained deterministic MLP into a Bayesian one.

    ``mu`` <- the Dense kernels (clipped to the layer's ``mu_limit``),
    ``sigma`` <- ``init_sigma`` (default: each layer's own ``init_sigma``).
    """
    bayes = [l for l in bnn.layers if isinstance(l, DenseVariational)]
    dense = [l for l in det.layers if isinstance(l, keras.layers.Dense)]
    if len(bayes) != len(dense):
        raise ValueError(
            f"init_from_deterministic: {len(bayes)} DenseVariational layers vs {len(dense)} Dense layers"
        )
    for b, d in zip(bayes, dense):
        kernel = np.asarray(d.kernel)
        if tuple(kernel.shape) != tuple(b.mu.shape):
            raise ValueError(
                f"init_from_deterministic: layer {b.name} has mu shape {tuple(b.mu.shape)}, "
                f"{d.name} has kernel shape {tuple(kernel.shape)}"
            )
        b.mu.assign(np.clip(kernel, -b.mu_limit, b.mu_limit))
        sigma = b.init_sigma if init_sigma is None else float(init_sigma)
        b.rho.assign(np.full(kernel.shape, softplus_inverse(sigma) / b.rho_scale, np.float32))
        if b.use_bias and d.use_bias:
            b.bias.assign(np.asarray(d.bias))
    return bnn
