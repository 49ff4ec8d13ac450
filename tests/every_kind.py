"""Small untrained Keras models of the front end's layer kinds and their exports, shared by the front-end, TFLM-op and
manifest tests: `every_kind`, one network chaining the layer kinds of the paper's models (Bayesian and QAT
convolutions, depthwise, dense; pools; reshape / flatten), and `registration_model`, one model per registration
of `frontend.converters()` built from the registration's own example (so a new layer kind is tested with no
test edited)."""

import keras
import numpy as np

from tflite_export import convert
from tfqbnn import layers as tl


def every_kind(bayesian_convs=True):
    """Bayesian / QAT conv, depthwise, dense; pools; reshape / flatten, chained as in a LeNet."""
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
    randomize_qat_kernels(model)
    x = np.random.default_rng(0).random((48, 64)).astype(np.float32)
    result = convert.export_all(model, out, weights="int4", seed=11, calibration_x=x)
    return out, model, result


def registration_model(cls, classes=5):
    """Keras model of one `frontend.converters()` registration: keras.Input(its example's shape) -> its example
    layers [-> Flatten] -> DenseVariational(classes) -> Softmax; returns (model, names of the example layers)."""
    from tflite_export import frontend

    layers, shape = frontend.converters()[cls].example()
    model = keras.Sequential([keras.Input(shape), *layers])
    if len(model.output_shape if layers else (None, *shape)) > 2:
        model.add(keras.layers.Flatten(name="to_head"))
    model.add(tl.DenseVariational(classes, quantization="jq4", seed=5, init_sigma=0.08, name="head"))
    model.add(keras.layers.Softmax(name="probs"))
    return model, [layer.name for layer in layers]


def randomize_qat_kernels(model):
    """Non-trivial QAT kernels (also negative / per-channel spread) in place of the initializer's."""
    for layer in model.layers:
        if hasattr(layer, "kernel_bits"):
            k = layer.kernel.numpy()
            layer.kernel.assign(np.random.default_rng(len(layer.name)).normal(0, 0.4, k.shape).astype(np.float32))


def export_registration(cls, out):
    """(out, model, example layer names, export result) of `registration_model(cls)`, exported int4 into `out`."""
    model, names = registration_model(cls)
    randomize_qat_kernels(model)
    shape = tuple(model.inputs[0].shape[1:])
    x = np.random.default_rng(0).random((32, *shape)).astype(np.float32)
    return out, model, names, convert.export_all(model, out, weights="int4", seed=11, calibration_x=x)
