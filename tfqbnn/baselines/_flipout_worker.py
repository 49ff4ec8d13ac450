"""Worker process: an FP32 Bayesian MLP of TFP ``DenseFlipout`` layers (tf_keras).

Run only as ``python -m tfqbnn.baselines._flipout_worker --out-dir DIR --epochs E`` with
``TF_USE_LEGACY_KERAS=1`` in the environment (`tfqbnn.baselines.run_baseline` does it):
``tfp.layers`` work only with tf_keras.

Model: the bias-free 784-100-100-10 SoftPlus MLP with mean-field Gaussian kernels
(TFP's default posterior, means clipped to [-1, 1] like the paper's weights), prior
N(0, 1), KL divided by the training-set size N (the ELBO per example), trained from
scratch.  Prediction: S Monte-Carlo forward passes per image.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from tfqbnn.baselines import _worker_io as io

_HIDDEN = (100, 100)
_NUM_CLASSES = 10


def main(argv=None):
    args = io.parse_args(argv, __doc__.splitlines()[0])
    import tensorflow as tf

    tf_keras_version = io.check_legacy_keras(tf)
    import tf_keras as tfk
    import tensorflow_probability as tfp

    tfd = tfp.distributions
    data = io.read_inputs(os.path.join(args.out_dir, io.INPUTS))
    num_examples = len(data["x_train"])
    tfk.utils.set_random_seed(args.seed)

    def kl(q, p, _):
        return tfd.kl_divergence(q, p) / num_examples

    posterior = tfp.layers.util.default_mean_field_normal_fn(
        loc_constraint=lambda t: tf.clip_by_value(t, -1.0, 1.0))
    layers = [tfk.Input((784,))]
    for i, units in enumerate(_HIDDEN + (_NUM_CLASSES,)):
        layers.append(tfp.layers.DenseFlipout(
            units, activation="softplus" if i < len(_HIDDEN) else None,
            kernel_posterior_fn=posterior, kernel_divergence_fn=kl,
            bias_posterior_fn=None, seed=args.seed * 1000 + i, name=f"flipout_{i}"))
    model = tfk.Sequential(layers, name="flipout_mlp")  # outputs logits; KL terms in model.losses

    steps = args.epochs * int(np.ceil(num_examples / args.batch_size))
    model.compile(tfk.optimizers.Adam(tfk.optimizers.schedules.CosineDecay(3e-3, max(steps, 1))),
                  tfk.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    t0 = time.perf_counter()
    h = model.fit(data["x_train"], data["y_train"], batch_size=args.batch_size, epochs=args.epochs, shuffle=True,
                  validation_data=(data["x_val"], data["y_val"]) if len(data["x_val"]) else None,
                  verbose=2 if args.verbose else 0)
    t_train = time.perf_counter() - t0
    history = {k: [float(v) for v in vals] for k, vals in h.history.items()}

    s = int(args.num_samples)

    @tf.function(reduce_retracing=True)
    def logits(xb):
        return model(xb, training=False)

    def predict(x, batch=8192):
        # One call = one fresh flipout perturbation for the batch (sign-decorrelated across images);
        # the S samples of an image come from S separate calls, so they are independent draws.
        rows, index = io.dedupe_runs(x)
        out = np.empty((s, len(rows), _NUM_CLASSES), np.float32)
        for i in range(s):
            for start in range(0, len(rows), batch):
                xb = rows[start:start + batch]
                out[i, start:start + len(xb)] = io.softmax(logits(tf.constant(xb)).numpy())
        return out[:, index]

    t1 = time.perf_counter()
    probs = {name: predict(data[key]) for name, key in io.TEST_SETS.items()}
    t_pred = time.perf_counter() - t1

    sigmas = []
    for layer in model.layers:
        scale = layer.kernel_posterior.distribution.scale
        sigmas.append({"layer": layer.name, "sigma_mean": float(tf.reduce_mean(scale)),
                       "sigma_median": float(np.median(scale.numpy()))})
    num_weights = int(sum(int(np.prod(l.kernel_posterior.distribution.loc.shape)) for l in model.layers))
    info = {
        "baseline": "flipout",
        "tf_keras_version": tf_keras_version,
        "tfp_version": tfp.__version__,
        "history": history,
        "val_accuracy": history.get("val_accuracy", [None])[-1],
        "posterior_sigma": sigmas,
        "num_weights": num_weights,
        # float32 loc + untransformed scale per weight
        "param_bytes": 2 * 4 * num_weights,
        "train_seconds": round(t_train, 2),
        "predict_seconds": round(t_pred, 2),
    }
    io.write_outputs(args.out_dir, probs, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
