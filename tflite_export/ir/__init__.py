"""The integer IR: an `IntegerModel` (tflite_export.reference) is a list of ops; the protocol is in `base`,
one module per op, `registry.OPS` maps op kind -> class, `activation` holds every activation rule and
`weights` the Bayesian / constant weight sources."""

from tflite_export.ir.registry import OPS, op_class  # noqa: F401
