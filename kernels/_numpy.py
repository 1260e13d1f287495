"""NumPy twins of the Numba kernels in :mod:`seegaan_kernels._jit`.

They return the same results bit for bit. The float64 sums loop over the permutations ``b`` in
ascending order and are vectorised over pixels, so each pixel's running sum sees exactly the additions
of the Numba loop, in the same order. (``null.sum(axis=0)`` would not do: it sums a batch first and adds
that partial sum afterwards, so the bits would depend on how permutations were split into batches.)
"""

from __future__ import annotations

import numpy as np


def statistic(values: np.ndarray, alternative: int) -> np.ndarray:
    """Return the pixel statistic: ``|x|`` (0, two-sided), ``x`` (1, greater) or ``-x`` (2, less)."""
    if alternative == 0:
        return np.abs(values)
    if alternative == 1:
        return values
    return np.negative(values)


def exceedances_numpy(null, observed, alternative, counts, total, total_sq):
    """Add per-pixel exceedance counts and float64 sums of one null batch, in place."""
    threshold = statistic(observed, alternative)
    stat_row = np.empty(null.shape[1], dtype=null.dtype)
    exceed = np.empty(null.shape[1], dtype=bool)
    row64 = np.empty(null.shape[1], dtype=np.float64)
    for b in range(null.shape[0]):
        row = null[b]
        if alternative == 0:
            np.abs(row, out=stat_row)
        elif alternative == 1:
            stat_row[...] = row
        else:
            np.negative(row, out=stat_row)
        np.greater_equal(stat_row, threshold, out=exceed)
        np.add(counts, exceed, out=counts)
        row64[...] = row
        np.add(total, row64, out=total)
        np.multiply(row64, row64, out=row64)
        np.add(total_sq, row64, out=total_sq)


def maxima_numpy(null, scale, alternative):
    """Per-permutation maximum of the scaled statistic over all pixels (``-inf`` if none counts)."""
    keep = scale != 0.0
    kept_scale = scale[keep]
    out = np.full(null.shape[0], -np.inf)
    if kept_scale.size == 0:
        return out
    for b in range(null.shape[0]):
        scaled = statistic(null[b, keep].astype(np.float64), alternative) * kept_scale
        # fmax ignores NaN, like the Numba loop's `v > best`
        out[b] = np.fmax.reduce(scaled, initial=-np.inf)
    return out
