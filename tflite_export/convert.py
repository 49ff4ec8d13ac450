"""Keras JQ model -> `IntegerModel` (codes, calibrated scales, LUTs) -> model.tflite,
model_split.tflite and manifest.json (SPEC.md sections 1, 4, 5, 6)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

import qbnn_safeio as safeio
from tflite_export import artifacts
from tflite_export.ir.activation import TIE_MARGIN, tie_free_softplus_lut  # noqa: F401
from tflite_export.ir.weighted import range_to_affine as _range_to_affine  # noqa: F401
from tflite_export.reference import INPUT_SCALE, INPUT_ZERO_POINT, IntegerModel

MANIFEST_VERSION = artifacts.MANIFEST_VERSION


def check_model(model, weights):
    """Validate a Keras model (SPEC.md section 1, via the Keras front end); returns its IR ops."""
    from tflite_export import frontend

    return frontend.integer_ops(model, weights)[0]


def integer_model_from_keras(model, weights="int4", seed=0):
    """Codes and tables of every op (scales uncalibrated), through the Keras front end (`frontend.converters`)."""
    from tflite_export import frontend
    from tfqbnn.moments import warn_frozen_sigma

    check_weights(model)
    ops, input_shape = frontend.integer_ops(model, weights)
    warn_frozen_sigma(model, where="export: ")  # a layer that samples almost nothing exports as such
    return IntegerModel(ops, default_seed=seed, input_shape=input_shape)


def check_weights(model):
    """One-line ValueError naming the layer whose weights the integer model would not represent: NaN or inf, or a
    variational mu beyond the layer's mu_limit (training clips mu there; the codes would be clamped silently)."""
    from tfqbnn.layers import VariationalLayer
    from tfqbnn.uncertainty import check_finite_weights

    check_finite_weights(model)
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, VariationalLayer) and layer.built:
            peak = float(np.max(np.abs(np.asarray(layer.mu))))
            if peak > layer.mu_limit * (1 + 1e-6):
                raise ValueError(f"layer {layer.name!r}: mu holds values up to {peak:.3g} in magnitude, beyond its "
                                 f"mu_limit={layer.mu_limit}; the exported codes would not be this model")


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
    shape = imodel.input_shape
    for op in imodel.layers:
        entry = artifacts.op_entry(op, shape)
        shape = op.output_shape(shape)
        layers.append(entry)
        stored_total += entry["stored_bytes"]
        table_total += entry["table_bytes"]
        float_total += entry["float32_mu_sigma_bytes"]
    from tflite_export.intmath.softmax import softmax_params

    return {
        "format": artifacts.FORMAT, "version": artifacts.manifest_version(imodel), "weights": weights,
        "default_seed": imodel.default_seed,
        "input": {"shape": [1, *imodel.input_shape], "scale": float(INPUT_SCALE), "zero_point": INPUT_ZERO_POINT},
        "softmax": dict(zip(("input_multiplier", "input_left_shift", "diff_min"),
                            softmax_params(imodel.quants()[-1][0])),
                        output_scale=1 / 256, output_zero_point=-128),
        "layers": layers,
        "totals": {"stored_weight_bytes": stored_total, "table_bytes": table_total,
                   "float32_mu_sigma_bytes": float_total,
                   "compression_weights_only": float_total / stored_total,
                   "compression_with_tables": float_total / (stored_total + table_total)},
    }


def _refuse_foreign_files(out, names):
    """An earlier export of ours may be replaced; a user's file of the same name never is."""
    present = [n for n in names if os.path.lexists(out / n)]
    if not present:
        return
    try:
        ours = json.loads((out / artifacts.MANIFEST).read_text()).get("format") == artifacts.FORMAT
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise ValueError(f"{out}: holds '{present[0]}', which tflite_export did not write (no export "
                         f"{artifacts.MANIFEST} beside it); choose another --out")


def export_all(model, out_dir, weights="int4", seed=0, calibration_x=None, calibration_samples=4, extra_writers=()):
    """Export a Keras JQ model (or a .keras path): returns {"integer_model", "manifest", paths...}.

    `calibration_x`: the images that fix every op's output scale (SPEC.md section 4), shaped as the model's input;
    required (tflite_export does not load data sets).

    `extra_writers`: callables f(integer_model, manifest, out_dir) run after the standard files
    (hook for model_data.c/.h of the Cortex-M runtime).

    Everything is checked and built before `out_dir` is created or touched. Then manifest.json is first replaced
    by a marker saying the export is unfinished, and written for real last: an export killed in between leaves a
    folder that `load_exported` refuses ("interrupted") and that a rerun replaces.
    """
    from tflite_export import tflite_io

    seed = safeio.check_seed(seed)
    if isinstance(model, (str, Path)):
        import keras

        import tfqbnn.layers  # noqa: F401  (registers DenseVariational)

        path = Path(model)
        if not path.is_file():
            raise ValueError(f"model file not found: {path}")
        model = keras.saving.load_model(path)
    out = Path(out_dir)
    names = ("model.tflite", "model_split.tflite", artifacts.MANIFEST)
    _refuse_foreign_files(out, names)
    if calibration_x is None or len(calibration_x) == 0:
        raise ValueError("calibration_x is required: pass calibration images (float in [0, 1] or uint8, one row per "
                         "image), e.g. 1000 training images; tfqbnn-export loads them for you")
    imodel = integer_model_from_keras(model, weights=weights, seed=seed)
    calibration_x = np.asarray(calibration_x)
    if calibration_x[0].size != imodel.input_dim:
        raise ValueError(f"calibration_x rows have {calibration_x[0].size} values; the model's input "
                         f"{list(imodel.input_shape)} has {imodel.input_dim}")
    calibration_x = calibration_x.reshape(-1, *imodel.input_shape)
    calibrate(imodel, calibration_x, num_samples=calibration_samples)
    info = manifest(imodel, weights)
    data = {"model.tflite": tflite_io.build_tflite(imodel, split=False),
            "model_split.tflite": tflite_io.build_tflite(imodel, split=True)}
    paths = {"model": out / "model.tflite", "model_split": out / "model_split.tflite",
             "manifest_path": out / artifacts.MANIFEST}
    safeio.make_dir(out)
    try:
        _refuse_foreign_files(out, names)  # again: the folder may have changed while we converted
        artifacts.write_manifest(out, {"format": artifacts.FORMAT, "version": artifacts.MANIFEST_VERSION,
                                       artifacts.INTERRUPTED: True})
        for name, blob in data.items():
            safeio.write_bytes(out / name, blob)
    except OSError as err:
        raise ValueError(f"{out}: cannot write the export ({err.strerror or err})") from None
    written = set(data)
    before = artifacts.snapshot(out)
    for writer in extra_writers:
        writer(imodel, info, out)
    after = artifacts.snapshot(out)  # what the writers created or rewrote (never other files in out_dir)
    written |= {rel for rel, st in after.items() if before.get(rel) != st and rel != artifacts.MANIFEST}
    info["files"] = artifacts.file_entries(out, written)
    artifacts.write_manifest(out, info)  # last: until then the marker says the export is unfinished
    return {"integer_model": imodel, "manifest": info, **paths}
