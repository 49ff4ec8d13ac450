"""Stored weight tensors of SPEC.md section 2: layouts, packing and unpacking."""

from __future__ import annotations

import hashlib

import numpy as np

LAYOUT_I8, LAYOUT_I4_FUSED, LAYOUT_I4_SPLIT, LAYOUT_PACKED = 0, 1, 2, 3
LAYOUT_NAMES = {LAYOUT_I8: "I8", LAYOUT_I4_FUSED: "I4_FUSED", LAYOUT_I4_SPLIT: "I4_SPLIT", LAYOUT_PACKED: "PACKED"}
WEIGHT_MODES = ("int8", "int4", "packed")
PAIR_MAX_BITS = 8  # a (mu code, sigma code) pair of the PACKED layout fits one byte-indexed table row


def choose_layout(mode, weight_bits, sigma_bits, where="layer"):
    """Layout id for a weight mode, or ValueError when the codes do not fit (SPEC.md section 1)."""
    if mode not in WEIGHT_MODES:
        raise ValueError(f"`weights` must be one of {list(WEIGHT_MODES)}; received weights={mode!r}")
    if mode == "packed":
        if not (2 <= weight_bits <= 7 and 1 <= sigma_bits <= 6 and weight_bits + sigma_bits <= PAIR_MAX_BITS):
            raise ValueError(f"{where}: mu_bits={weight_bits} + sigma_bits={sigma_bits} cannot be stored as packed "
                             f"pairs (supported: mu 2..7 bits, sigma 1..6 bits, sum <= {PAIR_MAX_BITS})")
        return LAYOUT_PACKED
    if not 2 <= sigma_bits <= 8:
        raise ValueError(f"{where}: sigma_bits={sigma_bits} cannot be stored (supported: 2..8 bits per sigma code)")
    if mode == "int8":
        if not 2 <= weight_bits <= 8:
            raise ValueError(f"{where}: {weight_bits}-bit weights cannot be stored as int8 (supported: 2..8 bits)")
        return LAYOUT_I8
    if not 2 <= weight_bits <= 4:
        raise ValueError(
            f"{where}: {weight_bits}-bit weights cannot be stored as int4 (supported: 2..4 bits; use --weights int8)"
        )
    return LAYOUT_I4_FUSED if sigma_bits <= 4 else LAYOUT_I4_SPLIT


def _pack_nibbles(values):
    v = (np.asarray(values).reshape(-1).astype(np.int64) & 0xF).astype(np.uint8)
    if v.size % 2:
        v = np.append(v, np.uint8(0))
    return (v[0::2] | (v[1::2] << 4)).astype(np.uint8)


def _unpack_nibbles(packed, n, signed):
    p = np.asarray(packed, np.uint8)
    v = np.empty(p.size * 2, np.int16)
    v[0::2], v[1::2] = p & 0xF, p >> 4
    v = v[:n]
    if signed:
        v = np.where(v >= 8, v - 16, v)
    return v


def pair_values(mu_codes, sigma_codes, weight_bits):
    """PACKED pair values: the low ``b`` bits of the mu code (two's complement) | sigma code << b (SPEC 2)."""
    b = int(weight_bits)
    mu = np.asarray(mu_codes).astype(np.int64) & ((1 << b) - 1)
    return (mu | (np.asarray(sigma_codes).astype(np.int64) << b)).astype(np.uint8)


def split_pairs(pairs, weight_bits):
    """Inverse of `pair_values`: (mu codes int16, sigma codes int16)."""
    b = int(weight_bits)
    v = np.asarray(pairs).astype(np.int16)
    mu = v & ((1 << b) - 1)
    return np.where(mu >= 1 << (b - 1), mu - (1 << b), mu).astype(np.int16), (v >> b).astype(np.int16)


def pack_bits(values, width):
    """`width`-bit values packed little-endian across bytes: bit j of value n is bit (n*width + j) of the stream,
    stream bit i is bit (i & 7) of byte i >> 3; the last byte's unused high bits are 0."""
    v = np.asarray(values, np.uint8).reshape(-1)
    bits = np.unpackbits(v[:, None], axis=1, bitorder="little")[:, :width]
    return np.packbits(bits.reshape(-1), bitorder="little")


def unpack_bits(packed, n, width):
    """Inverse of `pack_bits`: the first `n` `width`-bit values (uint8)."""
    bits = np.unpackbits(np.asarray(packed, np.uint8), bitorder="little")[:n * width].reshape(n, width)
    return np.packbits(bits, axis=1, bitorder="little").reshape(-1)


def packed_bytes(n, weight_bits, sigma_bits):
    """ceil(n * (mu bits + sigma bits) / 8): the PACKED tensor's size for n weights."""
    return -(-int(n) * (int(weight_bits) + int(sigma_bits)) // 8)


def _need_weight_bits(layout, weight_bits):
    if layout == LAYOUT_PACKED and weight_bits is None:
        raise ValueError("the PACKED layout needs weight_bits (the mu code width)")


def pack(mu_codes, sigma_codes, layout, sigma_bits, weight_bits=None):
    """Stored tensors (list of (name, uint8/int8 array)) for [R, C] mu and sigma code arrays (`weight_bits`: the mu
    code width, needed by the PACKED layout only)."""
    mu = np.asarray(mu_codes)
    sig = np.asarray(sigma_codes)
    if mu.shape != sig.shape or mu.ndim != 2:
        raise ValueError(f"mu and sigma codes must be two [R, C] arrays; received {mu.shape} and {sig.shape}")
    _need_weight_bits(layout, weight_bits)
    if layout == LAYOUT_PACKED:
        return [("pairs", pack_bits(pair_values(mu, sig, weight_bits), int(weight_bits) + int(sigma_bits)))]
    if layout == LAYOUT_I4_FUSED:
        return [("packed", ((mu.astype(np.int64) & 0xF) | (sig.astype(np.int64) << 4)).astype(np.uint8))]
    if layout == LAYOUT_I4_SPLIT:
        return [("mu", _pack_nibbles(mu)), ("sigma", sig.astype(np.uint8))]
    if layout == LAYOUT_I8:
        sigma = _pack_nibbles(sig) if sigma_bits <= 4 else sig.astype(np.uint8)
        return [("mu", mu.astype(np.int8)), ("sigma", sigma)]
    raise ValueError(f"unknown layout id {layout!r}; expected one of {sorted(LAYOUT_NAMES)}")


def stored_shapes(layout, sigma_bits, shape, weight_bits=None):
    """[(name, dtype, shape)] that `pack` returns for [R, C] codes, computed without allocating."""
    rows, cols = (int(v) for v in shape)
    full, half = (rows, cols), (-(-rows * cols // 2),)
    _need_weight_bits(layout, weight_bits)
    if layout == LAYOUT_PACKED:
        return [("pairs", np.uint8, (packed_bytes(rows * cols, weight_bits, sigma_bits),))]
    if layout == LAYOUT_I4_FUSED:
        return [("packed", np.uint8, full)]
    if layout == LAYOUT_I4_SPLIT:
        return [("mu", np.uint8, half), ("sigma", np.uint8, full)]
    if layout == LAYOUT_I8:
        return [("mu", np.int8, full), ("sigma", np.uint8, half if sigma_bits <= 4 else full)]
    raise ValueError(f"unknown layout id {layout!r}; expected one of {sorted(LAYOUT_NAMES)}")


def unpack(tensors, layout, sigma_bits, shape, weight_bits=None):
    """Inverse of `pack`: (mu_codes int16 [R, C], sigma_codes int16 [R, C])."""
    rows, cols = shape
    n = rows * cols
    arrays = [np.asarray(t) for _, t in tensors]
    _need_weight_bits(layout, weight_bits)
    if layout == LAYOUT_PACKED:
        width = int(weight_bits) + int(sigma_bits)
        if arrays[0].size != packed_bytes(n, weight_bits, sigma_bits):
            raise ValueError(f"PACKED tensor of {arrays[0].size} bytes; {n} pairs of {width} bits need "
                             f"{packed_bytes(n, weight_bits, sigma_bits)}")
        mu, sig = split_pairs(unpack_bits(arrays[0].reshape(-1), n, width), weight_bits)
        return mu.reshape(shape), sig.reshape(shape)
    if layout == LAYOUT_I4_FUSED:
        b = arrays[0].reshape(-1).astype(np.int16)
        mu = b & 0xF
        mu = np.where(mu >= 8, mu - 16, mu)
        return mu.reshape(shape), (b >> 4).reshape(shape)
    if layout == LAYOUT_I4_SPLIT:
        return _unpack_nibbles(arrays[0], n, True).reshape(shape), arrays[1].astype(np.int16).reshape(shape)
    sig = _unpack_nibbles(arrays[1], n, False) if sigma_bits <= 4 else arrays[1].astype(np.int16)
    return arrays[0].astype(np.int16).reshape(shape), sig.reshape(shape)


def stored_tensor_entries(layer):
    """manifest.json's description of one layer's stored code tensors (with their SHA-256)."""
    return [{"name": n, "dtype": str(t.dtype), "shape": list(t.shape), "bytes": int(t.nbytes),
             "sha256": hashlib.sha256(np.ascontiguousarray(t).tobytes()).hexdigest()}
            for n, t in layer.stored_tensors()]
