"""Numba kernels for the spatial permutation statistics (TFCE and cluster mass).

Every public function here has a NumPy twin in :mod:`seegaan_kernels._spatial_numpy`; arguments are
assumed validated by :mod:`seegaan_kernels.spatial`. Each step ``k`` of a ``(K, H, W)`` map is a separate
2-D image, stored as ``H * W`` consecutive values (row-major); components never span steps.

TFCE (one image)
----------------
Level of a pixel: ``L = #{j >= 1 : j * dh <= value}`` (0 for NaN, -inf and values below ``dh``). The
pixels are bucketed by level (a counting sort) and added to a union-find forest from the highest level
down. After the pixels of level ``j`` are in, every current component (a root of the forest) earns
``size ** E * h_j ** H * dh``. That amount is stored once on the root (``pot[root] += term``), not on each
of its pixels; a pixel's score is the sum of ``pot`` along its path to the root. When root ``a`` is hung
under root ``b``, ``pot[a] -= pot[b]`` keeps the pixels of ``a`` from receiving what ``b`` earned before the
merge, and path halving folds a skipped parent's ``pot`` into the child, so sums along paths never change.
Union by size with path halving; the image is padded by a border that never joins the forest, so
neighbours need no bounds checks. Work: about ``O(n)`` for the forest plus ``sum over levels of
#components``, instead of ``sum over pixels of their level`` for labelling every level separately.

The NumPy twin labels every level and adds the terms pixel by pixel, so the two differ by rounding
(``(a - b) + b'`` instead of a running sum): a pixel's error is a few ulps of the largest score in its
component, so the maximum agrees to ~1e-16 relative, while a low pixel hung under a high blob can differ
by up to ~1e-10 relative (measured on 128 x 128 maps with 200 thresholds); the tests allow 1e-9.

Cluster mass (one image)
------------------------
Components of ``{value > threshold}`` by depth-first flood fill, seeded in raster order, so the labels are
numbered by their first pixel in raster order (as :func:`scipy.ndimage.label` numbers them). Masses are
then summed in a second raster pass, which is the order of :func:`numpy.bincount` in the twin: the masses
are bit-identical.
"""

from __future__ import annotations

import math

import numpy as np

from ._numba import jit, prange


@jit()
def _power(x, e):  # pragma: no cover - jitted
    """``x ** e`` with the common exponents done exactly as the NumPy twin does them."""
    if e == 1.0:
        return x
    if e == 2.0:
        return x * x
    if e == 0.5:
        return math.sqrt(x)
    return x**e


@jit()
def _level(value, dh):  # pragma: no cover - jitted
    """Number of thresholds ``j * dh`` (j = 1, 2, ...) at or below ``value``; 0 for NaN and -inf."""
    v = np.float64(value)
    if not (v >= dh):
        return 0
    j = np.int64(v / dh)
    while np.float64(j + 1) * dh <= v:
        j += 1
    while j > 0 and np.float64(j) * dh > v:
        j -= 1
    return j


@jit()
def _find(parent, pot, x):  # pragma: no cover - jitted
    """Root of ``x``, halving the path; a skipped parent's ``pot`` moves into the child."""
    while True:
        p = parent[x]
        if p == x:
            return x
        g = parent[p]
        if g != p:
            pot[x] += pot[p]
            parent[x] = g
        x = g


@jit()
def _neighbour_offsets(ncol_pad, conn8):  # pragma: no cover - jitted
    """Index offsets of the 4 (edge) or 8 (edge and corner) neighbours in a padded row-major image."""
    if conn8:
        w = ncol_pad
        return np.array([-w, -1, 1, w, -w - 1, -w + 1, w - 1, w + 1], dtype=np.int64)
    return np.array([-ncol_pad, -1, 1, ncol_pad], dtype=np.int64)


@jit()
def _tfce_scratch(nrow, ncol):  # pragma: no cover - jitted
    """Scratch arrays for :func:`_tfce_image`, sized for the image padded by one pixel on every side.

    Returns ``lev, parent, size, order, roots, rpos`` (int32) and ``pot`` (float64).
    """
    n_pad = (nrow + 2) * (ncol + 2)
    return (
        np.empty(n_pad, dtype=np.int32),
        np.empty(n_pad, dtype=np.int32),
        np.empty(n_pad, dtype=np.int32),
        np.empty(n_pad, dtype=np.int32),
        np.empty(n_pad, dtype=np.int32),
        np.empty(n_pad, dtype=np.int32),
        np.empty(n_pad, dtype=np.float64),
    )


@jit()
def _tfce_image(vals, nrow, ncol, dh, E, H, conn8, score, scratch):  # pragma: no cover - jitted
    """Write the TFCE scores of one flattened image ``vals`` (length nrow * ncol) into ``score``.

    The union-find works on the image padded by a border of pixels that never join the forest, so
    neighbours need no bounds checks. ``scratch`` comes from :func:`_tfce_scratch`.
    """
    lev, parent, size, order, roots, rpos, pot = scratch
    ncol_pad = ncol + 2
    parent[:] = -1
    lev[:] = 0
    lmax = 0
    for r in range(nrow):
        for c in range(ncol):
            lv = _level(vals[r * ncol + c], dh)
            lev[(r + 1) * ncol_pad + c + 1] = lv
            if lv > lmax:
                lmax = lv
    score[:] = 0.0
    if lmax == 0:
        return
    # counting sort, highest level first: level l occupies order[first[l] : first[l] + count[l]]
    count = np.zeros(lmax + 2, dtype=np.int64)
    for p in range(lev.shape[0]):
        count[lev[p]] += 1
    first = np.zeros(lmax + 2, dtype=np.int64)
    for lv in range(lmax - 1, 0, -1):
        first[lv] = first[lv + 1] + count[lv + 1]
    fill = first.copy()
    for p in range(lev.shape[0]):
        lv = lev[p]
        if lv > 0:
            order[fill[lv]] = p
            fill[lv] += 1

    offsets = _neighbour_offsets(ncol_pad, conn8)
    n_roots = 0
    for lv in range(lmax, 0, -1):
        for idx in range(first[lv], first[lv] + count[lv]):
            p = np.int64(order[idx])
            parent[p] = p
            size[p] = 1
            pot[p] = 0.0
            roots[n_roots] = p
            rpos[p] = n_roots
            n_roots += 1
            rp = p
            for t in range(offsets.shape[0]):
                q = p + offsets[t]
                if parent[q] < 0:
                    continue
                rq = _find(parent, pot, q)
                if rq == rp:
                    continue
                big = rp
                small = rq
                if size[rp] < size[rq]:
                    big = rq
                    small = rp
                # hang the smaller tree under the larger; its pixels keep their sums
                pot[small] -= pot[big]
                parent[small] = big
                size[big] += size[small]
                last = roots[n_roots - 1]
                roots[rpos[small]] = last
                rpos[last] = rpos[small]
                n_roots -= 1
                rp = big
        h = np.float64(lv) * dh
        weight = _power(h, H) * dh
        for t in range(n_roots):
            root = roots[t]
            pot[root] += _power(np.float64(size[root]), E) * weight

    for r in range(nrow):
        for c in range(ncol):
            p = (r + 1) * ncol_pad + c + 1
            if lev[p] == 0:
                continue
            total = 0.0
            x = np.int64(p)
            while parent[x] != x:
                total += pot[x]
                x = np.int64(parent[x])
            score[r * ncol + c] = total + pot[x]


@jit(parallel=True)
def tfce_numba(stat, dh, E, H, conn8):  # pragma: no cover - jitted
    """TFCE scores of a (K, nrow, ncol) float64 map (parallel over the K steps)."""
    n_steps, nrow, ncol = stat.shape
    n = nrow * ncol
    flat = stat.reshape(n_steps, n)
    out = np.zeros((n_steps, n), dtype=np.float64)
    for k in prange(n_steps):
        _tfce_image(flat[k], nrow, ncol, dh, E, H, conn8, out[k], _tfce_scratch(nrow, ncol))
    return out.reshape(n_steps, nrow, ncol)


@jit(parallel=True)
def tfce_max_numba(null, n_steps, nrow, ncol, dh, E, H, conn8):  # pragma: no cover - jitted
    """Per row of a (nb, K * nrow * ncol) batch, the largest TFCE score (parallel over rows)."""
    nb = null.shape[0]
    n = nrow * ncol
    maps = null.reshape(nb, n_steps, n)
    out = np.zeros(nb, dtype=np.float64)
    for b in prange(nb):
        scratch = _tfce_scratch(nrow, ncol)
        score = np.empty(n, dtype=np.float64)
        best = 0.0
        for k in range(n_steps):
            _tfce_image(maps[b, k], nrow, ncol, dh, E, H, conn8, score, scratch)
            for i in range(n):
                if score[i] > best:
                    best = score[i]
        out[b] = best
    return out


@jit()
def _label_image(vals, nrow, ncol, threshold, conn8, labels, stack, offset):  # pragma: no cover - jitted
    """Label the components of ``{vals > threshold}`` as ``offset + 1, offset + 2, ...`` in raster order
    of their first pixel (0 elsewhere); return how many there are."""
    n = nrow * ncol
    for i in range(n):
        labels[i] = 0
    n_comp = 0
    for i in range(n):
        if labels[i] != 0 or not (vals[i] > threshold):
            continue
        n_comp += 1
        lab = offset + n_comp
        labels[i] = lab
        stack[0] = i
        top = 1
        while top > 0:
            top -= 1
            p = stack[top]
            r = p // ncol
            c = p - r * ncol
            for dr in range(-1, 2):
                rr = r + dr
                if rr < 0 or rr >= nrow:
                    continue
                for dc in range(-1, 2):
                    if dr == 0 and dc == 0:
                        continue
                    if dr != 0 and dc != 0 and not conn8:
                        continue
                    cc = c + dc
                    if cc < 0 or cc >= ncol:
                        continue
                    q = rr * ncol + cc
                    if labels[q] == 0 and vals[q] > threshold:
                        labels[q] = lab
                        stack[top] = q
                        top += 1
    return n_comp


@jit()
def cluster_masses_numba(stat, threshold, conn8):  # pragma: no cover - jitted
    """Labels (K, nrow, ncol) int64 and masses (C,) float64 of the suprathreshold clusters of every step."""
    n_steps, nrow, ncol = stat.shape
    n = nrow * ncol
    flat = stat.reshape(n_steps, n)
    labels = np.zeros((n_steps, n), dtype=np.int64)
    stack = np.empty(n, dtype=np.int64)
    n_total = 0
    for k in range(n_steps):
        n_total += _label_image(flat[k], nrow, ncol, threshold, conn8, labels[k], stack, n_total)
    masses = np.zeros(n_total, dtype=np.float64)
    for k in range(n_steps):
        for i in range(n):
            lab = labels[k, i]
            if lab > 0:
                masses[lab - 1] += flat[k, i] - threshold
    return labels.reshape(n_steps, nrow, ncol), masses


@jit(parallel=True)
def cluster_max_numba(null, n_steps, nrow, ncol, threshold, conn8):  # pragma: no cover - jitted
    """Per row of a (nb, K * nrow * ncol) batch, the largest cluster mass (0 without clusters)."""
    nb = null.shape[0]
    n = nrow * ncol
    out = np.zeros(nb, dtype=np.float64)
    maps = null.reshape(nb, n_steps, n)
    for b in prange(nb):
        labels = np.empty(n, dtype=np.int64)
        stack = np.empty(n, dtype=np.int64)
        masses = np.empty(n + 1, dtype=np.float64)
        best = 0.0
        for k in range(n_steps):
            vals = maps[b, k]
            n_comp = _label_image(vals, nrow, ncol, threshold, conn8, labels, stack, 0)
            for c in range(n_comp):
                masses[c] = 0.0
            for i in range(n):
                lab = labels[i]
                if lab > 0:
                    masses[lab - 1] += np.float64(vals[i]) - threshold
            for c in range(n_comp):
                if masses[c] > best:
                    best = masses[c]
        out[b] = best
    return out
