"""Numba kernels (compiled on first use, cached on disk).

Every function here has a NumPy twin in :mod:`seegaan_kernels._numpy` that returns identical results;
the tests run both. Arguments are assumed validated by :mod:`seegaan_kernels._api`.

Memory layout: ``null`` is a C-contiguous (nb, M) batch. Work is split over blocks of ``_BLOCK``
consecutive pixels; a block's running state stays in the L1/L2 cache while the null rows stream through
it. Inside a block the rows are taken four at a time, so the state is loaded and stored once per four
permutations. The float64 sums of every pixel are still updated one ``b`` at a time in ascending order
(``((t + x0) + x1) + ...``), exactly like the NumPy twin, so the bits do not depend on the number of
threads or on how the permutations are split into batches.

The pixel statistic is ``|x|`` (two-sided) or ``sign * x`` with ``sign`` = +1 (greater) or -1 (less);
multiplying by +-1 is exact, so it equals the twin's ``x`` and ``-x``.
"""

from __future__ import annotations

import numpy as np

from ._numba import jit, prange

# pixels per parallel work item
_BLOCK = 4096
# independent running maxima per row in the maxima kernel (a vector-friendly "vertical" max)
_LANES = 32


@jit()
def _stat32(x, two_sided, sign):  # pragma: no cover - jitted
    return abs(x) if two_sided else x * sign


@jit()
def _exceed_block(null, observed, two_sided, sign, counts, total, total_sq, m0, m1):  # pragma: no cover
    """Update counts and sums of pixels ``m0:m1`` with every row of ``null``."""
    nb = null.shape[0]
    n = m1 - m0
    obs = observed[m0:m1]
    cnt = counts[m0:m1]
    tot = total[m0:m1]
    tsq = total_sq[m0:m1]
    sign32 = np.float32(sign)
    b = 0
    while b + 4 <= nb:
        r0 = null[b, m0:m1]
        r1 = null[b + 1, m0:m1]
        r2 = null[b + 2, m0:m1]
        r3 = null[b + 3, m0:m1]
        for i in range(n):
            th = _stat32(obs[i], two_sided, sign32)
            x0 = r0[i]
            x1 = r1[i]
            x2 = r2[i]
            x3 = r3[i]
            cnt[i] += (
                np.int64(_stat32(x0, two_sided, sign32) >= th)
                + np.int64(_stat32(x1, two_sided, sign32) >= th)
                + np.int64(_stat32(x2, two_sided, sign32) >= th)
                + np.int64(_stat32(x3, two_sided, sign32) >= th)
            )
            d0 = np.float64(x0)
            d1 = np.float64(x1)
            d2 = np.float64(x2)
            d3 = np.float64(x3)
            tot[i] = (((tot[i] + d0) + d1) + d2) + d3
            tsq[i] = (((tsq[i] + d0 * d0) + d1 * d1) + d2 * d2) + d3 * d3
        b += 4
    while b < nb:
        r0 = null[b, m0:m1]
        for i in range(n):
            x0 = r0[i]
            cnt[i] += np.int64(_stat32(x0, two_sided, sign32) >= _stat32(obs[i], two_sided, sign32))
            d0 = np.float64(x0)
            tot[i] += d0
            tsq[i] += d0 * d0
        b += 1


@jit(parallel=True)
def exceedances_numba(null, observed, alternative, counts, total, total_sq):  # pragma: no cover - jitted
    """Add per-pixel exceedance counts and float64 sums of one null batch, in place (parallel over pixels)."""
    n_pix = null.shape[1]
    two_sided = alternative == 0
    sign = -1.0 if alternative == 2 else 1.0
    n_blocks = (n_pix + _BLOCK - 1) // _BLOCK
    for blk in prange(n_blocks):
        m0 = blk * _BLOCK
        m1 = min(m0 + _BLOCK, n_pix)
        _exceed_block(null, observed, two_sided, sign, counts, total, total_sq, m0, m1)


@jit()
def _stat64(x, two_sided, sign):  # pragma: no cover - jitted
    d = np.float64(x)
    return abs(d) if two_sided else d * sign


@jit()
def _maxima_block(null, scale, two_sided, sign, m0, m1, out):  # pragma: no cover - jitted
    """Write ``out[b] = max over m0:m1 of stat(null[b, m]) * scale[m]`` (scale == 0 and NaN skipped)."""
    nb = null.shape[0]
    n = m1 - m0
    sc = scale[m0:m1]
    n_full = (n // _LANES) * _LANES
    lane0 = np.empty(_LANES, dtype=np.float64)
    lane1 = np.empty(_LANES, dtype=np.float64)
    b = 0
    while b < nb:
        # two rows at a time (the second one repeats the first when nb is odd)
        b1 = b + 1 if b + 1 < nb else b
        r0 = null[b, m0:m1]
        r1 = null[b1, m0:m1]
        lane0[:] = -np.inf
        lane1[:] = -np.inf
        for k in range(0, n_full, _LANES):
            for j in range(_LANES):
                s = sc[k + j]
                keep = s != 0.0
                v0 = _stat64(r0[k + j], two_sided, sign) * s
                v1 = _stat64(r1[k + j], two_sided, sign) * s
                c0 = lane0[j]
                c1 = lane1[j]
                lane0[j] = v0 if (keep and v0 > c0) else c0
                lane1[j] = v1 if (keep and v1 > c1) else c1
        best0 = -np.inf
        best1 = -np.inf
        for j in range(_LANES):
            if lane0[j] > best0:
                best0 = lane0[j]
            if lane1[j] > best1:
                best1 = lane1[j]
        for i in range(n_full, n):
            s = sc[i]
            v0 = _stat64(r0[i], two_sided, sign) * s
            v1 = _stat64(r1[i], two_sided, sign) * s
            if s != 0.0 and v0 > best0:
                best0 = v0
            if s != 0.0 and v1 > best1:
                best1 = v1
        out[b] = best0
        out[b1] = best1
        b += 2


@jit(parallel=True)
def maxima_numba(null, scale, alternative):  # pragma: no cover - jitted
    """Per-permutation maximum of the scaled statistic over all pixels (parallel over pixel blocks)."""
    nb, n_pix = null.shape
    two_sided = alternative == 0
    sign = -1.0 if alternative == 2 else 1.0
    n_blocks = max(1, (n_pix + _BLOCK - 1) // _BLOCK)
    partial = np.empty((n_blocks, nb), dtype=np.float64)
    for blk in prange(n_blocks):
        m0 = blk * _BLOCK
        m1 = min(m0 + _BLOCK, n_pix)
        _maxima_block(null, scale, two_sided, sign, m0, m1, partial[blk])
    out = np.full(nb, -np.inf)
    # max is exact and order-free, so the block split cannot change the result
    for blk in range(n_blocks):
        for b in range(nb):
            if partial[blk, b] > out[b]:
                out[b] = partial[blk, b]
    return out
