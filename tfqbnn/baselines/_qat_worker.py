"""Worker process: deterministic 4-bit QAT MLP with tensorflow-model-optimization (tf_keras).

Run only as ``python -m tfqbnn.baselines._qat_worker --out-dir DIR --epochs E`` with
``TF_USE_LEGACY_KERAS=1`` in the environment (`tfqbnn.baselines.run_baseline` does it):
tfmot needs tf_keras and switches its whole process to legacy Keras.

Recipe: the bias-free 784-100-100-10 SoftPlus MLP (kernels clipped to [-1, 1]) is trained
in float, then fine-tuned with QAT: per-tensor symmetric 4-bit weights (15 levels,
``LastValueQuantizer(num_bits=4, symmetric=True, narrow_range=True, per_axis=False)``)
and 8-bit layer outputs (``MovingAverageQuantizer``).  SoftPlus has no tfmot activation
support, so the 8-bit quantizer sits on each Dense layer's output (after its activation).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from tfqbnn.baselines import _worker_io as io

_HIDDEN = (100, 100)
_NUM_CLASSES = 10


def qat_split(epochs):
    """(float epochs, QAT epochs): a third of the budget (at least one epoch) goes to QAT."""
    qat = max(1, epochs // 3)
    return max(1, epochs - qat), qat


def main(argv=None):
    args = io.parse_args(argv, __doc__.splitlines()[0])
    import tensorflow as tf

    tf_keras_version = io.check_legacy_keras(tf)
    import tf_keras as tfk
    import tensorflow_model_optimization as tfmot

    quantizers = tfmot.quantization.keras.quantizers

    class ClipConstraint(tfk.constraints.Constraint):
        def __init__(self, limit=1.0):
            self.limit = float(limit)

        def __call__(self, w):
            return tf.clip_by_value(w, -self.limit, self.limit)

        def get_config(self):
            return {"limit": self.limit}

    class Dense4BitConfig(tfmot.quantization.keras.QuantizeConfig):
        """4-bit per-tensor symmetric kernel, 8-bit output (activation included)."""

        def get_weights_and_quantizers(self, layer):
            return [(layer.kernel, quantizers.LastValueQuantizer(num_bits=4, symmetric=True, narrow_range=True,
                                                                 per_axis=False))]

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            layer.kernel = quantize_weights[0]

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [quantizers.MovingAverageQuantizer(num_bits=8, symmetric=False, narrow_range=False,
                                                      per_axis=False)]

        def get_config(self):
            return {}

    data = io.read_inputs(os.path.join(args.out_dir, io.INPUTS))
    tfk.utils.set_random_seed(args.seed)
    layers = [tfk.Input((784,))]
    for i, units in enumerate(_HIDDEN + (_NUM_CLASSES,)):
        layers.append(tfk.layers.Dense(
            units, activation="softplus" if i < len(_HIDDEN) else None, use_bias=False,
            kernel_constraint=ClipConstraint(1.0),
            kernel_initializer=tfk.initializers.GlorotUniform(seed=args.seed + i), name=f"dense_{i}"))
    float_model = tfk.Sequential(layers, name="float_mlp")  # outputs logits

    def fit(model, epochs, lr):
        steps = epochs * int(np.ceil(len(data["x_train"]) / args.batch_size))
        model.compile(tfk.optimizers.Adam(tfk.optimizers.schedules.CosineDecay(lr, max(steps, 1))),
                      tfk.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        h = model.fit(data["x_train"], data["y_train"], batch_size=args.batch_size, epochs=epochs, shuffle=True,
                      validation_data=(data["x_val"], data["y_val"]) if len(data["x_val"]) else None,
                      verbose=2 if args.verbose else 0)
        return {k: [float(v) for v in vals] for k, vals in h.history.items()}

    float_epochs, qat_epochs = qat_split(args.epochs)
    t0 = time.perf_counter()
    float_history = fit(float_model, float_epochs, 3e-3)
    t_float = time.perf_counter() - t0

    with tfmot.quantization.keras.quantize_scope({"ClipConstraint": ClipConstraint, "Dense4BitConfig": Dense4BitConfig}):
        # clone_function wraps the *trained* layers, so the annotated model shares their weights.
        annotated = tfk.models.clone_model(
            float_model,
            clone_function=lambda l: tfmot.quantization.keras.quantize_annotate_layer(l, Dense4BitConfig())
            if isinstance(l, tfk.layers.Dense) else l)
        qat_model = tfmot.quantization.keras.quantize_apply(annotated)
    qat_model.compile(loss=tfk.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    # The quantizers' ranges start at [-6, 6] and are only set by training-mode calls: calibrate them on a
    # few batches (no weight update) so that the accuracy before fine-tuning means something.
    for start in range(0, min(len(data["x_train"]), 8 * 512), 512):
        qat_model(data["x_train"][start:start + 512], training=True)
    qat_initial_val = float(qat_model.evaluate(data["x_val"], data["y_val"], batch_size=4096, verbose=0)[1]) \
        if len(data["x_val"]) else None
    t1 = time.perf_counter()
    qat_history = fit(qat_model, qat_epochs, 5e-4)
    t_qat = time.perf_counter() - t1

    # The weights the QAT model really uses at inference: each kernel through its quantizer with the
    # stored range; integer codes k in [-7, 7] times one per-tensor scale must reproduce them.
    kernels, layer_info = {}, []
    for layer in qat_model.layers:
        for weight, quantizer, qvars in getattr(layer, "_weight_vars", []):
            q = quantizer(weight, training=False, weights=qvars).numpy()
            scale = float(np.abs(q).max()) / 7.0
            codes = np.round(q / scale) if scale > 0 else np.zeros_like(q)
            kernels[layer.layer.name] = q
            layer_info.append({
                "layer": layer.layer.name, "shape": list(q.shape),
                "distinct_values": int(np.unique(q).size), "scale": scale,
                "max_abs_code": int(np.abs(codes).max()),
                "codes_reproduce_weights": bool(np.allclose(codes * scale, q, rtol=0, atol=1e-6 * max(scale, 1e-12))),
            })
    np.savez(os.path.join(args.out_dir, "quantized_kernels.npz"), **kernels)

    t2 = time.perf_counter()
    probs = {}
    for name, key in io.TEST_SETS.items():
        rows, index = io.dedupe_runs(data[key])
        probs[name] = io.softmax(qat_model.predict(rows, batch_size=4096, verbose=0))[None, index]
    t_pred = time.perf_counter() - t2
    num_weights = int(sum(int(np.prod(i["shape"])) for i in layer_info))
    info = {
        "baseline": "qat4",
        "tf_keras_version": tf_keras_version,
        "tfmot_version": tfmot.__version__,
        "float_epochs": float_epochs,
        "qat_epochs": qat_epochs,
        "float_history": float_history,
        "qat_history": qat_history,
        "float_val_accuracy": float_history.get("val_accuracy", [None])[-1],
        "qat_initial_val_accuracy": qat_initial_val,
        "val_accuracy": qat_history.get("val_accuracy", [None])[-1],
        "quantized_layers": layer_info,
        "max_distinct_weight_values": max(i["distinct_values"] for i in layer_info),
        "num_weights": num_weights,
        # 4-bit codes packed two per byte + one float32 scale per tensor
        "param_bytes": (num_weights * 4 + 7) // 8 + 4 * len(layer_info),
        "train_seconds": round(t_float + t_qat, 2),
        "float_train_seconds": round(t_float, 2),
        "qat_train_seconds": round(t_qat, 2),
        "predict_seconds": round(t_pred, 2),
    }
    io.write_outputs(args.out_dir, probs, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
