"""TFLite's sliding-window geometry (lite/kernels/padding.h): output sizes and padding for SAME / VALID, and
the window gather used by the numpy conv and pooling kernels (out-of-image taps are reported as invalid, never
read: TFLite skips them, which for conv equals an input at the zero point)."""

from __future__ import annotations

import numpy as np

PADDINGS = ("same", "valid")


def check_padding(padding, where="op"):
    p = str(padding).lower()
    if p not in PADDINGS:
        raise ValueError(f"{where}: padding must be 'same' or 'valid'; received padding={padding!r}")
    return p


def out_size(padding, in_size, filter_size, stride, dilation=1):
    """ComputeOutSize: SAME ceil(in / stride); VALID (in - eff + stride) // stride, eff = (f - 1) * d + 1."""
    eff = (int(filter_size) - 1) * int(dilation) + 1
    if check_padding(padding) == "same":
        return (int(in_size) + int(stride) - 1) // int(stride)
    return max((int(in_size) - eff + int(stride)) // int(stride), 0)


def pad_before(padding, in_size, filter_size, stride, dilation=1):
    """ComputePaddingWithOffset: floor(total / 2) before (the odd pixel goes after), 0 for VALID."""
    if check_padding(padding) == "valid":
        return 0
    eff = (int(filter_size) - 1) * int(dilation) + 1
    total = (out_size(padding, in_size, filter_size, stride, dilation) - 1) * int(stride) + eff - int(in_size)
    return max(total, 0) // 2


def windows(x, filter_hw, strides, padding, dilation=(1, 1), fill=0):
    """Gather every window of NHWC `x`: returns (patches [N, OH, OW, FH, FW, C], valid [OH, OW, FH, FW]) with
    `fill` at the invalid (out-of-image) taps."""
    x = np.asarray(x)
    n, h, w, c = x.shape
    (fh, fw), (sh, sw), (dh, dw) = filter_hw, strides, dilation
    oh, ow = out_size(padding, h, fh, sh, dh), out_size(padding, w, fw, sw, dw)
    ph, pw = pad_before(padding, h, fh, sh, dh), pad_before(padding, w, fw, sw, dw)
    iy = np.arange(oh)[:, None] * sh - ph + np.arange(fh)[None, :] * dh  # [OH, FH]
    ix = np.arange(ow)[:, None] * sw - pw + np.arange(fw)[None, :] * dw  # [OW, FW]
    vy, vx = (iy >= 0) & (iy < h), (ix >= 0) & (ix < w)
    patches = x[:, np.clip(iy, 0, h - 1)[:, None, :, None], np.clip(ix, 0, w - 1)[None, :, None, :], :]
    valid = vy[:, None, :, None] & vx[None, :, None, :]  # [OH, OW, FH, FW]
    patches = np.where(valid[None, ..., None], patches, np.asarray(fill, x.dtype))
    return patches, valid
