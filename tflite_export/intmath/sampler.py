"""Weight sampler of SPEC.md section 3: xorshift32 byte streams, the Q12 inverse-CDF eps table,
and the fixed-point ``w = mu + sigma * eps`` on the SPQ grid.  Pure numpy, vectorised: the
sequential xorshift32 recurrence is expanded by GF(2) matrix powers (xorshift is linear), so a
whole tensor's bytes are generated with a few dozen array operations.
"""

from __future__ import annotations

import math
import statistics

import numpy as np

MASK32 = 0xFFFFFFFF
EPS_FRAC_BITS = 12  # E
SIGMA_FRAC_BITS = 10  # F
SHIFT = EPS_FRAC_BITS + SIGMA_FRAC_BITS  # s = 22
ZERO_STATE_REPLACEMENT = 0x6D2B79F5
INT32_MAX = 2**31 - 1


def xorshift32(x):
    """One step of xorshift32 (13, 17, 5) on a Python int."""
    x ^= (x << 13) & MASK32
    x ^= x >> 17
    x ^= (x << 5) & MASK32
    return x


def seed_state(seed, layer):
    """Initial stream state of `layer` for a 32-bit `seed` (murmur3 fmix32 of seed + golden*(l+1))."""
    seed, layer = int(seed), int(layer)
    if not 0 <= seed <= MASK32:
        raise ValueError(f"`seed` must be a 32-bit unsigned integer; received seed={seed}")
    if not 0 <= layer <= 0xFFFF:
        raise ValueError(f"`layer` must be in [0, 65535]; received layer={layer}")
    z = (seed + 0x9E3779B9 * (layer + 1)) & MASK32
    z = ((z ^ (z >> 16)) * 0x85EBCA6B) & MASK32
    z = ((z ^ (z >> 13)) * 0xC2B2AE35) & MASK32
    z ^= z >> 16
    return z if z != 0 else ZERO_STATE_REPLACEMENT


def _apply(columns, x):
    """Apply the GF(2) linear map with the given 32 column images to uint32 array `x`."""
    out = np.zeros_like(x)
    for j in range(32):
        out ^= ((x >> np.uint32(j)) & np.uint32(1)) * columns[j]
    return out


_POWER_CACHE = {}


def _power_columns(k):
    """Columns of the xorshift32 map applied k times (k a power of two), cached."""
    if k not in _POWER_CACHE:
        if k == 1:
            cols = np.array([xorshift32(1 << j) for j in range(32)], dtype=np.uint32)
        else:
            half = _power_columns(k // 2)
            cols = _apply(half, half.copy())
        _POWER_CACHE[k] = cols
    return _POWER_CACHE[k]


_BLOCK = 64


def xorshift_words(state, n):
    """The next `n` outputs of xorshift32 from `state` (uint32 array) and the new state."""
    n = int(n)
    if n <= 0:
        return np.zeros(0, np.uint32), int(state)
    first = []
    x = int(state)
    for _ in range(min(n, _BLOCK)):
        x = xorshift32(x)
        first.append(x)
    words = np.array(first, dtype=np.uint32)
    while words.size < n:
        k = words.size  # a power of two times _BLOCK: word[i + k] = T^k(word[i])
        words = np.concatenate([words, _apply(_power_columns(k), words)])
    words = words[:n]
    return words, int(words[-1])


def words_to_bytes(words):
    """Little-endian bytes of uint32 words: byte j is (word[j>>2] >> 8*(j&3)) & 0xFF."""
    return np.asarray(words, dtype="<u4").view(np.uint8)


class ByteStream:
    """One layer's byte stream (SPEC 3.1): continues across rows and MC samples."""

    def __init__(self, seed, layer):
        self.state = seed_state(seed, layer)
        self.position = 0  # bytes consumed
        self._pending = np.zeros(0, np.uint8)  # unconsumed bytes of the last word

    def take(self, n):
        n = int(n)
        if n < 0:
            raise ValueError(f"`n` must be >= 0; received n={n}")
        have = self._pending.size
        if n <= have:
            out, self._pending = self._pending[:n], self._pending[n:]
        else:
            words, self.state = xorshift_words(self.state, -(-(n - have) // 4))
            fresh = words_to_bytes(words)
            need = n - have
            out = np.concatenate([self._pending, fresh[:need]])
            self._pending = fresh[need:]
        self.position += n
        return out.copy()


def _eps_table():
    nd = statistics.NormalDist()
    table = np.zeros(256, dtype=np.int16)
    for u in range(128, 256):
        v = round(nd.inv_cdf((u + 0.5) / 256) * 2**EPS_FRAC_BITS)  # Python round: half to even
        table[u] = v
        table[255 - u] = -v
    return table


EPS_Q = _eps_table()
EPS_Q.setflags(write=False)


def sigma_q_table(sigma_quantizer, weight_bits):
    """SIGMA_Q[k] = round(sigma_k * M * 2^F) (int32) for the 2^sb log levels (SPEC 3.3)."""
    max_code = 2 ** (int(weight_bits) - 1) - 1
    levels = np.asarray(sigma_quantizer.levels(), dtype=np.float64)
    table = np.round(levels * max_code * 2**SIGMA_FRAC_BITS)
    worst = float(np.max(np.abs(table))) * float(np.max(np.abs(EPS_Q.astype(np.int64)))) + 2 ** (SHIFT - 1)
    if worst > INT32_MAX:
        raise ValueError(
            f"sigma levels up to {levels.max():g} at {weight_bits} weight bits overflow the int32 product "
            f"SIGMA_Q * EPS_Q (needs max sigma <= {INT32_MAX / (max_code * 2**SIGMA_FRAC_BITS * 11818):.3f})"
        )
    return table.astype(np.int32)


def sample_codes(mu_codes, sigma_codes, sigma_q, u, weight_bits):
    """w_code = clamp(mu + ((SIGMA_Q[k] * EPS_Q[u] + 2^(s-1)) >> s), -M, M) as int8 (SPEC 3.3).

    Arrays broadcast; `u` are the stream bytes in the weights' row-major order.
    """
    max_code = 2 ** (int(weight_bits) - 1) - 1
    prod = np.asarray(sigma_q, np.int64)[np.asarray(sigma_codes)] * EPS_Q.astype(np.int64)[np.asarray(u)]
    offset = (prod + (1 << (SHIFT - 1))) >> SHIFT
    return np.clip(np.asarray(mu_codes, np.int64) + offset, -max_code, max_code).astype(np.int8)


def pair_table(sigma_q, weight_bits, sigma_bits):
    """int8[2^p * 256], p = weight_bits + sigma_bits <= 8: the w_code of PACKED pair value v (SPEC 2: the low
    ``weight_bits`` bits hold the mu code, two's complement, the high bits the sigma code) and stream byte u at
    index ``v << 8 | u`` (SPEC 3.3 evaluated for every pair).

    Pairs that never occur in a model (mu field -2^(b-1); a sigma code beyond the table) hold the entry of the
    clamped mu code, sigma code 0, so every read is defined. For b = sb = 4 this is the I4_FUSED derived table.
    """
    b, sb = int(weight_bits), int(sigma_bits)
    if b + sb > 8:
        raise ValueError(f"pair_table: mu_bits={b} + sigma_bits={sb} > 8")
    v = np.arange(1 << (b + sb))
    mu = v & ((1 << b) - 1)
    mu = np.where(mu >= 1 << (b - 1), mu - (1 << b), mu)
    k = v >> b
    k = np.where(k < len(sigma_q), k, 0)
    u = np.arange(256)
    return sample_codes(mu[:, None], k[:, None], sigma_q, u[None, :], b).reshape(-1)


def sample_pairs(pairs, table, u):
    """w_code of PACKED pair values `pairs` and stream bytes `u` by one `pair_table` read each (int8)."""
    return np.asarray(table, np.int8)[(np.asarray(pairs, np.int64) << 8) | np.asarray(u, np.int64)]


def eps_ks_distances():
    """KS distances to N(0, 1) of the Q12 table and of the 4-byte CLT sum (exact, from the atoms)."""
    nd = statistics.NormalDist()

    def ks(values, probs):
        order = np.argsort(values, kind="stable")
        v, p = np.asarray(values, float)[order], np.asarray(probs, float)[order]
        uniq, idx = np.unique(v, return_index=True)
        cum = np.cumsum(p)
        ends = np.append(idx[1:], v.size) - 1
        after = cum[ends]
        before = np.concatenate([[0.0], after[:-1]])
        phi = np.array([nd.cdf(x) for x in uniq])
        return float(max(np.max(np.abs(after - phi)), np.max(np.abs(before - phi))))

    table = ks(EPS_Q / 2**EPS_FRAC_BITS, np.full(256, 1 / 256))
    # CLT: sum of 4 uniform bytes, standardised: (S - 4*127.5) / sqrt(4 * (256^2 - 1) / 12)
    dist = np.ones(1)
    for _ in range(4):
        dist = np.convolve(dist, np.full(256, 1 / 256))
    sums = np.arange(dist.size)
    clt = ks((sums - 4 * 127.5) / math.sqrt(4 * (256**2 - 1) / 12), dist)
    return {"table_q12": table, "clt4_bytes": clt}
