"""One small untrained Keras model with every layer kind the front end converts (Bayesian and QAT convolutions,
depthwise, dense; pools; reshape / flatten), and its export: shared by the front-end, TFLM-op and manifest tests."""

import keras
import numpy as np

from tflite_export import convert
from tfqbnn import layers as tl


def every_kind(bayesian_convs=True):
    """Every registered Keras layer kind: Bayesian / QAT conv, depthwise, dense; pools; reshape / flatten."""
    conv = dict(quantization="jq4", seed=3, init_sigma=0.08)
    return keras.Sequential([
        keras.Input((64,)),
        keras.layers.Reshape((8, 8, 1), name="image"),
        (tl.Conv2DVariational(3, 3, padding="same", activation="relu", name="bconv", **conv) if bayesian_convs
         else tl.QuantizedConv2D(3, 3, padding="same", activation="relu", use_bias=False, kernel_bits=8, name="bconv")),
        tl.QuantizedDepthwiseConv2D(3, depth_multiplier=2, padding="valid", use_bias=False, kernel_bits=4,
                                    activation="softplus", name="qdw"),
        keras.layers.AveragePooling2D(2, strides=1, padding="same", name="avg"),
        tl.DepthwiseConv2DVariational(2, strides=2, activation="softplus", name="bdw", **conv),
        tl.QuantizedConv2D(4, 2, strides=1, padding="valid", use_bias=False, kernel_bits=4, per_channel=False,
                           activation="softplus", name="qconv"),
        keras.layers.MaxPooling2D(2, padding="same", name="max"),
        keras.layers.Flatten(name="flat"),
        tl.QuantizedDense(12, use_bias=False, kernel_bits=8, activation="relu", name="qdense"),
        tl.DenseVariational(6, name="bdense", **conv),
        keras.layers.Softmax(name="probs"),
    ])


def export_every_kind(out):
    """(out, model, export result) of `every_kind()` with non-trivial QAT kernels, exported int4 into `out`."""
    model = every_kind()
    model(np.zeros((1, 64), np.float32))  # build
    for layer in model.layers:  # non-trivial QAT kernels (also negative / per-channel spread)
        if hasattr(layer, "kernel_bits"):
            k = layer.kernel.numpy()
            layer.kernel.assign(np.random.default_rng(len(layer.name)).normal(0, 0.4, k.shape).astype(np.float32))
    x = np.random.default_rng(0).random((48, 64)).astype(np.float32)
    result = convert.export_all(model, out, weights="int4", seed=11, calibration_x=x)
    return out, model, result
