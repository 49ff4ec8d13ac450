"""SPEC 7's uncertainty of S Monte-Carlo samples (plug-in predictive and expected entropy, MI) and SPEC 7.1's
jackknife correction of the predictive entropy, in float32 as the C runtime computes it (`micro/qbnn_modes.c`), for
every mode: counts (MC, HYBRID) and float probabilities (PFP)."""

from __future__ import annotations

import numpy as np

from tflite_export.intmath.float32 import F32, FLT_MIN, qlog


def uncertainty(codes):
    """SPEC.md section 7 from [S, N, K] softmax codes: dict of mean_prob, prediction, entropies, MI, and section
    7.1's jackknife correction with the corrected predictive entropy and MI."""
    p = np.asarray(codes, np.int64) + 128  # P_s[c]
    a = p.sum(axis=0)  # A[c], [N, K]
    mean = a / a.sum(axis=-1, keepdims=True)
    ps = p / p.sum(axis=-1, keepdims=True)

    def ent(q):
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.sum(np.where(q > 0, q * np.log(q), 0.0), axis=-1)

    pred_ent = ent(mean)
    exp_ent = ent(ps).mean(axis=0)
    corr = jk_correction_counts(jk_group_counts(codes), len(p))  # SPEC 7.1: float32, bit-exact in C
    return {
        "sums": a,
        "mean_prob": mean,
        "prediction": np.argmax(a, axis=-1),
        "predictive_entropy": pred_ent,
        "expected_entropy": exp_ent,
        "mutual_information": pred_ent - exp_ent,
        "entropy_correction": corr,
        "predictive_entropy_corrected": pred_ent + corr,
        "mutual_information_corrected": pred_ent - exp_ent + corr,
    }


def entropy_f32(p):
    """-sum_c p_c log p_c sequentially over c (terms with p_c < FLT_MIN are 0)."""
    h = np.zeros(p.shape[:-1], np.float32)
    for c in range(p.shape[-1]):
        pc = p[..., c]
        term = np.where(pc >= FLT_MIN, pc * qlog(np.maximum(pc, FLT_MIN)), F32(0.0))
        h = h - term
    return h.astype(np.float32)


# ---- the jackknife correction of the predictive entropy (SPEC 7.1), float32 as qbnn_modes.c -----------------

JK_GROUPS = 32  # QBNN_JK_GROUPS: the C runtime leaves out min(S, 32) contiguous groups of samples


def jk_bounds(num_samples):
    """Start indices [G + 1] of the jackknife groups of S samples: G = min(S, JK_GROUPS), group g holds samples
    floor(g S / G) .. floor((g + 1) S / G) - 1 (`tfqbnn.estimators.group_bounds`)."""
    s = int(num_samples)
    g = min(s, JK_GROUPS)
    return (np.arange(g + 1, dtype=np.int64) * s) // g


def jk_group_of(sample, num_samples):
    """The group of sample s: ((s + 1) G - 1) // S (the C's formula; equal to the bounds' interval)."""
    g = min(int(num_samples), JK_GROUPS)
    return ((int(sample) + 1) * g - 1) // int(num_samples)


def entropy_counts_f32(counts):
    """-sum_c p_c qlog(p_c), p_c = float(counts_c) / float(sum counts), sequential over c, zero counts skipped
    (float32; qbnn_modes.c's entropy_counts)."""
    counts = np.asarray(counts, np.int64)
    total = counts.sum(-1).astype(np.float32)
    h = np.zeros(counts.shape[:-1], np.float32)
    for c in range(counts.shape[-1]):
        p = (counts[..., c].astype(np.float32) / np.where(total > 0, total, F32(1.0))).astype(np.float32)
        term = np.where(counts[..., c] > 0, p * qlog(np.maximum(p, FLT_MIN)), F32(0.0)).astype(np.float32)
        h = (h - term).astype(np.float32)
    return h


def _jk_weights(num_samples):
    """float32 weight (S - m_g) / S of every group (`tfqbnn.estimators`)."""
    sizes = np.diff(jk_bounds(num_samples))
    return [F32(F32(num_samples - m) / F32(num_samples)) for m in sizes]


def jk_correction_counts(group_counts, num_samples):
    """The jackknife correction of the predictive entropy from per-group count sums ``[G, ..., C]`` (int) of S
    samples' P_s[c] (MC and HYBRID): ``sum_g w_g (H - H_-g)`` in float32, g in order, H and H_-g by
    `entropy_counts_f32` of A[c] and A[c] - group_counts[g][c]; 0 for S = 1. The corrected predictive entropy and
    MI are the plug-in values plus it."""
    gc = np.asarray(group_counts, np.int64)
    a = gc.sum(axis=0)
    corr = np.zeros(a.shape[:-1], np.float32)
    if len(gc) < 2:
        return corr
    h = entropy_counts_f32(a)
    for g, w in enumerate(_jk_weights(num_samples)):
        corr = (corr + w * (h - entropy_counts_f32(a - gc[g]))).astype(np.float32)
    return corr


def jk_group_counts(codes):
    """[G, N, K] int64 group sums of P_s[c] = q_s[c] + 128 of softmax codes [S, N, K]."""
    p = np.asarray(codes, np.int64) + 128
    return np.add.reduceat(p, jk_bounds(len(p))[:-1], axis=0)


def jk_correction_probs(group_sums, prob_sum, entropy, num_samples):
    """PFP's jackknife correction: group sums ``[G, ..., C]`` and the total ``[..., C]`` of the float32 sample
    probabilities (each summed in sample order), ``entropy`` = the plug-in predictive entropy; leave-out means
    ``(pm_c - gs_gc) / float(S - m_g)``, entropies by `_entropy_f32`."""
    gs = np.asarray(group_sums, np.float32)
    corr = np.zeros(np.shape(entropy), np.float32)
    if len(gs) < 2:
        return corr
    sizes = np.diff(jk_bounds(num_samples))
    for g, w in enumerate(_jk_weights(num_samples)):
        loo = ((prob_sum - gs[g]) / F32(num_samples - sizes[g])).astype(np.float32)
        corr = (corr + w * (entropy - entropy_f32(loo))).astype(np.float32)
    return corr
