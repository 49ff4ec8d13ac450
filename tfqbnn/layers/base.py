"""`VariationalLayer`: the shared base of the Bayesian layers, and their fused weight sampler."""

from __future__ import annotations

import contextlib
import contextvars
import os
import warnings
import zlib

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfqbnn import noise, priors
from tfqbnn.config import QuantizationConfig
from qbnn_safeio import check_seed

# Number of independent weight samples drawn per call (Monte-Carlo vectorisation).
# `predict_mc` tiles its batch S times and sets this to S: every variational
# layer then treats its batch as S blocks and draws one weight sample per block.
_SAMPLE_GROUPS = contextvars.ContextVar("tfqbnn_sample_groups", default=1)
# ids of the layers that receive B untiled rows and emit S * B (the first variational
# layer after a deterministic prefix, which then runs once, not S times).
_SHARED_INPUT = contextvars.ContextVar("tfqbnn_shared_input", default=frozenset())


@contextlib.contextmanager
def sample_groups(num_samples, shared_input_layers=()):
    """Within this context, a batch of ``S * B`` rows is S blocks with one weight sample each.

    The layers in ``shared_input_layers`` instead take B rows and return ``S * B``
    (each of their S kernels applied to the same rows).
    """
    if int(num_samples) < 1:
        raise ValueError(f"`num_samples` must be >= 1; received num_samples={num_samples}")
    token = _SAMPLE_GROUPS.set(int(num_samples))
    token2 = _SHARED_INPUT.set(frozenset(id(layer) for layer in shared_input_layers))
    try:
        yield
    finally:
        _SHARED_INPUT.reset(token2)
        _SAMPLE_GROUPS.reset(token)


@keras.saving.register_keras_serializable(package="tfqbnn")
class ClipWeights(keras.constraints.Constraint):
    """Elementwise clip to ``[-limit, limit]`` (the paper keeps weights in [-1, 1])."""

    def __init__(self, limit=1.0):
        self.limit = float(limit)

    def __call__(self, w):
        return ops.clip(w, -self.limit, self.limit)

    def get_config(self):
        return {"limit": self.limit}


class VariationalLayer(keras.layers.Layer):
    """Base of the mean-field Gaussian layers trained by stochastic variational inference.

    Holds what does not depend on how the kernel is applied: the argument checks,
    the posterior parameters ``mu`` / ``rho`` of a kernel whose shape the subclass
    gives (`kernel_shape`), an optional point-estimate bias, the non-trainable
    ``kl_weight``, the random generator, the fused sampler (one weight sample per
    call, or S per call under `sample_groups`), the KL loss and `get_config`.

    Each weight has a posterior ``N(mu, sigma^2)`` with ``sigma = softplus(rho_scale * rho)``.
    Every call draws one weight sample for the whole batch, ``w = mu + sigma * eps``,
    in training and (by default) at inference, so repeated predictions are Monte-Carlo
    samples of the predictive distribution.  Quantization (`QuantizationConfig`):

    * VPQ: ``w = Qu(mu) + Qlog(sigma) * eps``
    * SPQ: ``w = Qu(mu + sigma * eps)``
    * JQ:  ``w = Qu(Qu(mu) + Qlog(sigma) * eps)``

    with straight-through-estimator gradients, so ``mu`` and ``rho`` are trained
    through the quantizers.

    The layer adds ``kl_weight * KL(q || p) / num_examples`` to the model's losses.
    With a mean cross-entropy loss over the batch this makes the training loss the
    negative ELBO divided by the number of training examples N:
    ``-ELBO / N = mean_i[-log p(y_i | x_i, w)] + KL / N``.  ``kl_weight`` is a
    non-trainable variable, annealed by `tfqbnn.callbacks.KLAnnealing`.  The KL is
    always computed on the unquantized ``mu`` and ``sigma`` (a quantized sigma can be
    zero under a uniform grid, which would make it infinite).

    Subclasses implement `kernel_shape`, `output_channels` and `apply_kernel`
    (and may override `apply_kernel_grouped` / `apply_kernel_shared` with a faster
    form); `get_config` adds their own arguments.

    Args:
        activation: activation function (name or callable) applied last.
        use_bias: bool; if True, adds a deterministic (point-estimate) bias.  The
            paper's model is bias-free.
        quantization: `QuantizationConfig`, a shorthand string (``"fp32"``,
            ``"vpq4"``, ``"spq7"``, ``"jq4"``, ...), a config dict, or None.
        prior_std: positive float, std of the default ``N(0, prior_std^2)`` prior.
        prior: optional ``tfp.distributions`` distribution used instead of the
            Gaussian prior (analytic KL if TFP has one, else Monte Carlo).  Not
            serialized: a model using it must be rebuilt in code.
        num_examples: number of training examples N for the ELBO scaling (None: 1).
        init_sigma: initial posterior std (positive).
        rho_scale: positive float; ``sigma = softplus(rho_scale * rho)``.  Values > 1
            make sigma learn ``rho_scale`` times faster than mu under one optimizer
            (without it sigma stays far below the SPQ step and low-bit models
            become deterministic).
        mu_limit: mu is clipped to ``[-mu_limit, mu_limit]`` after each update.
        sample_at_inference: if False, inference uses the (quantized) mean weights
            instead of sampling; training always samples.
        seed: int or None, seed of the layer's random generator.
        kernel_initializer: initializer of the posterior means ``mu`` (name, config or
            `keras.initializers.Initializer`); None: Glorot uniform seeded by ``seed``.
        bias_initializer: initializer of the bias (with ``use_bias=True``).
    """

    def __init__(
        self,
        activation=None,
        use_bias=False,
        quantization=None,
        prior_std=1.0,
        prior=None,
        num_examples=None,
        init_sigma=5e-3,
        rho_scale=10.0,
        mu_limit=1.0,
        sample_at_inference=True,
        seed=None,
        kernel_initializer=None,
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, v in (("prior_std", prior_std), ("init_sigma", init_sigma), ("rho_scale", rho_scale),
                        ("mu_limit", mu_limit)):
            if not (isinstance(v, (int, float, np.floating)) and np.isfinite(v) and v > 0):
                raise ValueError(f"`{name}` must be a positive finite number; received {name}={v!r}")
        if num_examples is not None and (not isinstance(num_examples, (int, np.integer)) or num_examples <= 0):
            raise ValueError(f"`num_examples` must be a positive integer or None; received num_examples={num_examples!r}")
        if prior is not None and not priors.is_tfp_distribution(prior):
            raise ValueError(f"`prior` must be a tensorflow_probability distribution or None; received {prior!r}")
        if seed is not None:
            check_seed(seed)
        self.activation = keras.activations.get(activation)
        for name, v in (("kernel_initializer", kernel_initializer), ("bias_initializer", bias_initializer)):
            try:
                keras.initializers.get(v)
            except (ValueError, TypeError):
                raise ValueError(f"`{name}` must be a Keras initializer (name, config or instance); "
                                 f"received {name}={v!r}") from None
        self.kernel_initializer = None if kernel_initializer is None else keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.use_bias = bool(use_bias)
        self.quantization = QuantizationConfig.get(quantization)
        self.prior_std = float(prior_std)
        self.prior = prior
        self.num_examples = None if num_examples is None else int(num_examples)
        self.init_sigma = float(init_sigma)
        self.rho_scale = float(rho_scale)
        self.mu_limit = float(mu_limit)
        self.sample_at_inference = bool(sample_at_inference)
        self.seed = seed
        self._rng = None
        self._pending_kl_weight = 1.0
        self._warned_num_examples = False

    # -- what a subclass defines ------------------------------------------------------
    def kernel_shape(self, input_shape):
        """Shape of ``mu`` / ``rho`` for inputs of ``input_shape`` (validates the shape)."""
        raise NotImplementedError

    def output_channels(self, input_shape):
        """Size of the last output axis (the bias length)."""
        raise NotImplementedError

    def apply_kernel(self, inputs, kernel):
        """The layer's linear map of ``inputs`` with one kernel (no bias, no activation)."""
        raise NotImplementedError

    def apply_kernel_grouped(self, inputs, kernels):
        """``inputs`` of ``G * B`` rows (G blocks), block g with ``kernels[g]``.

        Default: G `apply_kernel` ops in the one traced graph (TF runs them in
        parallel); on 2 CPU cores this was faster than one grouped convolution
        (scripts/bench_train.py measures predict_mc against S separate calls).
        """
        groups = kernels.shape[0]
        blocks = tf.split(inputs, groups, axis=0)
        return tf.concat([self.apply_kernel(x, kernels[g]) for g, x in enumerate(blocks)], axis=0)

    def apply_kernel_shared(self, inputs, kernels):
        """``inputs`` of B rows used with each of the G kernels: ``G * B`` rows out, sample-major.

        The first variational layer of a partial-Bayesian model gets the
        deterministic prefix's output once (see `tfqbnn.uncertainty.predict_mc`).
        Default: tile the rows and use `apply_kernel_grouped`.
        """
        groups = kernels.shape[0]
        return self.apply_kernel_grouped(tf.tile(inputs, [groups] + [1] * (len(inputs.shape) - 1)), kernels)

    # -- Keras API ----------------------------------------------------------------------
    def build(self, input_shape):
        shape = tuple(int(d) for d in self.kernel_shape(input_shape))
        self.mu = self.add_weight(
            name="mu",
            shape=shape,
            initializer=self.kernel_initializer or keras.initializers.GlorotUniform(seed=self.seed),
            constraint=ClipWeights(self.mu_limit),
            autocast=False,  # sampled and KL in float32 under mixed precision; w is cast after
        )
        rho0 = priors.softplus_inverse(self.init_sigma) / self.rho_scale
        self.rho = self.add_weight(name="rho", shape=shape, initializer=keras.initializers.Constant(rho0),
                                   autocast=False)
        channels = int(self.output_channels(input_shape))
        self.bias = self.add_weight(name="bias", shape=(channels,), initializer=self.bias_initializer) if self.use_bias else None
        self.kl_weight = self.add_weight(
            name="kl_weight", shape=(), initializer=keras.initializers.Constant(self._pending_kl_weight),
            trainable=False, autocast=False,
        )
        # Holds the layer's random state; each call takes one 64-bit key from it and
        # `tfqbnn.noise` turns the key into eps inside the fused weight cluster.
        with tf.init_scope():
            self._rng = (
                tf.random.Generator.from_seed(self._salted(self.seed))
                if self.seed is not None
                else tf.random.Generator.from_non_deterministic_state()
            )

    def _salted(self, seed):
        """``seed`` with the layer's name mixed in: layers given one seed draw independent eps."""
        return [int(seed), zlib.crc32(self.name.encode())]

    def set_kl_weight(self, value):
        """Set the KL weight; before `build` it becomes the variable's initial value."""
        if self.built:
            self.kl_weight.assign(float(value))
        else:
            self._pending_kl_weight = float(value)

    @property
    def sigma(self):
        return tf.math.softplus(self.rho_scale * tf.convert_to_tensor(self.rho))

    def reseed(self, seed):
        """Reset the layer's random generator (for reproducible Monte-Carlo runs)."""
        self._rng.reset_from_seed(self._salted(seed))

    def sample_kernel(self, groups=1, sample=True):
        """Kernels ``[groups, *kernel_shape]``: sampled (and quantized) as in `call`, or the (quantized) mean."""
        w, _ = _weights_and_kl(
            tf.convert_to_tensor(self.mu), tf.convert_to_tensor(self.rho),
            noise.new_key(self._rng) if sample else None, int(groups), False, **self._static_args(),
        )
        return w

    def _static_args(self):
        q = self.quantization
        return dict(rho_scale=self.rho_scale, prior_std=self.prior_std, mu_q=q.mu_quantizer,
                    sigma_q=q.sigma_quantizer, sample_q=q.sample_quantizer)

    def call(self, inputs, training=None):
        inputs = tf.convert_to_tensor(inputs)
        sample = bool(training) or self.sample_at_inference
        groups = _SAMPLE_GROUPS.get()
        shared = id(self) in _SHARED_INPUT.get()
        with_kl = bool(training) and self.prior is None
        w, kl = _weights_and_kl(
            tf.convert_to_tensor(self.mu), tf.convert_to_tensor(self.rho),
            noise.new_key(self._rng) if sample else None, groups, with_kl, **self._static_args(),
        )
        # static shape for the subclasses' reshapes (the compiled sampler returns it dynamic)
        w = tf.ensure_shape(w, (groups if sample else 1,) + tuple(self.mu.shape))
        w = tf.cast(w, inputs.dtype)  # float16 under a mixed policy; mu, rho and the KL stay float32
        if groups == 1:
            y = self.apply_kernel(inputs, w[0])
        elif not sample:  # the mean kernel, the same for every block
            y = self.apply_kernel(inputs, w[0])
            if shared:
                y = tf.tile(y, [groups] + [1] * (len(y.shape) - 1))
        elif shared:
            y = self.apply_kernel_shared(inputs, w)
        else:
            y = self.apply_kernel_grouped(inputs, w)
        if self.use_bias:
            y = y + self.bias
        if training:
            if self.num_examples is None and not self._warned_num_examples:
                self._warned_num_examples = True
                warnings.warn(
                    f"{type(self).__name__} '{self.name}' has num_examples=None: its KL term is not divided by the "
                    "number of training examples and can keep training at chance; pass "
                    "num_examples=len(x_train).", UserWarning, stacklevel=2)
            if self.prior is not None:
                kl = self.kl_divergence()
            self.add_loss(tf.convert_to_tensor(self.kl_weight) * kl / float(self.num_examples or 1))
        return self.activation(y) if self.activation is not None else y

    def kl_divergence(self):
        """KL(q || p) summed over the layer's weights (unquantized mu and sigma)."""
        mu, sigma = tf.convert_to_tensor(self.mu), self.sigma
        if self.prior is None:
            return priors.gaussian_kl(mu, sigma, self.prior_std)
        w = mu + sigma * self._rng.normal(tuple(mu.shape), dtype=mu.dtype)
        return priors.distribution_kl(mu, sigma, self.prior, w)

    def get_config(self):
        if self.prior is not None:
            raise NotImplementedError(
                f"{type(self).__name__} with a custom tfp `prior` cannot be serialized; use `prior_std` "
                "or rebuild the model in code and load weights"
            )
        config = super().get_config()
        config.update(
            {
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "quantization": self.quantization.get_config(),
                "prior_std": self.prior_std,
                "num_examples": self.num_examples,
                "init_sigma": self.init_sigma,
                "rho_scale": self.rho_scale,
                "mu_limit": self.mu_limit,
                "sample_at_inference": self.sample_at_inference,
                "seed": self.seed,
                "kernel_initializer": (None if self.kernel_initializer is None
                                       else keras.initializers.serialize(self.kernel_initializer)),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["activation"] = keras.activations.deserialize(config["activation"])
        return cls(**config)


def _weights_and_kl(*args, **kwargs):
    """`_fused_weights_and_kl`, compiled with XLA on its own unless the caller already is.

    Inside a ``jit_compile=True`` train step it is inlined: a nested compiled
    function carrying a custom gradient runs ~200x slower there.  Otherwise
    (Keras' default on CPU) it is its own XLA cluster.
    """
    if _in_xla_context() or os.environ.get("TFQBNN_XLA", "1") != "1":
        return _fused_weights_and_kl(*args, **kwargs)
    return _fused_weights_and_kl_xla(*args, **kwargs)


def _in_xla_context():
    try:  # private API, the check tf.function itself uses for nested jit functions
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - only if TF moves it
        return False
    return control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph())


def _materialize(pred, *xs):
    """``xs`` unchanged, but computed once and stored when compiled by XLA.

    XLA:CPU fuses an elementwise producer into every consumer, so eps (a hash and
    an inverse CDF per weight) would be recomputed in the forward loop and again
    in each loop of the backward pass and of the optimizer (XLA:CPU also drops
    optimization barriers).  It cannot fuse across a conditional: a `tf.cond`
    whose two branches are both the identity makes it store the values once.
    ``pred`` only has to be unknown at compile time; either branch gives ``xs``.
    """
    if not _in_xla_context():
        return xs
    return tuple(tf.cond(pred, lambda: [tf.identity(x) for x in xs], lambda: [tf.identity(x) for x in xs]))


def _fused_weights_and_kl(mu, rho, key, groups, with_kl, rho_scale, prior_std, mu_q, sigma_q, sample_q):
    """``groups`` sampled, quantized weight tensors and the Gaussian KL.

    ``w = Qs(Qm(mu) + Qv(sigma) * eps)`` with ``sigma = softplus(rho_scale * rho)``
    and the quantizers of the config (None: identity); ``key`` is None to use the
    (quantized) mean.  The KL is computed on the unquantized ``mu`` and ``sigma``.

    The gradient is written by hand (``tf.custom_gradient``, each quantizer's
    STE through its ``ste_grad``) so that, under XLA, the forward pass and the
    backward pass are each a handful of loops over the weights, eps is generated
    once per step (`_materialize`), and the optimizer reads stored gradients.
    """
    shape = tf.concat([[groups], tf.shape(mu)], 0)
    ps2 = float(prior_std) ** 2
    # any predicate unknown at compile time will do for `_materialize`
    opaque = None if key is None else tf.not_equal(key[0], key[1])

    @tf.custom_gradient
    def fn(mu, rho):
        z = rho_scale * rho
        sigma = tf.math.softplus(z)
        mu_used = mu_q.quantize(mu) if mu_q is not None else mu
        if key is None:
            w, eps = mu_used[None], None
        else:
            sigma_used = sigma_q.quantize(sigma) if sigma_q is not None else sigma
            (eps,) = _materialize(opaque, noise.normal(key, shape, mu.dtype))
            pre = mu_used[None] + sigma_used[None] * eps
            w = sample_q.quantize(pre) if sample_q is not None else pre
        kl = priors.gaussian_kl(mu, sigma, prior_std) if with_kl else tf.zeros((), mu.dtype)

        def grad(dw, dkl):
            dsigma_drho = rho_scale * tf.math.sigmoid(z)
            g = dw * sample_q.ste_grad(pre, w) if (sample_q is not None and key is not None) else dw
            dmu = tf.reduce_sum(g, 0)
            if mu_q is not None:
                dmu = dmu * mu_q.ste_grad(mu, mu_used)
            if key is None:
                drho = tf.zeros_like(rho)
            else:
                dsigma = tf.reduce_sum(g * eps, 0)
                if sigma_q is not None:
                    dsigma = dsigma * sigma_q.ste_grad(sigma, sigma_used)
                drho = dsigma * dsigma_drho
            if with_kl:
                dmu = dmu + dkl * mu / ps2
                drho = drho + dkl * (sigma / ps2 - 1.0 / sigma) * dsigma_drho
            if key is not None:
                dmu, drho = _materialize(opaque, dmu, drho)
            return dmu, drho

        return (w, kl), grad

    return fn(mu, rho)


_fused_weights_and_kl_xla = tf.function(_fused_weights_and_kl, jit_compile=True, reduce_retracing=True)
