"""`DenseVariational`: a mean-field Gaussian dense layer with VPQ / SPQ / JQ quantization."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfqbnn.layers.base import VariationalLayer


@keras.saving.register_keras_serializable(package="tfqbnn")
class DenseVariational(VariationalLayer):
    """Mean-field Gaussian dense layer (`VariationalLayer` with a ``(input_dim, units)`` kernel).

    Args:
        units: positive int, output dimension.
        activation: activation function (name or callable), applied after the
            matmul.  The paper uses ``"softplus"``.
        use_bias: bool; if True, adds a deterministic (point-estimate) bias.  The
            paper's model is bias-free.
        **kwargs: ``quantization``, ``prior_std``, ``prior``, ``num_examples``,
            ``init_sigma``, ``rho_scale``, ``mu_limit``, ``sample_at_inference``,
            ``seed`` (see `VariationalLayer`) and the base Layer's arguments.

    Input shape:
        2D tensor ``(batch_size, input_dim)``.
    Output shape:
        2D tensor ``(batch_size, units)``.
    """

    keras_class = keras.layers.Dense  # its deterministic twin (models.init_from_deterministic)

    def __init__(self, units, activation=None, use_bias=False, **kwargs):
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"`units` must be a positive integer; received units={units!r}")
        super().__init__(activation=activation, use_bias=use_bias, **kwargs)
        self.units = int(units)
        self.input_spec = keras.layers.InputSpec(min_ndim=2, max_ndim=2)

    def kernel_shape(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f"DenseVariational needs a known last input dimension; received input_shape={input_shape}")
        self.input_spec = keras.layers.InputSpec(min_ndim=2, max_ndim=2, axes={-1: input_dim})
        return (input_dim, self.units)

    def output_channels(self, input_shape):
        return self.units

    def apply_kernel(self, inputs, kernel):
        return tf.matmul(inputs, kernel)

    def apply_kernel_grouped(self, inputs, kernels):
        # one batched matmul: [G, B, in] @ [G, in, out]
        x = tf.reshape(inputs, (kernels.shape[0], -1, inputs.shape[-1]))
        return tf.reshape(tf.matmul(x, kernels), (-1, self.units))

    def apply_kernel_shared(self, inputs, kernels):
        # one matmul with the G kernels side by side: [B, in] @ [in, G * out]
        g = kernels.shape[0]
        wide = tf.reshape(tf.transpose(kernels, (1, 0, 2)), (inputs.shape[-1], g * self.units))
        y = tf.reshape(tf.matmul(inputs, wide), (-1, g, self.units))
        return tf.reshape(tf.transpose(y, (1, 0, 2)), (-1, self.units))

    def sample_weights(self, groups=1, sample=True):
        """Weights ``[groups, in, out]`` (`sample_kernel`, under its historical name)."""
        return self.sample_kernel(groups, sample)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config["units"] = self.units
        return config
