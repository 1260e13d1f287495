"""Spatial permutation statistics on 2-D maps: TFCE and cluster mass (arrays in, arrays out).

A statistic map has shape ``(K, H, W)``: ``K`` steps, each a separate ``H x W`` image; clusters never
span steps. Values must already be signed so that larger means more evidence: pass ``|z|``, ``z`` or
``-z``. Pixels are neighbours across an edge (``connectivity=4``) or also across a corner
(``connectivity=8``). NaN and ``-inf`` mark pixels that cannot be tested: they never belong to a cluster
and score 0; ``+inf`` is refused.

Each function has a Numba kernel and a NumPy twin (``backend="numba" | "numpy"``); ``"numba"`` falls
back to NumPy when Numba is missing or ``SEEGAAN_DISABLE_NUMBA=1``. Cluster labels and masses are
bit-identical between backends; TFCE scores agree to rounding: the Numba kernel stores each threshold's
contribution once per component instead of once per pixel, so a score carries an error of a few ulps of
the largest score in its component (the maxima agree to ~1e-16 relative, low pixels next to a high blob
to ~1e-10 relative).

Functions
---------
tfce
    Threshold-free cluster enhancement of a map (Smith & Nichols 2009).
tfce_max
    Largest TFCE score of each map in a batch of null maps (the permutation distribution).
cluster_masses
    Labels and masses of the suprathreshold clusters of a map.
cluster_max
    Largest cluster mass of each map in a batch of null maps.
tfce_step
    The threshold step ``dh`` to use for one permutation test.

Permutation test
----------------
Compute ``dh = tfce_step(observed)`` once, then call ``tfce(observed, dh=dh)`` and
``tfce_max(null_batch, dh=dh, ...)`` for every batch with the *same* ``dh``, ``H``, ``E`` and
connectivity: a step derived from each null map's own maximum would give the maps different
discretisations. The family-wise p-value of a pixel is ``(#{b : tfce_max[b] >= tfce[pixel]} + 1) / (B + 1)``
(``seegaan_kernels.maxt_counts`` counts the exceedances). Cluster mass works the same way with a fixed
``threshold``: a cluster's p-value compares its mass with the null maxima of :func:`cluster_max`.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from . import _api, _spatial_numpy

Backend = Literal["numba", "numpy"]

#: the most thresholds TFCE may use on one map (``max(stat) / dh``); guards against a tiny ``dh``
MAX_LEVELS = 100_000


class TooManyLevelsError(ValueError):
    """A TFCE threshold step ``dh`` that would need more than :data:`MAX_LEVELS` thresholds."""


def _resolve_backend(backend):
    """Return the spatial Numba kernel module, or None for the NumPy twins."""
    return _api._resolve_backend(backend, "_spatial_jit")


def _check_connectivity(connectivity) -> bool:
    """Return True for 8-neighbour, False for 4-neighbour connectivity."""
    if isinstance(connectivity, (bool, np.bool_)) or connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    return connectivity == 8


def _check_real(name, value, *, positive=False, nonnegative=False) -> float:
    """Return ``value`` as a finite float (optionally > 0 or >= 0), else raise ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if nonnegative and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _check_map(stat) -> np.ndarray:
    """Return ``stat`` as a C-contiguous float64 (K, H, W) array."""
    if not isinstance(stat, np.ndarray):
        raise ValueError(f"stat must be a numpy.ndarray, got {type(stat).__name__}")
    if stat.ndim != 3:
        raise ValueError(f"stat must be 3-D (steps, height, width), got shape {stat.shape}")
    if stat.dtype not in (np.float32, np.float64):
        raise ValueError(f"stat must have dtype float64 or float32, got {stat.dtype}")
    if np.isposinf(stat).any():
        raise ValueError("stat contains +inf; mark untestable pixels with NaN or -inf")
    return np.ascontiguousarray(stat, dtype=np.float64)


def _check_batch(null_batch, shape) -> tuple[int, int, int]:
    """Validate a (nb, K * H * W) null batch against ``shape``; return ``shape`` as ints."""
    if not isinstance(null_batch, np.ndarray):
        raise ValueError(f"null_batch must be a numpy.ndarray, got {type(null_batch).__name__}")
    if null_batch.dtype not in (np.float32, np.float64):
        raise ValueError(f"null_batch must have dtype float32 or float64, got {null_batch.dtype}")
    if null_batch.ndim != 2:
        raise ValueError(f"null_batch must be 2-D (maps, steps * height * width), got shape {null_batch.shape}")
    if not null_batch.flags.c_contiguous:
        raise ValueError("null_batch must be C-contiguous (use numpy.ascontiguousarray)")
    try:
        dims = tuple(int(d) for d in shape)
        valid = len(dims) == 3 and all(d >= 1 and d == s for d, s in zip(dims, shape))
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"shape must be three positive integers (steps, height, width), got {shape!r}")
    if dims[0] * dims[1] * dims[2] != null_batch.shape[1]:
        raise ValueError(f"shape {dims} holds {math.prod(dims)} values but null_batch rows have {null_batch.shape[1]}")
    if np.isposinf(null_batch).any():
        raise ValueError("null_batch contains +inf; mark untestable pixels with NaN or -inf")
    return dims


def _check_image_size(height: int, width: int) -> None:
    """The TFCE kernel indexes a padded image with int32: refuse images too large for that."""
    if (height + 2) * (width + 2) >= 2**31:
        raise ValueError(f"images of {height} x {width} pixels are too large for TFCE (at most 2**31 pixels)")


def _check_levels(values: np.ndarray, dh: float) -> None:
    """Refuse a ``dh`` that would need more than :data:`MAX_LEVELS` thresholds."""
    if values.size == 0:
        return
    top = np.fmax.reduce(values, axis=None, initial=-np.inf)
    if top / dh > MAX_LEVELS:
        raise TooManyLevelsError(
            f"dh={dh:g} needs {top / dh:.3g} thresholds to reach the largest value {top:g}; "
            f"use dh >= max / {MAX_LEVELS} (typically max(observed) / 50)"
        )


def tfce_step(stat, *, n_steps: int = 50) -> float:
    """Return the TFCE threshold step ``dh = max(stat) / n_steps`` for one permutation test.

    Compute it once, from the observed map, and pass it to :func:`tfce` and :func:`tfce_max` for the
    observed and every null map.

    Parameters
    ----------
    stat : ndarray of float, shape (K, H, W)
        Observed statistic map (larger = more evidence).
    n_steps : int
        Number of thresholds between 0 and ``max(stat)``.

    Returns
    -------
    float
        ``max(stat) / n_steps``, or 1.0 when no value is positive (then every TFCE score is 0 anyway).
    """
    stat = _check_map(stat)
    if isinstance(n_steps, (bool, np.bool_)) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    top = float(np.fmax.reduce(stat, axis=None, initial=-np.inf)) if stat.size else -np.inf
    return top / int(n_steps) if top > 0 else 1.0


def tfce(
    stat: np.ndarray,
    *,
    H: float = 2.0,
    E: float = 0.5,
    dh: float | None = None,
    n_steps: int = 50,
    connectivity: Literal[4, 8] = 4,
    backend: Backend = "numba",
) -> np.ndarray:
    """Threshold-free cluster enhancement of every step of a map (Smith & Nichols 2009).

    ``tfce[k, i, j] = sum over h in {dh, 2 dh, ...}, h <= stat[k, i, j] of extent(h) ** E * h ** H * dh``,
    where ``extent(h)`` is the pixel count of the connected component of ``{stat[k] >= h}`` that holds the
    pixel. Pixels with ``stat < dh`` (in particular ``stat <= 0``, NaN, ``-inf``) score 0.

    Parameters
    ----------
    stat : ndarray of float64 (or float32), shape (K, H, W)
        Signed statistic map: larger = more evidence. For a two-sided test pass ``|z|``; note that
        adjacent positive and negative blobs then merge into one component. The common alternative is to
        enhance ``z`` and ``-z`` separately and use the larger of the two null maxima.
    H, E : float
        Height and extent exponents (``H=2, E=0.5`` is the usual choice for 2-D maps; ``E=1`` also
        appears in the literature). Both must be >= 0.
    dh : float, optional
        Threshold step. **For a permutation test pass the same explicit ``dh`` for the observed and every
        null map** (e.g. ``tfce_step(observed)``); when None it is ``max(stat) / n_steps`` of this map.
    n_steps : int
        Used only when ``dh`` is None.
    connectivity : {4, 8}
        Edge neighbours only, or edge and corner neighbours.
    backend : {"numba", "numpy"}
        ``"numba"`` falls back to NumPy when Numba is unavailable or disabled.

    Returns
    -------
    ndarray of float64, shape (K, H, W)
    """
    stat = _check_map(stat)
    conn8 = _check_connectivity(connectivity)
    H = _check_real("H", H, nonnegative=True)
    E = _check_real("E", E, nonnegative=True)
    dh = tfce_step(stat, n_steps=n_steps) if dh is None else _check_real("dh", dh, positive=True)
    _check_levels(stat, dh)
    _check_image_size(stat.shape[1], stat.shape[2])
    if stat.size == 0:
        return np.zeros(stat.shape, dtype=np.float64)
    jit_module = _resolve_backend(backend)
    if jit_module is None:
        return _spatial_numpy.tfce_numpy(stat, dh, E, H, conn8)
    return jit_module.tfce_numba(stat, dh, E, H, conn8)


def tfce_max(
    null_batch: np.ndarray,
    *,
    shape: tuple[int, int, int],
    dh: float,
    H: float = 2.0,
    E: float = 0.5,
    connectivity: Literal[4, 8] = 4,
    backend: Backend = "numba",
) -> np.ndarray:
    """Return the largest TFCE score of every null map of a batch (over all steps and pixels).

    Bit-identical to ``tfce(null_batch[b].reshape(shape), dh=dh, ...).max()`` for every ``b`` on the same
    backend (float32 rows are widened to float64 exactly as :func:`tfce` widens a float32 map), but parallel
    over maps and without storing the scores. So an observed map given to :func:`tfce` with the same dtype
    as the null rows ties with itself when it appears among them.

    Parameters
    ----------
    null_batch : ndarray of float32 or float64, shape (nb, K * H * W), C-contiguous
        Null statistic maps, standardised and signed by the caller exactly like the observed map.
    shape : tuple of int
        ``(K, H, W)`` of one map.
    dh : float
        Threshold step; the same as for the observed map (see :func:`tfce_step`).
    H, E, connectivity, backend
        As in :func:`tfce`.

    Returns
    -------
    ndarray of float64, shape (nb,)
        0 for a map with no value ``>= dh``.
    """
    dims = _check_batch(null_batch, shape)
    conn8 = _check_connectivity(connectivity)
    H = _check_real("H", H, nonnegative=True)
    E = _check_real("E", E, nonnegative=True)
    dh = _check_real("dh", dh, positive=True)
    _check_levels(null_batch, dh)
    _check_image_size(dims[1], dims[2])
    if null_batch.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    jit_module = _resolve_backend(backend)
    if jit_module is None:
        return _spatial_numpy.tfce_max_numpy(null_batch, dims, dh, E, H, conn8)
    return jit_module.tfce_max_numba(null_batch, dims[0], dims[1], dims[2], dh, E, H, conn8)


def cluster_masses(
    stat: np.ndarray,
    threshold: float,
    *,
    connectivity: Literal[4, 8] = 4,
    backend: Backend = "numba",
) -> tuple[np.ndarray, np.ndarray]:
    """Label the clusters of ``{stat > threshold}`` of every step and return their masses.

    Parameters
    ----------
    stat : ndarray of float64 (or float32), shape (K, H, W)
        Signed statistic map (larger = more evidence).
    threshold : float
        Cluster-forming threshold (strict: a pixel belongs to a cluster when ``stat > threshold``).
    connectivity : {4, 8}
        Edge neighbours only, or edge and corner neighbours.
    backend : {"numba", "numpy"}
        ``"numba"`` falls back to NumPy when Numba is unavailable or disabled.

    Returns
    -------
    labels : ndarray of int64, shape (K, H, W)
        0 outside clusters; clusters numbered ``1..C`` step by step, within a step in raster order of
        their first pixel. A cluster never spans steps.
    masses : ndarray of float64, shape (C,)
        ``masses[c - 1] = sum of (stat - threshold) over the pixels labelled c``, summed in raster order
        (identical bits on both backends).
    """
    stat = _check_map(stat)
    conn8 = _check_connectivity(connectivity)
    threshold = _check_real("threshold", threshold)
    jit_module = _resolve_backend(backend)
    if jit_module is None:
        return _spatial_numpy.cluster_masses_numpy(stat, threshold, conn8)
    return jit_module.cluster_masses_numba(stat, threshold, conn8)


def cluster_max(
    null_batch: np.ndarray,
    *,
    shape: tuple[int, int, int],
    threshold: float,
    connectivity: Literal[4, 8] = 4,
    backend: Backend = "numba",
) -> np.ndarray:
    """Return the largest cluster mass of every null map of a batch (0 when a map has no cluster).

    Parameters
    ----------
    null_batch : ndarray of float32 or float64, shape (nb, K * H * W), C-contiguous
        Null statistic maps, standardised and signed by the caller exactly like the observed map.
    shape : tuple of int
        ``(K, H, W)`` of one map.
    threshold, connectivity, backend
        As in :func:`cluster_masses`; use the observed map's threshold.

    Returns
    -------
    ndarray of float64, shape (nb,)
        Bit-identical between backends.
    """
    dims = _check_batch(null_batch, shape)
    conn8 = _check_connectivity(connectivity)
    threshold = _check_real("threshold", threshold)
    if null_batch.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    jit_module = _resolve_backend(backend)
    if jit_module is None:
        return _spatial_numpy.cluster_max_numpy(null_batch, dims, threshold, conn8)
    return jit_module.cluster_max_numba(null_batch, dims[0], dims[1], dims[2], threshold, conn8)
