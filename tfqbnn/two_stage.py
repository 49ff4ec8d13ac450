"""The two-stage training recipe on your own data: deterministic twin, then the Bayesian model by SVI.

`fit_two_stage` is what `tfqbnn.training` does for Dirty-MNIST, without the run folders and for any
data: (1) train the bias-free deterministic twin of the architecture (kernels clipped to [-1, 1]);
(2) build the (quantized) Bayesian model, copy the twin in (`tfqbnn.models.init_from_deterministic`:
mu <- the trained weights, sigma <- ``init_sigma``) and train it by stochastic variational inference
with the KL weight ramped linearly from 0 to 1 over the first ``kl_warmup`` of the steps
(`tfqbnn.callbacks.KLAnnealing`), Adam with a cosine-decayed learning rate, and a
`tfqbnn.callbacks.FrozenSigmaCheck` that warns about layers whose sigma stayed below half the 4-bit
sample step.  The defaults are the ``fast`` profile's (`tfqbnn.training.PROFILES`).
"""

from __future__ import annotations

import collections
import inspect

import keras
import numpy as np

TwoStageResult = collections.namedtuple("TwoStageResult", "model deterministic pretrain_history bnn_history")


def _steps_and_examples(x, y, batch_size, num_examples, steps_per_epoch):
    """(steps per epoch, number of training examples) of arrays or a batched tf.data dataset."""
    import tensorflow as tf

    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise ValueError("pass `y=None` with a tf.data dataset (it yields (x, y) batches)")
        card = int(x.cardinality())
        if steps_per_epoch is None:
            if card < 0:
                raise ValueError("the dataset's cardinality is unknown (or infinite): pass `steps_per_epoch`")
            steps_per_epoch = card
        if num_examples is None:
            raise ValueError("with a tf.data dataset pass `num_examples` (the number of training examples: the KL "
                             "term of the ELBO is divided by it)")
        return int(steps_per_epoch), int(num_examples)
    n = len(x)
    if y is None or len(y) != n:
        raise ValueError(f"`x` and `y` must be arrays of the same length; received {n} and "
                         f"{None if y is None else len(y)}")
    return (int(steps_per_epoch) if steps_per_epoch else int(np.ceil(n / batch_size))), int(num_examples or n)


def fit_two_stage(x, y=None, *, arch="mlp", bayesian="all", quantization="jq4", model=None, deterministic=None,
                  validation_data=None, pretrain_epochs=10, bnn_epochs=5, batch_size=128, pretrain_lr=3e-3,
                  bnn_lr=1e-3, lr_schedule="cosine", kl_warmup=0.5, init_sigma=5e-3, prior_std=1.0, rho_scale=10.0,
                  num_examples=None, steps_per_epoch=None, seed=0, callbacks=(), verbose="auto", **model_kwargs):
    """Train a Bayesian model on ``(x, y)`` (or a tf.data dataset) by the two-stage recipe.

    Args:
        x, y: training images and integer labels (arrays), or ``x`` a batched ``tf.data.Dataset`` of
            ``(images, labels)`` and ``y=None`` (then ``num_examples`` is required, and ``steps_per_epoch``
            when its cardinality is unknown).
        arch, bayesian: the `tfqbnn.models` builders: ``"mlp"`` or ``"lenet5"``; ``"all"`` or (LeNet-5) ``"head"``.
        quantization: ``"jq4"``, ``"fp32"``, ... or a `QuantizationConfig`.
        model, deterministic: your own Bayesian model (with `tfqbnn.layers` variational layers) and its
            deterministic twin (same structure, plain Dense / Conv2D), instead of ``arch``; both untrained.
        validation_data: passed to both ``fit`` calls.
        pretrain_epochs, pretrain_lr: stage 1 (Adam, the learning rate decayed by ``lr_schedule``).
        bnn_epochs, bnn_lr: stage 2.
        lr_schedule: ``"cosine"``, ``"step"`` or ``"constant"`` (`tfqbnn.training.lr_schedule`).
        kl_warmup: fraction of the stage-2 steps over which the KL weight ramps from 0 to 1.
        init_sigma, prior_std, rho_scale: the variational layers' (`tfqbnn.layers.DenseVariational`).
        num_examples: the number of training examples the ELBO is scaled by (arrays: ``len(x)``).
        seed: weights, shuffling and sampling.
        callbacks: extra Keras callbacks for stage 2.
        **model_kwargs: more arguments of the builders (``num_classes``, ``input_dim``, ``hidden``,
            ``activation``, ...).

    Returns:
        `TwoStageResult` ``(model, deterministic, pretrain_history, bnn_history)``.
    """
    from tfqbnn import callbacks as qcallbacks
    from tfqbnn import models
    from tfqbnn.training import lr_schedule as make_schedule

    if (model is None) != (deterministic is None):
        raise ValueError("pass both `model` and `deterministic` (its twin), or neither (then `arch` is built)")
    steps, n = _steps_and_examples(x, y, batch_size, num_examples, steps_per_epoch)
    keras.utils.set_random_seed(seed)
    if deterministic is None:
        twin = {"mlp": models.deterministic_mlp, "lenet5": models.deterministic_lenet5}.get(arch)
        if twin is None:
            raise ValueError(f"`arch` must be one of {list(models.ARCHS)}; received arch={arch!r}")
        accepted = inspect.signature(twin).parameters
        deterministic = twin(seed=seed, **{k: v for k, v in model_kwargs.items() if k in accepted})
    fit_args = dict(batch_size=batch_size, shuffle=True) if y is not None else {}
    if steps_per_epoch:
        fit_args["steps_per_epoch"] = steps
    deterministic.compile(keras.optimizers.Adam(make_schedule(lr_schedule, pretrain_lr, pretrain_epochs, steps)),
                          "sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=True)
    h1 = deterministic.fit(x, y, epochs=pretrain_epochs, validation_data=validation_data, verbose=verbose,
                           **fit_args)
    if model is None:
        extra = {}
        from tfqbnn.config import QuantizationConfig

        q = QuantizationConfig.get(quantization)
        if bayesian == "head":  # the deterministic layers quantized to the variational weight bits
            extra["deterministic_bits"] = q.weight_bits
        model = models.bayesian_model(arch, bayesian, quantization=q, num_examples=n, prior_std=prior_std,
                                      init_sigma=init_sigma, rho_scale=rho_scale, seed=seed, **extra, **model_kwargs)
    models.init_from_deterministic(model, deterministic, init_sigma=init_sigma)
    model.compile(keras.optimizers.Adam(make_schedule(lr_schedule, bnn_lr, bnn_epochs, steps)),
                  "sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=True)
    cbs = [qcallbacks.KLAnnealing("linear", warmup=kl_warmup, total_steps=bnn_epochs * steps),
           qcallbacks.FrozenSigmaCheck(), *callbacks]
    h2 = model.fit(x, y, epochs=bnn_epochs, validation_data=validation_data, verbose=verbose, callbacks=cbs,
                   **fit_args)
    return TwoStageResult(model, deterministic, h1, h2)
