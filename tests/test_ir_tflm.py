"""The IR's numpy integer kernels against stock TFLite Micro, bit for bit: a small int8 conv network is converted
by the TFLite converter (full-integer, per-channel conv filters), its operators are read back into IR ops with
the converter's scales, zero points, filters and biases, and both run the same int8 inputs."""

import numpy as np
import pytest

tflm = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")

from tflite_export import reference, tflite_io  # noqa: E402
from tflite_export.ir.conv2d import Conv2D  # noqa: E402
from tflite_export.ir.depthwise_conv2d import DepthwiseConv2D  # noqa: E402
from tflite_export.ir.fully_connected import FullyConnected  # noqa: E402
from tflite_export.ir.pool import AveragePool2D, MaxPool2D  # noqa: E402
from tflite_export.ir.reshape import Reshape  # noqa: E402
from tflite_export.ir.softmax import Softmax  # noqa: E402
from tflite_export.ir.weights import ConstantWeights  # noqa: E402


def _converted(depth_multiplier):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((9, 8, 2), batch_size=1),  # a static Flatten (no SHAPE / PACK ops)
        keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
        keras.layers.DepthwiseConv2D(3, depth_multiplier=depth_multiplier, padding="same"),
        keras.layers.MaxPooling2D(2, padding="same"),
        keras.layers.Conv2D(5, (2, 1), padding="valid", dilation_rate=1),
        keras.layers.AveragePooling2D((1, 2), strides=1, padding="same"),
        keras.layers.Flatten(),
        keras.layers.Dense(6),
        keras.layers.Softmax(),
    ])
    rng = np.random.default_rng(0)
    calib = rng.random((64, 9, 8, 2)).astype(np.float32)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([x[None]] for x in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


def _ir_from_tflite(data):
    """IR ops for the converter's operators (a test-side reader: the exporter's lowering is a later phase)."""
    s = tflite_io._schema()
    model = tflite_io.read_tflite(data)
    sub = model.subgraphs[0]
    t = sub.tensors
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}

    def quant(i):
        q = t[i].quantization
        return np.asarray(q.scale, np.float32), np.asarray(q.zeroPoint, np.int64)

    def const(i):
        buf = model.buffers[t[i].buffer].data
        dtype = {s.TensorType.INT8: np.int8, s.TensorType.INT32: np.int32}[t[i].type]
        return np.frombuffer(bytes(np.asarray(buf, np.uint8)), dtype).reshape(t[i].shape)

    ops, kinds = [], []
    act = {0: "linear", 1: "relu"}
    pad = {s.Padding.SAME: "same", s.Padding.VALID: "valid"}
    for op in sub.operators:
        kind = names[model.operatorCodes[op.opcodeIndex].builtinCode]
        kinds.append(kind)
        o = op.builtinOptions
        (s_in, zp_in), (s_out, zp_out) = quant(op.inputs[0]), quant(op.outputs[0])
        common = dict(input_scale=s_in[0], input_zero_point=int(zp_in[0]), output_scale=s_out[0],
                      output_zero_point=int(zp_out[0]))
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            axis = 3 if kind == "DEPTHWISE_CONV_2D" else 0
            w = ConstantWeights(const(op.inputs[1]), quant(op.inputs[1])[0], 8, axis)
            bias = const(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
            a = act[o.fusedActivationFunction]
            if kind == "FULLY_CONNECTED":
                ops.append(FullyConnected(kind, w, a, bias, **common))
            else:
                cls = Conv2D if kind == "CONV_2D" else DepthwiseConv2D
                ops.append(cls(kind, w, a, bias, **common, strides=(o.strideH, o.strideW), padding=pad[o.padding],
                               dilation=(o.dilationHFactor, o.dilationWFactor)))
        elif kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            assert (s_in[0], zp_in[0]) == (s_out[0], zp_out[0])
            cls = MaxPool2D if kind == "MAX_POOL_2D" else AveragePool2D
            ops.append(cls(kind, (o.filterHeight, o.filterWidth), (o.strideH, o.strideW), pad[o.padding],
                           act[o.fusedActivationFunction]))
        elif kind == "RESHAPE":
            ops.append(Reshape(kind, tuple(t[op.outputs[0]].shape[1:])))
        elif kind == "SOFTMAX":
            ops.append(Softmax(kind, o.beta))
        else:
            raise AssertionError(f"unexpected operator {kind}")
    in_q = quant(sub.inputs[0])
    return ops, kinds, (in_q[0][0], int(in_q[1][0]))


@pytest.mark.parametrize("depth_multiplier", [1, 2])
def test_ir_conv_network_is_bit_exact_with_tflm(depth_multiplier):
    data = _converted(depth_multiplier)
    ops, kinds, in_quant = _ir_from_tflite(data)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(kinds)
    model = reference.IntegerModel(ops, input_shape=(9, 8, 2))
    rng = np.random.default_rng(depth_multiplier)
    x = rng.integers(-128, 128, size=(40, 9, 8, 2)).astype(np.int8)
    # the reference runs from the converter's input quantization (not the SPEC's 1/255 pixels)
    quants, q = [in_quant], x
    for op in model.ops:
        q = op.run(q, quants[-1], None)
        quants.append(op.output_quant(quants[-1]))
    interp = tflm.Interpreter.from_bytes(data, arena_size=1 << 20)
    want = []
    for row in x:
        interp.set_input(row[None], 0)
        interp.invoke()
        want.append(interp.get_output(0)[0])
    np.testing.assert_array_equal(q, np.stack(want))
    assert len(np.unique(q)) > 10
