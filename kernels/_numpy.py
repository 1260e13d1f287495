"""NumPy twins of the Numba kernels in :mod:`seegaan_kernels._jit`.

They return the same results bit for bit. The float64 sums loop over the permutations ``b`` in
ascending order and are vectorised over pixels, so each pixel's running sum sees exactly the additions
of the Numba loop, in the same order. (``null.sum(axis=0)`` would not do: it sums a batch first and adds
that partial sum afterwards, so the bits would depend on how permutations were split into batches.)
Pixels are processed in blocks of ``_BLOCK`` so the temporaries stay in the CPU cache.
"""

from __future__ import annotations

import numpy as np

_BLOCK = 65536


def statistic(values: np.ndarray, alternative: int) -> np.ndarray:
    """Return the pixel statistic: ``|x|`` (0, two-sided), ``x`` (1, greater) or ``-x`` (2, less)."""
    if alternative == 0:
        return np.abs(values)
    if alternative == 1:
        return values
    return np.negative(values)


def _blocks(n_pix: int):
    for m0 in range(0, n_pix, _BLOCK):
        yield m0, min(m0 + _BLOCK, n_pix)


def exceedances_numpy(null, observed, alternative, counts, total, total_sq):
    """Add per-pixel exceedance counts and float64 sums of one null batch, in place."""
    threshold = statistic(observed, alternative)
    size = min(_BLOCK, null.shape[1])
    stat_buf = np.empty(size, dtype=null.dtype)
    exceed_buf = np.empty(size, dtype=bool)
    row64_buf = np.empty(size, dtype=np.float64)
    for m0, m1 in _blocks(null.shape[1]):
        n = m1 - m0
        thr, cnt, tot, tsq = threshold[m0:m1], counts[m0:m1], total[m0:m1], total_sq[m0:m1]
        stat_row, exceed, row64 = stat_buf[:n], exceed_buf[:n], row64_buf[:n]
        for b in range(null.shape[0]):
            row = null[b, m0:m1]
            if alternative == 0:
                np.abs(row, out=stat_row)
            elif alternative == 1:
                stat_row[...] = row
            else:
                np.negative(row, out=stat_row)
            np.greater_equal(stat_row, thr, out=exceed)
            np.add(cnt, exceed, out=cnt)
            row64[...] = row
            with np.errstate(invalid="ignore"):  # inf + -inf is NaN, as in the Numba kernel: no warning
                np.add(tot, row64, out=tot)
                np.multiply(row64, row64, out=row64)
                np.add(tsq, row64, out=tsq)


def maxima_numpy(null, scale, alternative):
    """Per-permutation maximum of the scaled statistic over all pixels (``-inf`` if none counts)."""
    out = np.full(null.shape[0], -np.inf)
    buf = np.empty(min(_BLOCK, null.shape[1]), dtype=np.float64)
    for m0, m1 in _blocks(null.shape[1]):
        sc = scale[m0:m1]
        skip = sc == 0.0
        if skip.all():
            continue
        any_skip = skip.any()
        values = buf[: m1 - m0]
        for b in range(null.shape[0]):
            values[...] = null[b, m0:m1]
            if alternative == 0:
                np.abs(values, out=values)
            elif alternative == 2:
                np.negative(values, out=values)
            np.multiply(values, sc, out=values)
            if any_skip:
                np.copyto(values, -np.inf, where=skip)
            # fmax ignores NaN, like the Numba loop's `v > best`
            out[b] = np.fmax(out[b], np.fmax.reduce(values))
    return out
