"""Every registered IR op's numpy integer forward against a float reference (dequantized inputs and weights,
float64 TensorFlow / numpy kernels), within the rounding bound of TFLite's requantization (half an output code),
plus the IR's structural promises: N-D Bayesian filters are sampled by the SPEC 3 stream in row-major filter
order and the deterministic prefix is computed once. (Every registered op against TFLM and the C runtime:
test_registry_ops; every Keras layer kind against its float Keras layer: test_frontend.)"""

import numpy as np
import pytest

from tflite_export import convert, reference, storage
from tflite_export.intmath import sampler, window
from tflite_export.ir.conv2d import Conv2D
from tflite_export.ir.depthwise_conv2d import DepthwiseConv2D
from tflite_export.ir.fully_connected import FullyConnected, IntegerLayer
from tflite_export.ir.pool import AveragePool2D, MaxPool2D
from tflite_export.ir.reshape import Reshape
from tflite_export.ir.softmax import Softmax
from tflite_export.ir.weighted import range_to_affine
from tflite_export.ir.weights import BayesianWeights, ConstantWeights

BOUND = 0.5 + 1e-6  # one rounding to nearest (+ float64 noise)


def requant_bound(op):
    """MultiplyByQuantizedMultiplier rounds twice (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT by
    the right shift r): at most half a code plus half a unit of the intermediate, 2^-(r+1) codes."""
    right = np.maximum(-op.multipliers()[1], 0)
    return BOUND + 0.5 * 2.0 ** -float(right.min())


def tf():
    import tensorflow

    return tensorflow


def _input(rng, shape, zp=-5):
    return rng.integers(-128, 128, size=shape).astype(np.int8), (np.float32(0.05), zp)


def _deq(q, quant):
    return (np.asarray(q, np.float64) - quant[1]) * np.float64(np.float32(quant[0]))


def _check(op, q_in, quant, w_codes, real_fn, bias_real=0.0):
    """Set the op's output scale from the float result, run it and compare codes with the float reference."""
    real = real_fn(_deq(q_in, quant), w_codes.astype(np.float64) * _scale_shape(op)) + bias_real
    op.input_scale, op.input_zero_point = quant
    lo = 0.0 if op.activation == "relu" else real.min()
    op.output_scale, op.output_zero_point = range_to_affine(lo, real.max())
    got = op.run(q_in, quant, w_codes)
    want = real / np.float64(op.output_scale) + op.output_zero_point
    lo_q, hi_q = op.act_range
    err = np.abs(got.astype(np.float64) - np.clip(want, lo_q, hi_q))
    assert err.max() <= requant_bound(op), (op.kind, err.max(), requant_bound(op))
    assert np.unique(got).size > 20  # a real range of codes, not a saturated output
    return got


def _scale_shape(op):
    s = op.filter_scales.astype(np.float64)
    shape = [1] * len(op.weights.shape)
    shape[op.channel_axis] = -1
    return s.reshape(shape)


def _bias(rng, op, quant):
    b = rng.integers(-3000, 3000, size=op.out_channels)
    return b, b * np.float64(np.float32(quant[0])) * op.filter_scales.astype(np.float64)


def _conv_ref(strides, padding, dilation):
    def f(x, w_ohwi):
        w = np.transpose(w_ohwi, (1, 2, 3, 0))  # HWIO
        return tf().nn.conv2d(x, w, strides=[1, *strides, 1], padding=padding.upper(), dilations=[1, *dilation, 1]).numpy()
    return f


@pytest.mark.parametrize("bits,per_channel,padding,strides,dilation,activation", [
    (8, True, "same", (1, 1), (1, 1), "linear"),
    (8, False, "valid", (2, 2), (1, 1), "relu"),
    (4, False, "same", (2, 1), (1, 1), "linear"),
    (4, True, "same", (2, 2), (1, 1), "relu"),  # per-channel int4: numpy semantics (TFLM rejects it for FC only)
    (8, True, "valid", (1, 1), (2, 1), "linear"),
])
def test_conv2d_constant_weights_vs_float(bits, per_channel, padding, strides, dilation, activation):
    rng = np.random.default_rng(bits + 2 * per_channel + len(padding))
    q, quant = _input(rng, (2, 9, 7, 3))
    w = ConstantWeights.quantize(rng.normal(0, 0.3, size=(6, 3, 3, 3)), bits, per_channel, channel_axis=0)
    op = Conv2D("conv", w, activation=activation, strides=strides, padding=padding, dilation=dilation)
    b, b_real = _bias(rng, op, quant)
    op.bias = b
    got = _check(op, q, quant, w.codes, _conv_ref(strides, padding, dilation), b_real)
    assert got.shape[1:] == op.output_shape(q.shape[1:])


def _dw_ref(strides, padding, dilation):
    def f(x, w_1hwo):
        c = x.shape[3]
        w = w_1hwo[0].reshape(w_1hwo.shape[1], w_1hwo.shape[2], c, -1)  # H, W, C, dm (o = c * dm + m)
        return tf().nn.depthwise_conv2d(x, w, strides=[1, *strides, 1], padding=padding.upper(),
                                        dilations=list(dilation)).numpy()
    return f


@pytest.mark.parametrize("bits,per_channel,padding,strides,dm", [
    (8, True, "same", (1, 1), 2), (4, False, "valid", (2, 2), 1), (8, False, "same", (2, 2), 3)])
def test_depthwise_conv2d_constant_weights_vs_float(bits, per_channel, padding, strides, dm):
    rng = np.random.default_rng(10 + bits + dm)
    q, quant = _input(rng, (2, 8, 9, 4), zp=3)
    w = ConstantWeights.quantize(rng.normal(0, 0.5, size=(1, 3, 3, 4 * dm)), bits, per_channel, channel_axis=3)
    op = DepthwiseConv2D("dw", w, strides=strides, padding=padding)
    b, b_real = _bias(rng, op, quant)
    op.bias = b
    _check(op, q, quant, w.codes, _dw_ref(strides, padding, (1, 1)), b_real)


def _bayesian(rng, shape, wb=4, sb=4, index=3, channel_axis=0):
    m = 2 ** (wb - 1) - 1
    from tfqbnn.quantizers import LogQuantizer

    return BayesianWeights(rng.integers(-m, m + 1, size=shape), rng.integers(0, 2**sb, size=shape), wb, sb,
                           storage.choose_layout("int4", wb, sb), sampler.sigma_q_table(LogQuantizer(sb, 2.0**-10, 1.0), wb),
                           index=index, channel_axis=channel_axis)


def test_bayesian_conv2d_samples_ohwi_in_stream_order_and_matches_float():
    rng = np.random.default_rng(7)
    bw = _bayesian(rng, (5, 3, 3, 2))
    op = Conv2D("bconv", bw, strides=(1, 1), padding="same")
    assert op.bayesian and op.index == 3
    w = op.sample(sampler.ByteStream(11, 3))
    # the same codes as a [O, H*W*I] Bayesian FULLY_CONNECTED layer of SPEC v1 on the same stream
    fc = IntegerLayer("fc", 3, bw.mu_codes.reshape(5, -1), bw.sigma_codes.reshape(5, -1), 4, 4, bw.layout,
                      bw.sigma_q, (2.0**-10, 1.0), "linear", np.float32(1), 0)
    np.testing.assert_array_equal(w.reshape(5, -1), fc.sample(sampler.ByteStream(11, 3)))
    assert not np.array_equal(w, bw.mu_codes)  # the sample moved some weights off the mean
    np.testing.assert_array_equal(storage.unpack(bw.stored_tensors(), bw.layout, 4, (5, 18))[0], fc.mu_codes)
    q, quant = _input(rng, (3, 6, 6, 2))
    _check(op, q, quant, w, _conv_ref((1, 1), "same", (1, 1)))


def test_bayesian_conv2d_accumulators_equal_fully_connected_on_the_flattened_window():
    rng = np.random.default_rng(8)
    bw = _bayesian(rng, (4, 5, 5, 2))
    w = bw.sample(sampler.ByteStream(1, 3))
    q, quant = _input(rng, (6, 5, 5, 2), zp=7)
    conv = Conv2D("c", bw, input_zero_point=7)
    fc = FullyConnected("f", ConstantWeights(w.reshape(4, -1), [1 / 7], bits=4), input_zero_point=7)
    np.testing.assert_array_equal(conv.accumulate(q, w)[:, 0, 0, :], fc.accumulate(q.reshape(6, -1), w.reshape(4, -1)))


def test_bayesian_depthwise_samples_1hwo_in_stream_order_and_matches_float():
    rng = np.random.default_rng(9)
    bw = _bayesian(rng, (1, 3, 3, 6), wb=3, sb=6, index=0, channel_axis=3)
    op = DepthwiseConv2D("bdw", bw, padding="same", strides=(2, 2))
    w = op.sample(sampler.ByteStream(5, 0))
    u = sampler.ByteStream(5, 0).take(w.size).reshape(w.shape)
    np.testing.assert_array_equal(w, sampler.sample_codes(bw.mu_codes, bw.sigma_codes, bw.sigma_q, u, 3))
    q, quant = _input(rng, (2, 7, 8, 3))
    _check(op, q, quant, w, _dw_ref((2, 2), "same", (1, 1)))


@pytest.mark.parametrize("bits,per_channel,bayesian", [(8, False, False), (8, True, False), (4, False, False),
                                                       (4, True, False), (4, False, True)])
def test_fully_connected_vs_float(bits, per_channel, bayesian):
    rng = np.random.default_rng(bits * 3 + per_channel)
    q, quant = _input(rng, (16, 50), zp=-128)
    if bayesian:
        weights = _bayesian(rng, (12, 50), index=1)
        w = weights.sample(sampler.ByteStream(2, 1))
    else:
        weights = ConstantWeights.quantize(rng.normal(0, 0.2, size=(12, 50)), bits, per_channel)
        w = weights.codes
    op = FullyConnected("fc", weights, activation="relu" if per_channel else "linear")
    b, b_real = _bias(rng, op, quant)
    op.bias = b
    _check(op, q, quant, w, lambda x, wf: x @ wf.T, b_real)


def test_per_tensor_fully_connected_is_the_v1_layer_bit_for_bit():
    """Deterministic FULLY_CONNECTED with the sampled codes reproduces IntegerLayer (float32 scale product)."""
    rng = np.random.default_rng(4)
    bw = _bayesian(rng, (10, 30), index=2)
    layer = IntegerLayer("l", 2, bw.mu_codes, bw.sigma_codes, 4, 4, bw.layout, bw.sigma_q, (2.0**-10, 1.0), "relu",
                         np.float32(0.013), -20, np.float32(0.07), -9)
    op = FullyConnected("f", bw, activation="relu", input_scale=np.float32(0.013), input_zero_point=-20,
                        output_scale=np.float32(0.07), output_zero_point=-9)
    q = rng.integers(-128, 128, size=(40, 30)).astype(np.int8)
    w = layer.sample(sampler.ByteStream(0, 2))
    np.testing.assert_array_equal(op.sample(sampler.ByteStream(0, 2)), w)
    np.testing.assert_array_equal(op.run(q, None, w), layer.forward(q, w))


@pytest.mark.parametrize("cls,padding,pool,strides", [(MaxPool2D, "valid", (2, 2), (2, 2)),
                                                       (MaxPool2D, "same", (3, 3), (2, 2)),
                                                       (AveragePool2D, "valid", (2, 2), (2, 2)),
                                                       (AveragePool2D, "same", (3, 2), (2, 1))])
def test_pooling_vs_float(cls, padding, pool, strides):
    rng = np.random.default_rng(len(padding) + pool[0])
    q, quant = _input(rng, (2, 9, 7, 3))
    op = cls("pool", pool_size=pool, strides=strides, padding=padding)
    got = op.run(q, quant)
    x = _deq(q, quant)
    fn = tf().nn.max_pool2d if cls is MaxPool2D else tf().nn.avg_pool2d  # TF averages over in-image taps only
    real = fn(x, ksize=list(pool), strides=list(strides), padding=padding.upper()).numpy()
    want = real / np.float64(quant[0]) + quant[1]
    assert got.shape == (2, *op.output_shape((9, 7, 3)))
    assert np.abs(got - want).max() <= (1e-4 if cls is MaxPool2D else BOUND)  # TF pools in float32: max is exact up to that


def test_relu_pool_clamps_at_the_zero_point():
    q = np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16, 1)
    out = MaxPool2D("p", activation="relu").run(q, (np.float32(0.1), -3))
    assert out.min() == -3 and out.max() == 127


def test_reshape_is_row_major_flatten():
    q = np.arange(2 * 3 * 4 * 5).astype(np.int8).reshape(2, 3, 4, 5)
    op = Reshape("flatten")
    np.testing.assert_array_equal(op.run(q, (1.0, 0)), q.reshape(2, -1))
    assert op.output_shape((3, 4, 5)) == (60,)


def test_softmax_op_is_the_v1_softmax():
    from tflite_export.intmath.softmax import softmax_int8

    q = np.random.default_rng(0).integers(-128, 128, size=(50, 10)).astype(np.int8)
    np.testing.assert_array_equal(Softmax().run(q, (np.float32(0.1), 3)), softmax_int8(q, np.float32(0.1)))
    real = np.exp(_deq(q, (np.float32(0.1), 3)))
    real /= real.sum(-1, keepdims=True)
    assert np.abs((Softmax().run(q, (np.float32(0.1), 3)).astype(float) + 128) / 256 - real).max() < 2 / 256


def _lenet_like(rng, bayesian_conv):
    conv_w = _bayesian(rng, (4, 3, 3, 1), index=0) if bayesian_conv else \
        ConstantWeights.quantize(rng.normal(0, 0.5, size=(4, 3, 3, 1)), 8, True)
    ops = [Conv2D("conv", conv_w, activation="relu", padding="same"),
           MaxPool2D("pool"),
           DepthwiseConv2D("dw", ConstantWeights.quantize(rng.normal(0, 0.5, size=(1, 3, 3, 4)), 4, False, 3),
                           activation="softplus"),
           AveragePool2D("avg", pool_size=(1, 1), strides=(1, 1)),
           Reshape("flatten"),
           FullyConnected("head", _bayesian(rng, (5, 16), index=1))]
    return reference.IntegerModel(ops, default_seed=3, input_shape=(8, 8, 1))


def test_conv_model_calibrates_and_runs_the_deterministic_prefix_once():
    rng = np.random.default_rng(12)
    model = _lenet_like(rng, bayesian_conv=False)
    x = rng.random((20, 8, 8, 1)).astype(np.float32)
    convert.calibrate(model, x, num_samples=3)
    assert model.prefix_length == 5 and model.num_classes == 5 and model.layers[2].lut is not None
    codes = model.predict_codes(x, num_samples=4, seed=9)
    streams = model.streams(9)
    naive = np.stack([model.forward(x, model.sample_weights(streams)) for _ in range(4)])  # every op every pass
    np.testing.assert_array_equal(codes, naive)
    assert len(np.unique(codes.reshape(4, -1), axis=0)) > 1  # the Bayesian head samples differ


def test_fully_bayesian_conv_model_streams_are_per_op_index():
    rng = np.random.default_rng(13)
    model = _lenet_like(rng, bayesian_conv=True)
    x = rng.random((6, 8, 8, 1)).astype(np.float32)
    convert.calibrate(model, x, num_samples=2)
    assert model.prefix_length == 0 and [op.index for op in model.bayesian_ops] == [0, 1]
    a = model.predict_codes(x, num_samples=3, seed=4)
    np.testing.assert_array_equal(a, model.predict_codes(x, num_samples=3, seed=4))


def test_window_geometry_matches_tflite_rules():
    # SAME: out = ceil(in / stride), the odd padding pixel goes after; VALID: no padding
    assert window.out_size("same", 7, 3, 2) == 4 and window.pad_before("same", 7, 3, 2) == 1
    assert window.out_size("same", 8, 4, 2) == 4 and window.pad_before("same", 8, 4, 2) == 1
    assert window.out_size("valid", 7, 3, 2) == 3 and window.pad_before("valid", 7, 3, 2) == 0
    assert window.out_size("valid", 9, 3, 1, dilation=2) == 5
    with pytest.raises(ValueError, match="padding='full'"):
        window.check_padding("full")


def test_constructors_reject_bad_input_with_the_value():
    w = ConstantWeights.quantize(np.ones((2, 3, 3, 1)), 8)
    with pytest.raises(ValueError, match="activation 'gelu'"):
        Conv2D("c", w, activation="gelu")
    with pytest.raises(ValueError, match=r"\[-7, 7\]"):
        ConstantWeights(np.full((2, 2), 8), [1.0], bits=4)
    with pytest.raises(ValueError, match="1HWO"):
        DepthwiseConv2D("d", w)
    with pytest.raises(ValueError, match="3 channels"):
        Conv2D("c", w).output_shape((5, 5, 3))


def test_qbnn_sample_options_v2_carry_the_nd_filter_shape():
    from tflite_export import tflite_io as tio

    rng = np.random.default_rng(21)
    fc = IntegerLayer("l", 1, np.zeros((3, 5), np.int16), np.zeros((3, 5), np.int16), 4, 4, 1,
                      np.arange(16, dtype=np.int32), (2.0**-10, 1.0), "linear", np.float32(1), 0)
    v1 = tio.pack_options(fc, 7)
    assert v1[4] == 1 and len(v1) == 24 + 64  # SPEC v1 bytes for [O, I] filters, unchanged
    assert tio.unpack_options(v1)["filter_shape"] == (3, 5)
    for shape, fmt in (((6, 3, 3, 2), tio.FILTER_OHWI), ((1, 3, 3, 8), tio.FILTER_1HWO)):
        bw = _bayesian(rng, shape, index=4)
        buf = tio.pack_options(bw, 9, fmt)
        opts = tio.unpack_options(buf)
        assert buf[4] == 2 and (opts["filter_shape"], opts["filter_format"]) == (shape, fmt)
        assert (opts["rows"], opts["cols"], opts["index"]) == (shape[0], int(np.prod(shape[1:])), 4)
        np.testing.assert_array_equal(opts["sigma_q"], bw.sigma_q)
        bad = bytearray(buf)
        bad[28 + 4:28 + 8] = (shape[1] + 1).to_bytes(4, "little")  # dims no longer multiply to C
        with pytest.raises(ValueError, match="disagree"):
            tio.unpack_options(bytes(bad))
    with pytest.raises(ValueError, match="must start with 1"):
        tio.pack_options(_bayesian(rng, (2, 3, 3, 8)), 0, tio.FILTER_1HWO)
    bad = bytearray(v1)
    bad[4] = 3
    with pytest.raises(ValueError, match="version"):
        tio.unpack_options(bytes(bad))
