"""Counter-based Gaussian noise for weight sampling, cheap inside XLA.

`tf.random.Generator.normal` costs about 7 ns per number on CPU (Philox plus a
Box-Muller transform in a kernel of its own, so the result is written to memory
and read back); for the paper's MLP that is 89,400 draws, a third of a training
step.  Here every eps is a pure function of a per-call 64-bit key and the
element's index:

* two rounds of the MurmurHash3 32-bit finaliser, keyed by the two key words,
  give 32 uniform bits (the finaliser is a bijection, so the elements of one
  draw never collide);
* the top 23 bits make ``u`` in (0, 1), never 0 or 1, and the inverse normal
  CDF, ``sqrt(2) * erfinv(2u - 1)``, maps it to N(0, 1); ``|eps| <= 5.3``.

Everything is elementwise, so under XLA it is one loop over the weights
(`DenseVariational` stores the result once per step for the loops that read
it).  Keys come from the layer's `tf.random.Generator`, so seeding and
``reseed`` behave as before.  This is a statistical generator, not a
cryptographic one; `tests/test_noise.py` checks moments, the KS distance to
N(0, 1) and the correlation between neighbouring elements and between
consecutive keys.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

_GOLDEN = 0x9E3779B9  # odd: i -> i * _GOLDEN is a bijection on 32-bit words
_M1, _M2 = 0x85EBCA6B, 0xC2B2AE35  # MurmurHash3 fmix32 constants


def new_key(generator):
    """A fresh 64-bit key (``uint32[2]``) from a `tf.random.Generator`."""
    return tf.bitcast(generator.uniform_full_int((2,), tf.int32), tf.uint32)


def _fmix32(x):
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))
    x = x * tf.constant(_M1, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 13))
    x = x * tf.constant(_M2, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def uniform_bits(key, shape):
    """``uint32`` hash of (key, element index) for a tensor of ``shape`` (ints or a 1-D int tensor)."""
    if isinstance(shape, (tuple, list)) and all(isinstance(d, (int, np.integer)) for d in shape):
        if int(np.prod(shape)) >= 2**31:
            raise ValueError(f"noise tensors are limited to 2**31 - 1 elements; received shape={tuple(shape)}")
    shape = tf.cast(shape, tf.int32)
    key = tf.convert_to_tensor(key)
    i = tf.bitcast(tf.range(tf.reduce_prod(shape), dtype=tf.int32), tf.uint32)
    x = _fmix32(i * tf.constant(_GOLDEN, tf.uint32) + key[0])
    x = _fmix32(tf.bitwise.bitwise_xor(x, key[1]))
    return tf.reshape(x, shape)


def normal_from_bits(bits, dtype=tf.float32):
    """N(0, 1) from ``uint32`` bits by the inverse CDF; finite for every input."""
    # Top 23 bits x; v = (x + 0.5) / 2**22 - 1 lies in [-1 + 2**-23, 1 - 2**-23] and
    # every step is exact in float32 (24 bits would round the top code to v = 1,
    # where erfinv is infinite).
    x = tf.cast(tf.bitwise.right_shift(bits, 9), tf.float32)
    v = (x + 0.5) * (2.0**-22) - 1.0
    return tf.cast(math.sqrt(2.0) * tf.math.erfinv(v), dtype)


def normal(key, shape, dtype=tf.float32):
    """Standard-normal tensor of ``shape``, a deterministic function of ``key``."""
    return normal_from_bits(uniform_bits(key, shape), dtype)
