"""Cheaper inference modes of the integer model (SPEC.md section 11), the numpy reference of the C runtime's
QBNN_MODE_HYBRID and QBNN_MODE_PFP (`micro/qbnn_modes.c`).

* Exact moments of a sampled weight CODE (SPEC 3.3) per (mu code, sigma code): the 256 stream bytes are
  equally likely, so ``S1 = sum_u w(u)`` and ``V = 256 sum_u w(u)^2 - S1^2`` are integers with
  ``E[code] = S1 / 256`` and ``Var[code] = V / 65536`` exactly.
* **hybrid**: the first Bayesian layer's accumulators get their exact mean and variance from those integers
  (int64 sums), each MC sample draws them as ``mean + sd * z`` (z: the stream's eps table with a variance gain),
  requantizes them as FULLY_CONNECTED does and runs the later layers by sampling their weights as MC does.
* **pfp**: a probabilistic forward pass in float32 (means and variances through every layer, SoftPlus / ReLU
  moment matching), a diagonal Gaussian over the logits, K logit samples -> SPEC 7's uncertainty split.
  Every float operation is written in the order `qbnn_modes.c` does it (own exp / log built from + - * /, no
  libm), so the C runtime reproduces these floats bit for bit on every core (the tests allow 1e-6).
Only models whose layers are all Bayesian FULLY_CONNECTED (`IntegerLayer`, the MLP of SPEC 1) are supported.
"""

from __future__ import annotations

import math

import numpy as np

from tflite_export import statistics, storage
from tflite_export.intmath import fixedpoint, sampler
from tflite_export.intmath.float32 import F32, qexp_neg, qlog1p01
from tflite_export.statistics import JK_GROUPS, entropy_f32, jk_correction_probs, jk_group_of
from tflite_export.ir.fully_connected import IntegerLayer
from tflite_export.ir.softmax import SOFTMAX_SCALE  # noqa: F401  (section 7's output scale)

MODES = ("mc", "hybrid", "pfp")
# hybrid: z = EPS_Q[u] * Z_GAIN / 2^15 has variance 1 (the table's own variance is 0.99497: its tails are cut)
Z_GAIN_BITS = 15
Z_GAIN = int(round(2**Z_GAIN_BITS * math.sqrt(256 * 2 ** (2 * sampler.EPS_FRAC_BITS)
                                              / float(np.sum(sampler.EPS_Q.astype(np.int64) ** 2)))))

# SoftPlus moment matching: Gauss-Hermite rules (before pruning) for sd <= 1, 1 < sd <= 2, sd > 2
GH_TIERS = ((1.0, 10), (2.0, 16), (np.inf, 32))


# ---- exact code moments -----------------------------------------------------------------------------------

def code_moments(mu_codes, sigma_codes, sigma_q, weight_bits):
    """(S1, V) int64 arrays for the given codes: S1 = sum_u w(u), V = 256 sum_u w(u)^2 - S1^2 over the 256
    stream bytes u (enumeration of SPEC 3.3's formula)."""
    mu = np.asarray(mu_codes, np.int64)
    k = np.asarray(sigma_codes, np.int64)
    w = sampler.sample_codes(mu[..., None], k[..., None], sigma_q, np.arange(256), weight_bits).astype(np.int64)
    s1 = w.sum(-1)
    return s1, 256 * (w * w).sum(-1) - s1 * s1


def moment_table(sigma_q, weight_bits, layout=storage.LAYOUT_I4_FUSED, sigma_bits=None):
    """int32 [2^p, 2] = (S1, V) per stored index, the C runtime's table: the I4_FUSED byte (mu nibble | sigma code
    << 4, p = 8) or, for `layout` PACKED, the pair value (mu field of `weight_bits` | sigma code << weight_bits,
    p = weight_bits + sigma_bits). Indices that never occur (mu field -2^(b-1), sigma code beyond SIGMA_Q) get the
    entries the sampling tables give them (sigma code 0)."""
    if layout == storage.LAYOUT_PACKED:
        mu_bits, p = int(weight_bits), int(weight_bits) + int(sigma_bits if sigma_bits is not None else 99)
        if p > storage.PAIR_MAX_BITS:
            raise ValueError(f"moment_table: PACKED needs weight_bits + sigma_bits <= {storage.PAIR_MAX_BITS}; "
                             f"received {weight_bits} + {sigma_bits}")
    elif layout == storage.LAYOUT_I4_FUSED:
        mu_bits, p = 4, 8
    else:
        raise ValueError(f"moment_table: layout {storage.LAYOUT_NAMES.get(layout, layout)} has no table index")
    b = np.arange(1 << p)
    mu = b & ((1 << mu_bits) - 1)
    mu = np.where(mu >= 1 << (mu_bits - 1), mu - (1 << mu_bits), mu)
    k = b >> mu_bits
    k = np.where(k < len(sigma_q), k, 0)
    s1, v = code_moments(mu, k, sigma_q, weight_bits)
    return np.stack([s1, v], axis=1).astype(np.int32)


def _codes(layer):
    """(mu codes, sigma codes, SIGMA_Q, weight bits) of a Bayesian dense layer: the v1 IntegerLayer or a
    FULLY_CONNECTED op with Bayesian weights."""
    w = getattr(layer, "weights", layer)
    return w.mu_codes, w.sigma_codes, w.sigma_q, int(w.weight_bits)


def layer_code_moments(layer):
    """(S1, V) int64 [R, C] of every weight of a Bayesian dense layer (by the (mu, sigma code) grid)."""
    mu, sigma, sigma_q, bits = _codes(layer)
    m = 2 ** (bits - 1) - 1
    grid_mu, grid_k = np.meshgrid(np.arange(-m, m + 1), np.arange(len(sigma_q)), indexing="ij")
    s1, v = code_moments(grid_mu, grid_k, sigma_q, bits)
    idx = (np.asarray(mu, np.int64) + m, np.asarray(sigma, np.int64))
    return s1[idx], v[idx]


def _moments_dense(op):
    """A Bayesian dense layer the modes can take moments of: one scale, no bias (qbnn_plan.c: moments_ok)."""
    return isinstance(op, IntegerLayer) or (op.kind == "FULLY_CONNECTED" and op.bayesian and op.bias is None
                                            and np.asarray(op.weights.scales).size == 1)


def hybrid_entry(model):
    """Index of the op the hybrid mode replaces by its exact moments: the first Bayesian op, which must be a dense
    layer with one scale and no bias (the deterministic prefix before it runs once, the ops after it are sampled as
    in MC). Raises ValueError naming the op otherwise."""
    k = model.prefix_length
    if k == len(model.layers):
        raise ValueError("hybrid: the model has no Bayesian op")
    op = model.layers[k]
    if not _moments_dense(op):
        raise ValueError(f"hybrid: the first Bayesian op ({k}: {op.kind} {op.name!r}) is not a bias-free dense "
                         "layer with one scale; use mode 'mc'")
    return k


def pfp_entry(model):
    """Index of the first op PFP propagates moments through: the first Bayesian op; it and every op after it must
    be Bayesian dense layers as in `hybrid_entry` (the deterministic prefix before it runs once). Raises ValueError
    naming the first op that is not."""
    k = hybrid_entry(model)
    for i, op in enumerate(model.layers[k:], k):
        if not _moments_dense(op):
            raise ValueError(f"pfp: op {i} ({op.kind} {op.name!r}) after the first Bayesian op is not a Bayesian "
                             "bias-free dense layer with one scale; use mode 'hybrid' or 'mc'")
    return k


def _requant(op):
    """(multiplier, shift) of a per-tensor dense op."""
    if isinstance(op, IntegerLayer):
        return op.multiplier
    mult, shift = op.multipliers()
    return int(mult[0]), int(shift[0])


# ---- hybrid -------------------------------------------------------------------------------------------------

def first_layer_sums(layer, q_in):
    """(A1, A2) int64 [N, R]: A1 = sum_c S1 x_c (= 256 E[acc]), A2 = sum_c V x_c^2 (= 65536 Var[acc]),
    x_c = q_c - zp_in."""
    s1, v = layer_code_moments(layer)
    x = np.asarray(q_in, np.int64) - int(layer.input_zero_point)
    return x @ s1.T, (x * x) @ v.T  # int64 matmuls: exact


def isqrt_round(a):
    """round(sqrt(a)) for int64 a >= 0 (ties cannot occur: a = r^2 + r + 1/4 has no integer solution):
    r = floor(sqrt(a)), plus 1 when a - r^2 > r."""
    a = np.asarray(a, np.int64)
    r = np.floor(np.sqrt(a.astype(np.float64))).astype(np.int64)
    r = np.where(r * r > a, r - 1, r)
    r = np.where((r + 1) * (r + 1) <= a, r + 1, r)
    return r + (a - r * r > r)


def hybrid_scale(sd8):
    """sdq = (sd8 * Z_GAIN + 2^14) >> 15: the unit's sd in Q8 times the eps table's variance gain."""
    return (np.asarray(sd8, np.int64) * Z_GAIN + (1 << (Z_GAIN_BITS - 1))) >> Z_GAIN_BITS


def hybrid_accumulators(a1, sd8, u):
    """One draw of the first layer's int32 accumulators: n = (sdq * EPS_Q[u] + 2^11) >> 12 (Q8 noise),
    acc = (A1 + 128 + n) >> 8, sd8 = round(sqrt(A2)) (= 256 sd), sdq = `hybrid_scale(sd8)`."""
    n = (hybrid_scale(sd8) * sampler.EPS_Q.astype(np.int64)[np.asarray(u)]
         + (1 << (sampler.EPS_FRAC_BITS - 1))) >> sampler.EPS_FRAC_BITS
    acc = (np.asarray(a1, np.int64) + 128 + n) >> 8
    return np.clip(acc, fixedpoint.INT32_MIN, fixedpoint.INT32_MAX)


def hybrid_predict_codes(model, x, num_samples=30, seed=None, streams=None):
    """[S, N, K] int8 softmax codes of the hybrid mode. The deterministic prefix runs once; the first Bayesian op
    (`hybrid_entry`, a dense layer) gets the exact moments of its accumulators; sample s takes N * R bytes of its
    stream (image i's R bytes at i * R, one per unit) and samples the later ops from their own streams as MC does
    (their weights shared by the batch). With N = 1 this is the C runtime's qbnn_predict(.., QBNN_MODE_HYBRID, ..)."""
    k = hybrid_entry(model)
    streams = model.streams(seed) if streams is None else streams
    q = model.quantize_input(np.asarray(x).reshape(-1, *model.input_shape))
    if k:
        q = model._run(q, [op.sample(None) if op.has_weights else None for op in model.layers[:k]], 0, k)
    first = model.layers[k]
    a1, a2 = first_layer_sums(first, q)
    sd8 = isqrt_round(a2)
    mult, shift = _requant(first)
    lo, hi = first.act_range
    n, r = a1.shape
    out = np.empty((num_samples, n, model.num_classes), np.int8)
    softmax, quant = model.ops[-1], model.quants()[-1]
    for s in range(num_samples):
        u = streams[0].take(n * r).reshape(n, r)
        acc = hybrid_accumulators(a1, sd8, u)
        h = first.activate(fixedpoint.requantize(acc, mult, shift, first.output_zero_point, lo, hi, model.rounding))
        rest = iter(streams[1:])
        w = [None] * (k + 1) + [op.sample(next(rest)) if op.bayesian else (op.sample(None) if op.has_weights else None)
                                for op in model.layers[k + 1:]]
        h = model._run(h, w, k + 1, len(model.layers))
        out[s] = softmax.run(h, quant, None, model.rounding)
    return out


# ---- float32 helpers written as the C does them (no libm) ---------------------------------------------------



SOFTPLUS_LINEAR_AT = F32(16.0)  # |x| >= 16: softplus(x) = max(x, 0) (the rest is below 1.2e-7)
SMALL_Y = F32(2.0**-12)  # log1p(y) = y (1 - y / 2) below: relative error < y^2 / 3 < 2e-8


def qsoftplus(x):
    """max(x, 0) + log1p(exp(-|x|)), with the two shortcuts above (the C's branches)."""
    x = np.asarray(x, np.float32)
    ax = np.abs(x)
    base = np.maximum(x, F32(0.0))
    y = qexp_neg(-ax)
    tail = np.where(y < SMALL_Y, y * (F32(1.0) - F32(0.5) * y), qlog1p01(y))
    return np.where(ax >= SOFTPLUS_LINEAR_AT, base, base + tail).astype(np.float32)


GH_MIN_WEIGHT = 2.0**-30  # nodes with a smaller weight are dropped (|f| <= 30 there: < 3e-8 in all)


def gauss_hermite(order):
    """float32 (nodes, weights) for E over N(0, 1): probabilists' Hermite nodes, weights normalised to sum 1,
    without the nodes whose weight is below GH_MIN_WEIGHT (10 -> 10 nodes, 16 -> 14, 32 -> 22)."""
    x, w = np.polynomial.hermite_e.hermegauss(int(order))
    w = w / w.sum()
    keep = w >= GH_MIN_WEIGHT
    return x[keep].astype(np.float32), w[keep].astype(np.float32)


GH = {n: gauss_hermite(n) for _, n in GH_TIERS}
INV_SQRT2 = F32(0.7071067811865476)
INV_SQRT2PI = F32(0.3989422804014327)


def softplus_moments_f32(m, v):
    """SoftPlus moment matching as qbnn_modes.c: sd = sqrt(v); Gauss-Hermite with the rule of the first tier
    of GH_TIERS whose bound sd does not exceed (10 / 16 / 32 nodes, pruned by `gauss_hermite`), centred on f0 = softplus(m) so that the variance does not cancel:
    d_i = f(m + sd t_i) - f0, s1 = sum w_i d_i, sq = sum w_i d_i^2 (sequential float32 sums),
    mean = f0 + s1, var = max(sq - s1^2, 0)."""
    m, v = np.asarray(m, np.float32), np.asarray(v, np.float32)
    sd = np.sqrt(v)
    out_m, out_v = np.zeros_like(m), np.zeros_like(m)
    lower = F32(-1.0)
    for bound, n in GH_TIERS:
        sel = (sd > lower) & (sd <= F32(bound))
        lower = F32(bound)
        if not np.any(sel):
            continue
        t, w = GH[n]
        mm, ss = m[sel], sd[sel]
        f0 = qsoftplus(mm)
        s1, sq = np.zeros_like(mm), np.zeros_like(mm)
        for i in range(len(t)):
            d = qsoftplus(mm + ss * t[i]) - f0
            wd = w[i] * d
            s1 = s1 + wd
            sq = sq + wd * d
        var = sq - s1 * s1
        out_m[sel], out_v[sel] = f0 + s1, np.maximum(var, F32(0.0))
    return out_m, out_v


def qphi_cdf(a):
    """(Phi(a), 1 - Phi(a), phi(a)) for float32 a: Abramowitz-Stegun 26.2.17 (|error| < 7.5e-8), with
    qexp_neg; the tail 1 - Phi(|a|) is computed directly."""
    a = np.asarray(a, np.float32)
    z = np.abs(a)
    t = F32(1.0) / (F32(1.0) + F32(0.2316419) * z)
    poly = t * (F32(0.319381530) + t * (F32(-0.356563782) + t * (F32(1.781477937) + t * (F32(-1.821255978)
                                                                                        + t * F32(1.330274429)))))
    pdf = INV_SQRT2PI * qexp_neg(F32(-0.5) * z * z)
    upper = pdf * poly  # 1 - Phi(|a|)
    lower = F32(1.0) - upper
    pos = a >= 0
    return (np.where(pos, lower, upper).astype(np.float32), np.where(pos, upper, lower).astype(np.float32),
            pdf.astype(np.float32))


def relu_moments_f32(m, v):
    """ReLU moment matching in closed form, a = m / sd: E = m Phi + sd phi and, without the cancellation of
    E[relu^2] - E^2, Var = m^2 Phi (1 - Phi) + v Phi + m sd phi (1 - 2 Phi) - v phi^2; sd == 0: (max(m, 0), 0)."""
    m, v = np.asarray(m, np.float32), np.asarray(v, np.float32)
    sd = np.sqrt(v)
    safe = np.where(sd > 0, sd, F32(1.0))
    cdf, ccdf, pdf = qphi_cdf(m / safe)
    mean = m * cdf + sd * pdf
    var = (((m * m) * (cdf * ccdf) + v * cdf) + (m * sd) * (pdf * (ccdf - cdf))) - (v * pdf) * pdf
    var = np.maximum(var, F32(0.0))
    return (np.where(sd > 0, mean, np.maximum(m, F32(0.0))).astype(np.float32),
            np.where(sd > 0, var, F32(0.0)).astype(np.float32))


def activation_moments_f32(activation, m, v):
    if activation == "softplus":
        return softplus_moments_f32(m, v)
    if activation == "relu":
        return relu_moments_f32(m, v)
    return np.asarray(m, np.float32), np.asarray(v, np.float32)


def weight_scale_f32(layer):
    """The real value of one weight code (float32): 1 / M for the v1 layer, the filter scale otherwise."""
    if isinstance(layer, IntegerLayer):
        return F32(1.0) / F32(layer.max_code)
    return F32(np.asarray(layer.weights.scales).reshape(-1)[0])


def input_scale_f32(layer):
    """The real value of one input code step of a layer (float32; 1/255 for the image)."""
    return F32(layer.input_scale)


INPUT_SCALE_F32 = F32(1.0) / F32(255.0)


def pfp_logit_moments(model, x):
    """float32 (mean, var) [N, K] of the logits, in the C's order of operations.

    The deterministic prefix (ops before `pfp_entry`) runs once. Its first Bayesian layer (input fixed): mean =
    float(A1) * (s / 256), var = float(A2) * (s * s / 65536), s = s_in * s_w (float32; s_in = 1/255 for the
    image). Later layers, per row r, sequentially over c: am += e_c hm_c, av += V_c E2_c + e_c^2 hv_c
    (e_c = float(S1_c), E2 = hm^2 + hv); mean = am * (s_w / 256), var = av * (s_w^2 / 65536). Hidden activations
    by moment matching."""
    k = pfp_entry(model)
    q = model.quantize_input(np.asarray(x).reshape(-1, *model.input_shape))
    if k:
        q = model._run(q, [op.sample(None) if op.has_weights else None for op in model.layers[:k]], 0, k)
        q = q.reshape(len(q), -1)
    layers = model.layers[k:]
    a1, a2 = first_layer_sums(layers[0], q)
    s = input_scale_f32(layers[0]) * weight_scale_f32(layers[0])
    m = a1.astype(np.float32) * (s * F32(1.0 / 256))
    v = a2.astype(np.float32) * ((s * s) * F32(1.0 / 65536))
    for l, layer in enumerate(layers):
        if l > 0:
            s1, vv = layer_code_moments(layer)
            e, vf = s1.astype(np.float32), vv.astype(np.float32)
            e2 = m * m + v
            am = np.zeros((m.shape[0], s1.shape[0]), np.float32)
            av = np.zeros_like(am)
            for c in range(s1.shape[1]):
                am = am + e[:, c][None, :] * m[:, c:c + 1]
                av = av + (vf[:, c][None, :] * e2[:, c:c + 1] + (e[:, c] * e[:, c])[None, :] * v[:, c:c + 1])
            sw = weight_scale_f32(layer)
            m = am * (sw * F32(1.0 / 256))
            v = av * ((sw * sw) * F32(1.0 / 65536))
        if l < len(layers) - 1 or layer.activation != "linear":
            m, v = activation_moments_f32(layer.activation, m, v)
    return m, v


def pfp_uncertainty(model, x, num_samples=30, seed=None, streams=None):
    """SPEC 11.3: the logit Gaussian, K = num_samples logit samples (image i takes K * classes bytes of the last
    layer's stream, sample-major, class-minor; images in order), float32 softmax with qexp_neg, the mean
    probabilities and the uncertainty split with the jackknife correction (`jk_correction_probs`). Returns the dict of
    `statistics.uncertainty` (no `sums`) plus the logit moments."""
    streams = model.streams(seed) if streams is None else streams
    m, v = pfp_logit_moments(model, x)
    n, k = m.shape
    sd = np.sqrt(v)
    u = streams[-1].take(n * num_samples * k).reshape(n, num_samples, k)  # the last op's stream
    eps = sampler.EPS_Q.astype(np.float32)[u] * F32(1.0 / 4096)
    pm = np.zeros((n, k), np.float32)
    gs = np.zeros((min(num_samples, JK_GROUPS), n, k), np.float32)  # the jackknife's group sums
    hsum = np.zeros(n, np.float32)
    for s in range(num_samples):
        logit = m + sd * eps[:, s, :]
        mx = logit[:, 0]
        for c in range(1, k):
            mx = np.maximum(mx, logit[:, c])
        e = qexp_neg(logit - mx[:, None])
        tot = np.zeros(n, np.float32)
        for c in range(k):
            tot = tot + e[:, c]
        p = (e / tot[:, None]).astype(np.float32)
        pm = pm + p
        g = jk_group_of(s, num_samples)
        gs[g] = gs[g] + p
        hsum = hsum + entropy_f32(p)
    mean = (pm / F32(num_samples)).astype(np.float32)
    pe = entropy_f32(mean)
    ee = (hsum / F32(num_samples)).astype(np.float32)
    mi = (pe - ee).astype(np.float32)
    corr = jk_correction_probs(gs, pm, pe, num_samples)
    return {"mean_prob": mean, "prediction": np.argmax(mean, axis=-1), "predictive_entropy": pe,
            "expected_entropy": ee, "mutual_information": mi, "entropy_correction": corr,
            "predictive_entropy_corrected": (pe + corr).astype(np.float32),
            "mutual_information_corrected": (mi + corr).astype(np.float32), "logit_mean": m, "logit_var": v}


def forward_mean_codes(model, x):
    """int8 softmax codes [N, K] of one pass with every weight at its quantized mean (the mu code)."""
    def mean(op):
        if hasattr(op, "mu_codes"):  # the v1 Bayesian layer
            return np.asarray(op.mu_codes, np.int8)
        return op.weights.mean_codes() if op.has_weights else None

    return model.forward(x, [mean(op) for op in model.layers])


def predict(model, x, mode="mc", num_samples=30, seed=None):
    """Uncertainty dict of one mode ("mc", "hybrid", "pfp") for images x."""
    if mode == "mc":
        return statistics.uncertainty(model.predict_codes(x, num_samples=num_samples, seed=seed))
    if mode == "hybrid":
        return statistics.uncertainty(hybrid_predict_codes(model, x, num_samples=num_samples, seed=seed))
    if mode == "pfp":
        return pfp_uncertainty(model, x, num_samples=num_samples, seed=seed)
    raise ValueError(f"`mode` must be one of {list(MODES)}; received mode={mode!r}")
