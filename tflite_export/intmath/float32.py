"""float32 arithmetic written operation by operation in the order the C runtime's float helpers do it
(`micro/qbnn_modes.c`: hex literals = these float32 constants): exp of a non-positive argument and log, built from
+ - * / and the exponent bits (no libm), so that numpy and C agree bit for bit on every core."""

from __future__ import annotations

import numpy as np

F32 = np.float32
LOG2E = F32(1.4426950408889634)
LN2 = F32(0.6931471805599453)
LN2_HI = F32(0.693359375)  # 9 significant bits: k * LN2_HI is exact for |k| <= 2^15 (Cody-Waite)
LN2_LO = F32(-2.12194440e-4)


def _exp_poly():
    """float32 coefficients of exp(r) on r in [-0.70, 0.01] (degree 6 least squares on Chebyshev nodes)."""
    r = np.cos(np.pi * (np.arange(200) + 0.5) / 200) * 0.355 - 0.345
    return np.polynomial.polynomial.polyfit(r, np.exp(r), 6).astype(np.float32)


EXP_C = _exp_poly()
EXP_MIN = F32(-87.0)  # exp(x) for x < -87 is 0 (below float32's normal range)


def qexp_neg(x):
    """exp(x) for float32 x <= 0: k = trunc(x log2 e) (<= 0), r = (x - k LN2_HI) - k LN2_LO, exp(r) by Horner,
    times 2^k through the exponent bits; 0 below -87."""
    x = np.asarray(x, np.float32)
    xc = np.maximum(x, EXP_MIN)
    k = (xc * LOG2E).astype(np.int32)  # truncation toward zero, as the C cast
    kf = k.astype(np.float32)
    r = (xc - kf * LN2_HI) - kf * LN2_LO
    p = EXP_C[6]
    for i in range(5, -1, -1):
        p = p * r + EXP_C[i]
    scale = ((k + 127).astype(np.int32) << 23).view(np.float32)
    return np.where(x < EXP_MIN, F32(0.0), (p * scale).astype(np.float32)).astype(np.float32)


ATANH_TERMS = 7  # log1p(y) = 2 atanh(s), s = y / (2 + y) <= 1/3: s^(2*7+1) / 15 < 1e-8


def qlog1p01(y):
    """log(1 + y) for float32 y in [0, 1]: s = y / (2 + y), 2 (s + s^3/3 + ... + s^13/13) by Horner in s^2."""
    y = np.asarray(y, np.float32)
    s = y / (F32(2.0) + y)
    s2 = s * s
    p = F32(1.0 / (2 * ATANH_TERMS - 1))
    for j in range(ATANH_TERMS - 2, -1, -1):
        p = p * s2 + F32(1.0 / (2 * j + 1))
    return (F32(2.0) * s) * p


def qlog(p):
    """log(p) for normal positive float32 p: p = 2^e m, m in [1, 2): e ln 2 + log1p(m - 1)."""
    bits = np.asarray(p, np.float32).view(np.int32)
    e = ((bits >> 23) & 0xFF) - 127
    m = ((bits & 0x007FFFFF) | 0x3F800000).astype(np.int32).view(np.float32)
    return e.astype(np.float32) * LN2 + qlog1p01(m - F32(1.0))


FLT_MIN = F32(np.finfo(np.float32).tiny)
