"""Small integer models for the runtime/firmware tests: a synthetic JQ-4 MLP built directly as a
`tflite_export.reference.IntegerModel` (random codes, scales from a quick integer calibration), so
the C runtime can be checked against the reference without training or exporting anything."""

import os

import numpy as np

from tfqbnn.quantizers import LogQuantizer
from tflite_export import reference, storage
from tflite_export.intmath import sampler

INPUT_SCALE = np.float32(1.0 / 255.0)


def _scale_zp(values):
    rmin, rmax = min(0.0, float(values.min())), max(0.0, float(values.max()))
    scale = np.float32((rmax - rmin) / 255.0)
    zp = int(np.clip(np.round(-128 - rmin / float(scale)), -128, 127))
    return scale, zp, rmax


def synthetic_model(sizes=(784, 100, 100, 10), seed=0, weight_bits=4, sigma_bits=4, calib=None, weights="int4"):
    """IntegerModel with random mu/sigma codes stored as `weights` ("int4", "int8" or "packed"); `calib` uint8
    images [N, 784] set the scales. `weight_bits` / `sigma_bits`: one width for every layer or one per layer."""
    rng = np.random.default_rng(seed)
    n = len(sizes) - 1
    wbits = list(weight_bits) if isinstance(weight_bits, (list, tuple)) else [weight_bits] * n
    sbits = list(sigma_bits) if isinstance(sigma_bits, (list, tuple)) else [sigma_bits] * n
    if len(wbits) != n or len(sbits) != n:
        raise ValueError(f"one weight_bits and sigma_bits per layer ({n}); received {weight_bits}, {sigma_bits}")
    if calib is None:
        calib = rng.integers(0, 256, size=(16, sizes[0])).astype(np.uint8)
    q = reference.IntegerModel.quantize_input(calib)
    s_in, zp_in = INPUT_SCALE, -128
    layers = []
    for l, (c, r) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = l == len(sizes) - 2
        weight_bits, sigma_bits = wbits[l], sbits[l]
        max_code = 2 ** (weight_bits - 1) - 1
        sigma_q = sampler.sigma_q_table(LogQuantizer(sigma_bits, 2.0**-10, 1.0), weight_bits)
        mu = np.clip(np.round(rng.normal(0, 1.5 + 0.5 * l, size=(r, c))), -max_code, max_code).astype(np.int16)
        sig = rng.integers(0, 2**sigma_bits, size=(r, c)).astype(np.int16)
        layer = reference.IntegerLayer(
            name=f"dense_{l}", index=l, mu_codes=mu, sigma_codes=sig, weight_bits=weight_bits,
            sigma_bits=sigma_bits, layout=storage.choose_layout(weights, weight_bits, sigma_bits), sigma_q=sigma_q,
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
    from tfqbnn.datasets.test_images import sample_test_images

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
               extra_writers=[c_source.export_writer(*sample_test_images(per_set=3), num_samples=8)])
    _EXPORTED["dir"] = out
    return out


def synthetic_conv_model(seed=0, bayesian_conv=True, input_shape=(28, 28, 1), packed=None):
    """A LeNet-like IR network (no training) of the C runtime's conv, pool, reshape and dense kinds: conv (Bayesian OHWI or int8
    per-channel with bias; SAME, stride 1) -> max pool -> depthwise conv (int4, dm 2, VALID, stride 2) -> average
    pool (SAME) -> conv (int4 per-tensor) -> flatten -> dense (int8 per-channel, ReLU) -> Bayesian dense ->
    Bayesian dense (10 logits); calibrated on random images. "head" (bayesian_conv=False): the deterministic
    prefix is everything up to the Bayesian dense layers, conv1 has 3 channels (max pooling below 4 channels) and
    dense1 int4 weights (the C kernels' other paths). `packed` (mu bits, sigma bits): the Bayesian ops' codes of
    those widths stored in the PACKED layout instead of JQ-4 I4_FUSED; or a list of three such pairs, for conv1
    (used when Bayesian), dense2 and dense3, for a mixed-bits network."""
    from tflite_export import convert
    from tflite_export.ir.conv2d import Conv2D
    from tflite_export.ir.depthwise_conv2d import DepthwiseConv2D
    from tflite_export.ir.fully_connected import FullyConnected
    from tflite_export.ir.pool import AveragePool2D, MaxPool2D
    from tflite_export.ir.reshape import Reshape
    from tflite_export.ir.weights import BayesianWeights, ConstantWeights

    rng = np.random.default_rng(seed)
    layout = storage.LAYOUT_PACKED if packed else storage.LAYOUT_I4_FUSED
    bits = list(packed) if packed and isinstance(packed[0], (tuple, list)) else [packed or (4, 4)] * 3

    def bayes(shape, index, spread=2.0):
        b, sb = bits[index]
        m = 2 ** (b - 1) - 1
        mu = np.clip(np.round(rng.normal(0, spread * m / 7, size=shape)), -m, m)
        sigma_q = sampler.sigma_q_table(LogQuantizer(sb, 2.0**-10, 1.0), b)
        return BayesianWeights(mu, rng.integers(0, 2**sb, size=shape), b, sb, layout, sigma_q, index)

    ch = 6 if bayesian_conv else 3
    c1 = bayes((ch, 5, 5, 1), 0) if bayesian_conv else ConstantWeights.quantize(rng.normal(0, 0.4, (ch, 5, 5, 1)), 8, True)
    bias1 = None if bayesian_conv else rng.integers(-300, 300, size=ch)
    ops = [Conv2D("conv1", c1, activation="softplus" if bayesian_conv else "relu", padding="same", bias=bias1),
           MaxPool2D("pool1"),
           DepthwiseConv2D("dw", ConstantWeights.quantize(rng.normal(0, 0.5, (1, 3, 3, 2 * ch)), 4, False, 3),
                           strides=(2, 2), activation="relu"),
           AveragePool2D("pool2", pool_size=(2, 2), strides=(2, 2), padding="same"),
           Conv2D("conv2", ConstantWeights.quantize(rng.normal(0, 0.3, (16, 3, 3, 2 * ch)), 4, False), activation="relu",
                  padding="same"),
           Reshape("flatten"),
           FullyConnected("dense1", ConstantWeights.quantize(rng.normal(0, 0.2, (40, 144)), 8 if bayesian_conv else 4,
                                                             bayesian_conv),
                          activation="relu", bias=rng.integers(-500, 500, size=40)),
           FullyConnected("dense2", bayes((24, 40), 1), activation="softplus"),
           FullyConnected("dense3", bayes((10, 24), 2))]
    model = reference.IntegerModel(ops, default_seed=seed + 11, input_shape=input_shape)
    convert.calibrate(model, rng.random((24, *input_shape)).astype(np.float32), num_samples=3)
    return model
