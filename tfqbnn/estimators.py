"""Bias-corrected estimates of the predictive entropy and the mutual information from S samples.

From S softmax samples ``p_1 .. p_S`` of one input, the plug-in mutual information is
``H[mean_s p_s] - mean_s H[p_s]``.  Its second term is an unbiased estimate of the expected
entropy, but the first is not: the entropy is concave, so ``E[H(pbar_S)] < H(E p)`` and the
plug-in MI is biased low.  To second order the bias is ``-(1 / 2S) sum_c Var[p_c] / E[p_c]``,
which for small spreads is about ``-MI / S``; heavy-tailed samples (a class that most samples
give almost nothing and a few give a lot, as on out-of-distribution inputs) make it larger.

Estimators of ``H(E p)`` (the expected entropy is always the plain sample mean):

* ``"plugin"``    -- ``H(pbar)``: the textbook decomposition.
* ``"jackknife"`` -- the (delete-a-group) jackknife.  The S samples are cut into G contiguous
  groups of sizes ``m_g`` (``G = min(S, 32)`` by default: delete-one up to S = 32); with ``H_-g`` the entropy of the
  mean without group g, ``H_J = H + sum_g ((S - m_g) / S) (H - H_-g)``.  For equal groups this is
  the textbook ``G H - (G - 1) mean_g H_-g``; for unequal ones these weights (the delete-m_g
  jackknife of Busing, Meijer and van der Leeden, 1999) both cancel the ``1 / S`` term of the bias
  and leave a linear statistic unchanged (other weights that only cancel the bias add a
  zero-mean term of order ``1 / sqrt(S)``).  It needs the G group sums of the probabilities only,
  so it runs over samples in chunks (`Decomposition`) and on a microcontroller, with the same groups.
* ``"delta"``     -- the second-order (delta-method) correction
  ``H + (1 / 2S) sum_c s_c^2 / pbar_c`` with the unbiased sample variance ``s_c^2``: the
  Miller-Madow correction generalised from counts to probability vectors (for one-hot samples it
  is ``(K - 1) / (2 (S - 1))``, K the classes seen).  It needs the per-class sums of ``p`` and
  ``p^2`` only.

Both corrections remove the ``1 / S`` term of the bias and leave ``O(1 / S^2)``; their per-input
variance is higher than the plug-in's.  The corrected MI is not clipped at 0 (clipping would bias it
up); for small spreads both are close to ``(1 / 2) sum_c s_c^2 / pbar_c``, which is not negative.

`DEFAULT_ESTIMATOR` is the estimator closest to the S = 1000 truth at S = 30 on the truth test
(``scripts/truth_test.py``, ``results/truth_test``).
"""

from __future__ import annotations

import numpy as np

ESTIMATORS = ("plugin", "jackknife", "delta")
DEFAULT_ESTIMATOR = "jackknife"
# groups of the jackknife (as the C runtime's QBNN_JK_GROUPS): delete-one up to S = 32, and the group sums of a
# streamed prediction stay 32 x N x C whatever S
JACKKNIFE_GROUPS = 32
_EPS = 1e-12
# [S, N, C] float64 elements one vectorised step may hold (the leave-one-out means): 32 MiB
_CHUNK_ELEMENTS = 1 << 22


def check_estimator(estimator):
    """``estimator``, or `DEFAULT_ESTIMATOR` for None; raises ValueError naming the choices otherwise."""
    if estimator is None:
        return DEFAULT_ESTIMATOR
    if estimator not in ESTIMATORS:
        raise ValueError(f"`estimator` must be one of {list(ESTIMATORS)}; received estimator={estimator!r}")
    return estimator


def entropy(p, axis=-1):
    """Shannon entropy in nats along ``axis`` (``0 log 0 = 0``)."""
    p = np.asarray(p, dtype=np.float64)
    return -np.sum(p * np.log(np.clip(p, _EPS, 1.0)), axis=axis)


def group_bounds(num_samples, groups=None):
    """Start indices ``[G + 1]`` of the G contiguous groups of ``num_samples`` samples: group g holds samples
    ``floor(g S / G) .. floor((g + 1) S / G) - 1``; ``G = min(groups, S)`` (``groups=None``: S, delete-one)."""
    s = int(num_samples)
    g = s if groups is None else min(int(groups), s)
    if g < 1:
        raise ValueError(f"`groups` must be a positive integer or None; received groups={groups!r}")
    return (np.arange(g + 1, dtype=np.int64) * s) // g


def jackknife_from_group_sums(stat, sums, sizes):
    """The delete-a-group jackknife of ``stat(mean)`` from group sums.

    Args:
        stat: function of a mean ``[..., C]`` returning ``[...]`` (e.g. `entropy`).
        sums: ``[G, ..., C]`` sums of the samples of each group.
        sizes: ``[G]`` samples per group (positive).

    Returns:
        ``[...]``: ``T + sum_g ((S - m_g) / S) (T - T_-g)``, ``T = stat(total / S)``; with G = 1 the plain ``T``
        (there is nothing to leave out).
    """
    sums = np.asarray(sums, np.float64)
    sizes = np.asarray(sizes, np.float64)
    g, s = len(sizes), float(sizes.sum())
    total = sums.sum(axis=0)
    full = stat(total / s)
    if g < 2:
        return full
    shape = (g,) + (1,) * (sums.ndim - 1)
    loo = stat((total[None] - sums) / (s - sizes).reshape(shape))
    weights = ((s - sizes) / s).reshape(shape[:-1])
    return full + np.sum(weights * (full[None] - loo), axis=0)


def entropy_of_mean(probs, estimator="plugin", groups=JACKKNIFE_GROUPS):
    """Estimate of ``H(E p)`` from samples ``probs [S, N, C]``: ``[N]`` float64 (see the module docstring).

    ``groups``: the jackknife's number of groups, ``min(groups, S)`` (None: S, delete-one).
    """
    estimator = check_estimator(estimator)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 3:
        raise ValueError(f"`probs` must have shape (S, N, C); received shape {p.shape}")
    s, n, c = p.shape
    if estimator == "plugin" or s < 2:
        return entropy(p.mean(axis=0))
    if estimator == "delta":
        mean = p.mean(axis=0)
        var = p.var(axis=0, ddof=1)
        ratio = np.where(mean > 0, var / np.where(mean > 0, mean, 1.0), 0.0)
        return entropy(mean) + ratio.sum(axis=-1) / (2.0 * s)
    bounds = group_bounds(s, groups)
    sizes = np.diff(bounds)
    step = max(1, _CHUNK_ELEMENTS // (len(sizes) * c))  # images per vectorised step
    out = np.empty(n)
    for i in range(0, n, step):
        sums = np.add.reduceat(p[:, i : i + step], bounds[:-1], axis=0)
        out[i : i + step] = jackknife_from_group_sums(entropy, sums, sizes)
    return out


def decompose(probs, estimator="plugin", groups=JACKKNIFE_GROUPS):
    """The uncertainty split of samples ``probs [S, N, C]`` with the predictive entropy by ``estimator``.

    Returns a dict of float64 arrays: ``mean_probs [N, C]``, ``predictive_entropy``, ``aleatoric`` (the mean of the
    per-sample entropies: unbiased for every estimator), ``epistemic`` = predictive_entropy - aleatoric, each [N].
    The plug-in MI is clipped at 0 against rounding; a corrected MI is not (see the module docstring).
    """
    estimator = check_estimator(estimator)
    p = np.asarray(probs, dtype=np.float64)
    mean = p.mean(axis=0)
    aleatoric = entropy(p).mean(axis=0)
    if estimator == "plugin":
        total = entropy(mean)
        mi = np.maximum(total - aleatoric, 0.0)
    else:
        total = entropy_of_mean(p, estimator, groups)
        mi = total - aleatoric
    return {"mean_probs": mean, "predictive_entropy": total, "aleatoric": aleatoric, "epistemic": mi}


class Decomposition:
    """`decompose` over samples that arrive in chunks (memory bounded in S): ``add(first_sample, probs [k, N, C])``
    for chunks covering samples 0 .. S-1 in any order, then ``result()``. Holds the per-class sums (plug-in), the
    G group sums (jackknife, ``[G, N, C]``) or the sums of squares (delta), and the summed per-sample entropies."""

    def __init__(self, num_samples, estimator="plugin", groups=JACKKNIFE_GROUPS):
        self.estimator = check_estimator(estimator)
        self.num_samples = int(num_samples)
        self.bounds = group_bounds(self.num_samples, groups)
        self.total = self.square = self.groups = self.expected = None
        self.seen = 0

    def add(self, first_sample, probs):
        p = np.asarray(probs, np.float64)
        k, n, c = p.shape
        if self.total is None:
            self.total, self.expected = np.zeros((n, c)), np.zeros(n)
            if self.estimator == "delta":
                self.square = np.zeros((n, c))
            if self.estimator == "jackknife":
                self.groups = np.zeros((len(self.bounds) - 1, n, c))
        self.total += p.sum(axis=0)
        self.expected += entropy(p).sum(axis=0)
        if self.square is not None:
            self.square += np.einsum("snc,snc->nc", p, p)
        if self.groups is not None:
            g = np.searchsorted(self.bounds, np.arange(first_sample, first_sample + k), side="right") - 1
            np.add.at(self.groups, g, p)
        self.seen += k

    def result(self):
        if self.seen != self.num_samples:
            raise ValueError(f"Decomposition received {self.seen} samples; expected {self.num_samples}")
        s = self.num_samples
        mean = self.total / s
        aleatoric = self.expected / s
        if self.estimator == "plugin" or s < 2:
            total = entropy(mean)
            mi = np.maximum(total - aleatoric, 0.0) if self.estimator == "plugin" else total - aleatoric
        elif self.estimator == "delta":
            var = np.maximum(self.square - s * mean * mean, 0.0) / (s - 1)
            ratio = np.where(mean > 0, var / np.where(mean > 0, mean, 1.0), 0.0)
            total = entropy(mean) + ratio.sum(axis=-1) / (2.0 * s)
            mi = total - aleatoric
        else:
            sizes = np.diff(self.bounds)
            n, c = mean.shape
            step = max(1, _CHUNK_ELEMENTS // (len(sizes) * c))
            total = np.concatenate([jackknife_from_group_sums(entropy, self.groups[:, i : i + step], sizes)
                                    for i in range(0, n, step)])
            mi = total - aleatoric
        return {"mean_probs": mean, "predictive_entropy": total, "aleatoric": aleatoric, "epistemic": mi}
