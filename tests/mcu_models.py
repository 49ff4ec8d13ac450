"""Small integer models for the runtime/firmware tests: a synthetic JQ-4 MLP built directly as a
`tflite_export.reference.IntegerModel` (random codes, scales from a quick integer calibration), so
the C runtime can be checked against the reference without training or exporting anything."""

import os

import numpy as np

from tfqbnn.quantizers import LogQuantizer
from tflite_export import reference, sampler, storage

INPUT_SCALE = np.float32(1.0 / 255.0)


def _scale_zp(values):
    rmin, rmax = min(0.0, float(values.min())), max(0.0, float(values.max()))
    scale = np.float32((rmax - rmin) / 255.0)
    zp = int(np.clip(np.round(-128 - rmin / float(scale)), -128, 127))
    return scale, zp, rmax


def synthetic_model(sizes=(784, 100, 100, 10), seed=0, weight_bits=4, sigma_bits=4, calib=None):
    """IntegerModel with random mu/sigma codes; `calib` uint8 images [N, 784] set the scales."""
    rng = np.random.default_rng(seed)
    max_code = 2 ** (weight_bits - 1) - 1
    sigma_q = sampler.sigma_q_table(LogQuantizer(sigma_bits, 2.0**-10, 1.0), weight_bits)
    if calib is None:
        calib = rng.integers(0, 256, size=(16, sizes[0])).astype(np.uint8)
    q = reference.IntegerModel.quantize_input(calib)
    s_in, zp_in = INPUT_SCALE, -128
    layers = []
    for l, (c, r) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = l == len(sizes) - 2
        mu = np.clip(np.round(rng.normal(0, 1.5 + 0.5 * l, size=(r, c))), -max_code, max_code).astype(np.int16)
        sig = rng.integers(0, 2**sigma_bits, size=(r, c)).astype(np.int16)
        layer = reference.IntegerLayer(
            name=f"dense_{l}", index=l, mu_codes=mu, sigma_codes=sig, weight_bits=weight_bits,
            sigma_bits=sigma_bits, layout=storage.choose_layout("int4", weight_bits, sigma_bits), sigma_q=sigma_q,
            sigma_range=(2.0**-10, 1.0), activation="linear" if last else "softplus", input_scale=s_in,
            input_zero_point=zp_in)
        w = layer.sample(sampler.ByteStream(1234, l))
        real = float(s_in) * float(layer.weight_scale) * layer.accumulate(q, w)
        layer.output_scale, layer.output_zero_point, rmax = _scale_zp(real)
        q = layer.fully_connected(q, w)
        if not last:
            layer.lut_scale = np.float32(np.logaddexp(0.0, rmax) / 255.0)
            layer.lut_zero_point = -128
            layer.lut, _ = reference.softplus_lut(layer.output_scale, layer.output_zero_point, layer.lut_scale, -128)
            q = layer.lut[q.astype(np.int64) + 128]
        s_in, zp_in = layer.next_scale
        layers.append(layer)
    return reference.IntegerModel(layers, default_seed=seed + 7)


_EXPORTED = {}


def exported_jq4(tmp_root):
    """A real exported JQ-4 paper MLP (784-100-100-10), built once per test session: a deterministic
    MLP trained for one epoch on 12k MNIST images, copied into tfqbnn.models.mlp("jq4") with
    sigma = 0.08 (about half the 4-bit step, so sampling changes weights), exported with
    tflite_export.export_all plus the C-source writer. Returns the export directory (C in ./c); the Keras
    model is saved beside it as jq4.keras."""
    if "dir" in _EXPORTED:
        return _EXPORTED["dir"]
    import keras

    from tfqbnn import models
    from tfqbnn.datasets import load_mnist
    from tflite_export import c_source, export_all

    keras.utils.set_random_seed(0)
    x, y = load_mnist("train")
    det = models.deterministic_mlp(seed=0)
    det.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    det.fit(x[:12000], y[:12000], epochs=1, batch_size=128, verbose=0)
    bnn = models.mlp(quantization="jq4", seed=0)
    models.init_from_deterministic(bnn, det, init_sigma=0.08)
    out = os.path.join(os.fspath(tmp_root), "export_jq4")
    bnn.save(os.path.join(os.fspath(tmp_root), "jq4.keras"))  # the Keras model, for comparisons with the integer one
    export_all(bnn, out, weights="int4", seed=11, calibration_x=x[-500:], calibration_samples=2,
               extra_writers=[c_source.export_writer(num_samples=8, per_set=3)])
    _EXPORTED["dir"] = out
    return out
