"""Moved to `tflite_export.intmath.fixedpoint`; this name is the same module object (monkeypatching either works)."""

import sys

from tflite_export.intmath import fixedpoint as _module

sys.modules[__name__] = _module
