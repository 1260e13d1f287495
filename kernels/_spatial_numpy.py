"""NumPy twins of the spatial kernels in :mod:`seegaan_kernels._spatial_jit` (TFCE and cluster mass).

They follow the definitions literally: TFCE labels ``{value >= h}`` with :func:`scipy.ndimage.label` at
every threshold ``h = j * dh`` and adds ``extent ** E * h ** H * dh`` to each pixel. Cluster labels are
renumbered by their first pixel in raster order and masses summed with :func:`numpy.bincount` (raster
order), which makes labels and masses bit-identical to the Numba kernel. TFCE scores agree with the
Numba kernel to rounding (see :mod:`seegaan_kernels._spatial_jit`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def structure(conn8: bool) -> np.ndarray:
    """The 3 x 3 neighbourhood of :func:`scipy.ndimage.label`: 4-neighbour (cross) or 8-neighbour."""
    return np.ones((3, 3), dtype=bool) if conn8 else ndimage.generate_binary_structure(2, 1)


def _power(x, e):
    """``x ** e`` computed exactly as the Numba kernel computes it."""
    if e == 1.0:
        return x
    if e == 2.0:
        return x * x
    if e == 0.5:
        return np.sqrt(x)
    return x**e


def n_levels(values: np.ndarray, dh: float) -> int:
    """Number of thresholds ``j * dh`` (j = 1, 2, ...) at or below the largest finite value."""
    above = values[values >= dh]  # drops NaN and -inf
    if above.size == 0:
        return 0
    top = float(above.max())
    j = int(top / dh)
    while float(j + 1) * dh <= top:
        j += 1
    while j > 0 and float(j) * dh > top:
        j -= 1
    return j


def tfce_image(image: np.ndarray, dh: float, E: float, H: float, conn8: bool) -> np.ndarray:
    """TFCE scores of one 2-D image (float64), labelling every threshold."""
    score = np.zeros(image.shape, dtype=np.float64)
    struct = structure(conn8)
    for j in range(n_levels(image, dh), 0, -1):
        h = float(j) * dh
        mask = image >= h
        labels, _ = ndimage.label(mask, structure=struct)
        extent = np.bincount(labels.ravel()).astype(np.float64)
        weight = _power(h, H) * dh
        score[mask] += _power(extent, E)[labels[mask]] * weight
    return score


def tfce_numpy(stat: np.ndarray, dh: float, E: float, H: float, conn8: bool) -> np.ndarray:
    """TFCE scores of a (K, H, W) float64 map, step by step."""
    out = np.zeros(stat.shape, dtype=np.float64)
    for k in range(stat.shape[0]):
        out[k] = tfce_image(stat[k], dh, E, H, conn8)
    return out


def tfce_max_numpy(null, shape, dh, E, H, conn8) -> np.ndarray:
    """Per row of a (nb, K * H * W) batch, the largest TFCE score."""
    out = np.zeros(null.shape[0], dtype=np.float64)
    for b in range(null.shape[0]):
        scores = tfce_numpy(null[b].astype(np.float64).reshape(shape), dh, E, H, conn8)
        out[b] = scores.max(initial=0.0)
    return out


def _label_steps(stat: np.ndarray, threshold: float, conn8: bool) -> np.ndarray:
    """Labels 1..C of the components of ``{stat > threshold}``, step-major, raster order of first pixel."""
    labels = np.zeros(stat.shape, dtype=np.int64)
    struct = structure(conn8)
    offset = 0
    for k in range(stat.shape[0]):
        step_labels, n_comp = ndimage.label(stat[k] > threshold, structure=struct)
        if n_comp == 0:
            continue
        flat = step_labels.ravel()
        # renumber by first pixel in raster order (scipy does so today; do not rely on it)
        _, first = np.unique(flat, return_index=True)
        old = flat[np.sort(first)]
        old = old[old > 0]
        renumber = np.zeros(n_comp + 1, dtype=np.int64)
        renumber[old] = np.arange(1, n_comp + 1) + offset
        labels[k] = renumber[step_labels]
        offset += n_comp
    return labels


def cluster_masses_numpy(stat: np.ndarray, threshold: float, conn8: bool):
    """Labels (K, H, W) int64 and masses (C,) float64 of the clusters of ``{stat > threshold}``."""
    labels = _label_steps(stat, threshold, conn8)
    n_total = int(labels.max(initial=0))
    flat = labels.ravel()
    inside = flat > 0
    masses = np.bincount(flat[inside] - 1, weights=stat.ravel()[inside] - threshold, minlength=n_total)
    return labels, masses.astype(np.float64)


def cluster_max_numpy(null, shape, threshold, conn8) -> np.ndarray:
    """Per row of a (nb, K * H * W) batch, the largest cluster mass (0 without clusters)."""
    out = np.zeros(null.shape[0], dtype=np.float64)
    for b in range(null.shape[0]):
        _, masses = cluster_masses_numpy(null[b].astype(np.float64).reshape(shape), threshold, conn8)
        out[b] = masses.max(initial=0.0)
    return out
