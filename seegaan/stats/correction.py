"""Multiple-testing corrections that keep the shape of the p-value array.

Permutation-based family-wise control (Westfall–Young max-T) lives in :mod:`seegaan.sequences` because
it needs the null distribution; the methods here act on p-values alone (statsmodels, wrapped so any
shape goes in and the same shape comes out).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from seegaan._errors import SeegaanError

PValueMethod = Literal["none", "bonferroni", "holm", "fdr_bh", "fdr_by"]
P_METHODS = ("none", "bonferroni", "holm", "fdr_bh", "fdr_by")
ALL_CORRECTIONS = ("maxt", "maxd", "tfce", "cluster", *P_METHODS)


def correct_pvalues(p, method: PValueMethod = "fdr_bh", *, alpha: float = 0.05, mask=None):
    """Adjust p-values of any shape for multiple testing.

    Parameters
    ----------
    p : array-like
        p-values (any shape).
    method : {"none", "bonferroni", "holm", "fdr_bh", "fdr_by"}
    alpha : float
        Level used for the rejections.
    mask : bool array of the same shape, optional
        The family of tests; entries outside it get adjusted p = 1 and are never rejected.

    Returns
    -------
    p_adjusted : ndarray, same shape as ``p``
    reject : bool ndarray, same shape as ``p``
    """
    p = np.asarray(p, dtype=np.float64)
    if method not in P_METHODS:
        raise SeegaanError(f"unknown correction {method!r}; use one of {', '.join(ALL_CORRECTIONS)}")
    if not 0 < alpha < 1:
        raise SeegaanError(f"alpha must be between 0 and 1 (got {alpha})")
    if np.any((p < 0) | (p > 1)) or not np.isfinite(p).all():
        raise ValueError("p-values must be finite and within [0, 1]")
    mask = np.ones(p.shape, bool) if mask is None else np.asarray(mask, bool)
    p_adj = np.ones_like(p)
    flat = p[mask]
    if method == "none":
        adj = flat
    elif flat.size:
        from statsmodels.stats.multitest import multipletests

        adj = multipletests(flat, alpha=alpha, method=method)[1]
    else:
        adj = flat
    p_adj[mask] = adj
    return p_adj, (p_adj <= alpha) & mask


def feasibility_warning(method: str, n_tests: int, n_perm: int, alpha: float) -> str | None:
    """A message when B permutations make rejection impossible or nearly so under ``method``.

    The smallest attainable permutation p-value is 1 / (B + 1).
    """
    if n_perm <= 0 or n_tests <= 0:
        return None
    p_min = 1.0 / (n_perm + 1)
    if method in ("bonferroni", "holm") and p_min > alpha / n_tests:
        need = math.ceil(n_tests / alpha) - 1
        return (f"{method}: with {n_perm} permutations the smallest p-value is 1/{n_perm + 1} = {p_min:.3g}, above "
                f"alpha/m = {alpha / n_tests:.3g} for {n_tests} tests, so nothing can be rejected; use maxt or at "
                f"least {need} permutations")
    if method in ("fdr_bh", "fdr_by"):
        c = 1.0 if method == "fdr_bh" else sum(1.0 / i for i in range(1, n_tests + 1))
        frac = p_min * c / alpha
        if frac >= 1:
            return (f"{method}: with {n_perm} permutations no test can be rejected (smallest p {p_min:.3g}); "
                    "use more permutations or maxt")
        if frac > 0.01:
            return (f"{method}: with {n_perm} permutations (smallest p {p_min:.3g}) a rejection needs at least "
                    f"{100 * frac:.1f}% of the {n_tests} tests at that floor; use more permutations or maxt")
    return None
