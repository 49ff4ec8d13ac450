"""Moved to `tflite_export.intmath.sampler`; this name is the same module object (monkeypatching either works)."""

import sys

from tflite_export.intmath import sampler as _module

sys.modules[__name__] = _module
