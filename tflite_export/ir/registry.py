"""Op kind -> op class: the one table a new op is added to (one line)."""

from __future__ import annotations

from tflite_export.ir.conv2d import Conv2D
from tflite_export.ir.depthwise_conv2d import DepthwiseConv2D
from tflite_export.ir.fully_connected import FullyConnected, IntegerLayer
from tflite_export.ir.global_average_pool2d import GlobalAveragePool2D
from tflite_export.ir.pool import AveragePool2D, MaxPool2D
from tflite_export.ir.reshape import Reshape
from tflite_export.ir.softmax import Softmax

OPS = {cls.kind: cls for cls in (
    IntegerLayer,  # QBNN_FULLY_CONNECTED (SPEC v1 Bayesian layer)
    FullyConnected,
    Conv2D,
    DepthwiseConv2D,
    MaxPool2D,
    AveragePool2D,
    Reshape,
    Softmax,
    GlobalAveragePool2D,
)}


def op_class(kind):
    try:
        return OPS[kind]
    except KeyError:
        raise ValueError(f"unknown op kind {kind!r}; registered: {sorted(OPS)}") from None
