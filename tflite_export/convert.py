"""Keras JQ model -> `IntegerModel` (codes, calibrated scales, LUTs) -> model.tflite,
model_split.tflite and manifest.json (SPEC.md sections 1, 4, 5, 6)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from tflite_export import artifacts, storage
from tflite_export.intmath import sampler
from tflite_export.ir.activation import TIE_MARGIN, tie_free_softplus_lut  # noqa: F401
from tflite_export.ir.weighted import range_to_affine as _range_to_affine  # noqa: F401
from tflite_export.reference import (
    INPUT_SCALE,
    INPUT_ZERO_POINT,
    IntegerLayer,
    IntegerModel,
)

MANIFEST_VERSION = artifacts.MANIFEST_VERSION


def _activation_name(layer):
    import keras

    act = layer.activation
    if act is None:
        return "linear"
    name = keras.activations.serialize(act)
    if isinstance(name, dict):
        name = name.get("config", name.get("class_name"))
    return str(name)


def check_model(model, weights):
    """Validate a Keras model against SPEC.md section 1; returns [(layer, activation, layout)]."""
    import keras

    from tfqbnn.layers import DenseVariational

    storage.choose_layout(weights, 2, 2)  # validates the mode string
    if not isinstance(model, keras.Sequential):
        raise ValueError(f"only keras.Sequential models can be exported; received {type(model).__name__}")
    layers = list(model.layers)
    if not layers or not isinstance(layers[-1], keras.layers.Softmax):
        last = layers[-1].name if layers else None
        raise ValueError(f"the model must end with keras.layers.Softmax; last layer is {last!r}")
    axis = layers[-1].axis
    if isinstance(axis, (list, tuple)) and len(axis) == 1:
        axis = axis[0]
    if axis not in (-1, 1):  # the integer softmax runs over the classes of one image, like TFLite's SOFTMAX
        raise ValueError(f"layer {layers[-1].name!r}: Softmax(axis={axis!r}) is not supported; the integer model "
                         "normalizes over the class axis only (axis=-1)")
    bayes = layers[:-1]
    if not bayes:
        raise ValueError("the model has no DenseVariational layer before its Softmax")
    out = []
    for i, layer in enumerate(bayes):
        where = f"layer {layer.name!r}"
        if not isinstance(layer, DenseVariational):
            raise ValueError(f"{where}: {type(layer).__name__} is not supported (only DenseVariational then Softmax)")
        if layer.use_bias:
            raise ValueError(f"{where}: biases are not supported (use_bias=True)")
        if not layer.sample_at_inference:  # the integer model always samples: it would not match this Keras model
            raise ValueError(f"{where}: sample_at_inference=False is not supported; the exported model samples its "
                             "weights at inference (set sample_at_inference=True, or export a deterministic model "
                             "another way)")
        q = layer.quantization
        if q.strategy != "jq":
            raise ValueError(f"{where}: quantization {q.name!r} is not supported; only JQ models can be exported")
        if q.mu_bits != q.sample_bits:
            raise ValueError(f"{where}: mu_bits={q.mu_bits} != sample_bits={q.sample_bits}; the mu grid must be the SPQ grid")
        if q.clip != 1.0:
            raise ValueError(f"{where}: clip={q.clip} is not supported (the SPQ grid must be [-1, 1])")
        if q.sigma_quantizer_kind != "log":
            raise ValueError(f"{where}: sigma_quantizer={q.sigma_quantizer_kind!r} is not supported (only 'log')")
        layout = storage.choose_layout(weights, q.mu_bits, q.sigma_bits, where)
        act = _activation_name(layer)
        last = i == len(bayes) - 1
        if act not in ("softplus", "relu", "linear"):
            raise ValueError(f"{where}: activation {act!r} is not supported (softplus, relu or linear)")
        if last and act != "linear":
            raise ValueError(f"{where}: the last DenseVariational must have no activation before Softmax; got {act!r}")
        out.append((layer, act, layout))
    return out


def integer_model_from_keras(model, weights="int4", seed=0):
    """Codes and tables of every layer (scales uncalibrated)."""
    from tfqbnn.quantizers import UniformQuantizer

    layers = []
    for index, (layer, act, layout) in enumerate(check_model(model, weights)):
        q = layer.quantization
        mu = np.asarray(layer.mu.numpy(), np.float64).T  # [out, in]
        sigma = np.asarray(layer.sigma.numpy(), np.float64).T
        layers.append(IntegerLayer(
            name=layer.name, index=index,
            mu_codes=UniformQuantizer(q.mu_bits, 1.0).codes(mu).astype(np.int16),
            sigma_codes=q.sigma_quantizer.codes(sigma).astype(np.int16),
            weight_bits=q.mu_bits, sigma_bits=q.sigma_bits, layout=layout,
            sigma_q=sampler.sigma_q_table(q.sigma_quantizer, q.mu_bits),
            sigma_range=tuple(q.sigma_range), activation=act,
            input_scale=INPUT_SCALE, input_zero_point=INPUT_ZERO_POINT,
        ))
    return IntegerModel(layers, default_seed=seed)


def calibrate(imodel, x, num_samples=4, seed=None):
    """Set every op's quantization (output scale / zero point, SoftPlus LUT) from calibration images: each op is
    calibrated on the integer outputs of the ops before it, over `num_samples` weight samples (SPEC.md section 4)."""
    streams = imodel.streams(seed)
    weights = [imodel.sample_weights(streams) for _ in range(num_samples)]
    qs = [imodel.quantize_input(x)] * num_samples
    in_quant = (INPUT_SCALE, INPUT_ZERO_POINT)
    for li, op in enumerate(imodel.layers):
        ws = [w[li] for w in weights]
        qs = op.calibrate(qs, in_quant, ws)  # pooling / reshape keep their input's quantization
        in_quant = op.output_quant(in_quant)
    return imodel


def manifest(imodel, weights):
    layers, stored_total, float_total, table_total = [], 0, 0, 0
    for layer in imodel.layers:
        entry = layer.manifest_entry()
        layers.append(entry)
        stored_total += entry["stored_bytes"]
        table_total += entry["table_bytes"]
        float_total += entry["float32_mu_sigma_bytes"]
    from tflite_export.softmax import softmax_params

    return {
        "format": artifacts.FORMAT, "version": MANIFEST_VERSION, "weights": weights,
        "default_seed": imodel.default_seed,
        "input": {"shape": [1, imodel.input_dim], "scale": float(INPUT_SCALE), "zero_point": INPUT_ZERO_POINT},
        "softmax": dict(zip(("input_multiplier", "input_left_shift", "diff_min"),
                            softmax_params(imodel.layers[-1].output_scale)),
                        output_scale=1 / 256, output_zero_point=-128),
        "layers": layers,
        "totals": {"stored_weight_bytes": stored_total, "table_bytes": table_total,
                   "float32_mu_sigma_bytes": float_total,
                   "compression_weights_only": float_total / stored_total,
                   "compression_with_tables": float_total / (stored_total + table_total)},
    }


def load_calibration_images(size=1000, seed=0):
    """`size` random MNIST training images (float32 [size, 784] in [0, 1])."""
    from tfqbnn.datasets import load_mnist

    x, _ = load_mnist("train")
    idx = np.random.default_rng(seed).choice(len(x), size=min(size, len(x)), replace=False)
    return np.asarray(x)[idx]


def _refuse_foreign_files(out, names):
    """An earlier export of ours may be replaced; a user's file of the same name never is."""
    present = [n for n in names if (out / n).exists()]
    if not present:
        return
    try:
        ours = json.loads((out / artifacts.MANIFEST).read_text()).get("format") == artifacts.FORMAT
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise ValueError(f"{out}: holds '{present[0]}', which tflite_export did not write (no export "
                         f"{artifacts.MANIFEST} beside it); choose another --out")


def _write_atomic(path, data):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def export_all(model, out_dir, weights="int4", seed=0, calibration_x=None, calibration_samples=4, extra_writers=()):
    """Export a Keras JQ model (or a .keras path): returns {"integer_model", "manifest", paths...}.

    `extra_writers`: callables f(integer_model, manifest, out_dir) run after the standard files
    (hook for model_data.c/.h of the Cortex-M runtime).
    """
    from tflite_export import tflite_io

    if isinstance(model, (str, Path)):
        import keras

        import tfqbnn.layers  # noqa: F401  (registers DenseVariational)

        path = Path(model)
        if not path.is_file():
            raise ValueError(f"model file not found: {path}")
        model = keras.saving.load_model(path)
    out = Path(out_dir)
    _refuse_foreign_files(out, ("model.tflite", "model_split.tflite", artifacts.MANIFEST))
    out.mkdir(parents=True, exist_ok=True)
    imodel = integer_model_from_keras(model, weights=weights, seed=seed)
    if calibration_x is None:
        calibration_x = load_calibration_images()
    calibrate(imodel, calibration_x, num_samples=calibration_samples)
    info = manifest(imodel, weights)
    paths = {"model": out / "model.tflite", "model_split": out / "model_split.tflite",
             "manifest_path": out / artifacts.MANIFEST}
    _write_atomic(paths["model"], tflite_io.build_tflite(imodel, split=False))
    _write_atomic(paths["model_split"], tflite_io.build_tflite(imodel, split=True))
    written = {"model.tflite", "model_split.tflite"}
    before = artifacts.snapshot(out)
    for writer in extra_writers:
        writer(imodel, info, out)
    after = artifacts.snapshot(out)  # what the writers created or rewrote (never other files in out_dir)
    written |= {rel for rel, st in after.items() if before.get(rel) != st and rel != artifacts.MANIFEST}
    info["files"] = artifacts.file_entries(out, written)
    artifacts.write_manifest(out, info)  # last: a crash before this leaves no manifest claiming these files
    return {"integer_model": imodel, "manifest": info, **paths}
