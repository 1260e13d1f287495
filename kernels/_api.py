"""Public entry points: validate arrays, then run the Numba kernel or its NumPy twin."""

from __future__ import annotations

import importlib
import threading
from functools import cache
from typing import Literal

import numpy as np

from . import _numpy

Backend = Literal["numba", "numpy"]

#: alternative name (as in scipy) -> integer code used by the kernels
ALTERNATIVE_CODES = {"two-sided": 0, "greater": 1, "less": 2}


@cache
def _jit_module(name: str = "_jit"):
    """Import a Numba kernel module once; return None when Numba is missing or disabled."""
    shim = importlib.import_module(f"{__package__}._numba")
    if not shim.HAS_NUMBA:
        return None
    return importlib.import_module(f"{__package__}.{name}")


def has_numba() -> bool:
    """Return True when the Numba kernels are available (Numba imports and is not disabled).

    Set the environment variable ``SEEGAAN_DISABLE_NUMBA=1`` before the first kernel call to force the
    NumPy twins.
    """
    return _jit_module() is not None


_preload_lock = threading.Lock()
_preload_started = False


def preload(backend: Backend = "numba") -> threading.Thread | None:
    """Start loading the streaming kernels in a background thread; return the thread to ``join``.

    Numba loads a compiled kernel from its on-disk cache (or compiles it, the first time after an install)
    at its first call: about 0.3-0.5 s per process, mostly Numba's own one-time set-up (its type
    registries and threading layer), which would otherwise stall the first batch of a permutation test.
    Started before the first null maps are produced, the load overlaps that work (decoding releases the
    GIL); the caller joins the thread before its first kernel call. The thread only calls
    :func:`accumulate_exceedances` and :func:`accumulate_maxima` on one-pixel arrays, so it changes no
    result.

    Returns None for the NumPy backend and when a load was already started in this process (without
    Numba the thread only runs the NumPy twins on one pixel).
    """
    global _preload_started
    if backend != "numba":
        return None
    with _preload_lock:
        if _preload_started:
            return None
        _preload_started = True

    def load() -> None:
        try:
            null = np.zeros((1, 1), np.float32)
            observed = np.zeros(1, np.float32)
            accumulate_exceedances(null, observed, 0, np.zeros(1, np.int64), np.zeros(1), np.zeros(1))
            accumulate_maxima(null, np.ones(1), 0)
        except Exception:  # noqa: BLE001 - the caller's own first call raises the same error where it belongs
            pass

    thread = threading.Thread(target=load, name="seegaan-kernels-preload", daemon=True)
    thread.start()
    return thread


def _resolve_backend(backend: str, module: str = "_jit"):
    """Return the Numba kernel module ``module``, or None for the NumPy twins."""
    if backend not in ("numba", "numpy"):
        raise ValueError(f"backend must be 'numba' or 'numpy', got {backend!r}")
    if backend == "numpy":
        return None
    return _jit_module(module)


def alternative_code(alternative) -> int:
    """Return the kernel code (0 two-sided, 1 greater, 2 less) for a name or a code."""
    if isinstance(alternative, str):
        if alternative not in ALTERNATIVE_CODES:
            raise ValueError(f"alternative must be one of {sorted(ALTERNATIVE_CODES)} or 0/1/2, got {alternative!r}")
        return ALTERNATIVE_CODES[alternative]
    if isinstance(alternative, (bool, np.bool_)) or not isinstance(alternative, (int, np.integer)):
        raise ValueError(f"alternative must be 0, 1, 2 or a name, got {alternative!r}")
    if int(alternative) not in (0, 1, 2):
        raise ValueError(f"alternative code must be 0 (two-sided), 1 (greater) or 2 (less), got {alternative}")
    return int(alternative)


def _check_array(name, arr, *, dtype, ndim, writable=False):
    """Raise ValueError unless ``arr`` is a C-contiguous ndarray of ``dtype`` and ``ndim``."""
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{name} must be a numpy.ndarray, got {type(arr).__name__}")
    if arr.dtype != dtype:
        raise ValueError(f"{name} must have dtype {np.dtype(dtype)}, got {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if not arr.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use numpy.ascontiguousarray)")
    if writable and not arr.flags.writeable:
        raise ValueError(f"{name} must be writeable: it is updated in place")


def _check_length(name, arr, n_pix):
    if arr.shape[0] != n_pix:
        raise ValueError(f"{name} has {arr.shape[0]} elements but null has {n_pix} pixels per map")


def accumulate_exceedances(
    null: np.ndarray,
    observed: np.ndarray,
    alternative,
    counts: np.ndarray,
    total: np.ndarray,
    total_sq: np.ndarray,
    *,
    backend: Backend = "numba",
) -> None:
    """Accumulate exceedance counts and the first two moments of a batch of null maps, in place.

    Parameters
    ----------
    null : ndarray of float32, shape (nb, M), C-contiguous
        A batch of ``nb`` null difference maps, each flattened to ``M`` = steps * pixels values.
    observed : ndarray of float32, shape (M,)
        The observed difference map.
    alternative : {0, 1, 2} or {"two-sided", "greater", "less"}
        Pixel statistic: ``|x|`` (0), ``x`` (1) or ``-x`` (2).
    counts : ndarray of int64, shape (M,)
        Updated in place: ``counts[m] += #{b : stat(null[b, m]) >= stat(observed[m])}``. Ties count as
        exceedances; NaN never does.
    total, total_sq : ndarray of float64, shape (M,)
        Updated in place with ``sum_b null[b, m]`` and ``sum_b null[b, m] ** 2``, added one ``b`` at a
        time in ascending order, so the bits do not depend on how permutations are split into batches,
        on the number of threads, or on the backend.
    backend : {"numba", "numpy"}
        ``"numba"`` falls back to NumPy when Numba is unavailable or disabled.

    Returns
    -------
    None
    """
    _check_array("null", null, dtype=np.float32, ndim=2)
    _check_array("observed", observed, dtype=np.float32, ndim=1)
    _check_array("counts", counts, dtype=np.int64, ndim=1, writable=True)
    _check_array("total", total, dtype=np.float64, ndim=1, writable=True)
    _check_array("total_sq", total_sq, dtype=np.float64, ndim=1, writable=True)
    n_pix = null.shape[1]
    for name, arr in (("observed", observed), ("counts", counts), ("total", total), ("total_sq", total_sq)):
        _check_length(name, arr, n_pix)
    if total is total_sq or np.shares_memory(total, total_sq):
        raise ValueError("total and total_sq must be different arrays")
    code = alternative_code(alternative)
    if null.shape[0] == 0 or n_pix == 0:
        return None
    jit_module = _resolve_backend(backend)
    if jit_module is None:
        _numpy.exceedances_numpy(null, observed, code, counts, total, total_sq)
    else:
        jit_module.exceedances_numba(null, observed, code, counts, total, total_sq)
    return None


def accumulate_maxima(
    null: np.ndarray,
    scale: np.ndarray,
    alternative,
    *,
    backend: Backend = "numba",
) -> np.ndarray:
    """Return, per null map, the maximum over pixels of the scaled statistic (for Westfall-Young max-T).

    Parameters
    ----------
    null : ndarray of float32, shape (nb, M), C-contiguous
        A batch of ``nb`` null difference maps.
    scale : ndarray of float64, shape (M,)
        Per-pixel factor, typically 1 / permutation SD. Pixels with ``scale == 0`` are skipped.
    alternative : {0, 1, 2} or {"two-sided", "greater", "less"}
        Pixel statistic: ``|x|`` (0), ``x`` (1) or ``-x`` (2).
    backend : {"numba", "numpy"}
        ``"numba"`` falls back to NumPy when Numba is unavailable or disabled.

    Returns
    -------
    maxima : ndarray of float64, shape (nb,)
        ``max_m float64(stat(null[b, m])) * scale[m]`` over pixels with ``scale[m] != 0``; NaN products
        are ignored; ``-inf`` when no pixel counts. Compare with :func:`standardized_statistic`, which
        computes the observed values with the same arithmetic.
    """
    _check_array("null", null, dtype=np.float32, ndim=2)
    _check_array("scale", scale, dtype=np.float64, ndim=1)
    _check_length("scale", scale, null.shape[1])
    code = alternative_code(alternative)
    if null.shape[0] == 0 or null.shape[1] == 0:
        return np.full(null.shape[0], -np.inf)
    jit_module = _resolve_backend(backend)
    if jit_module is None:
        return _numpy.maxima_numpy(null, scale, code)
    return jit_module.maxima_numba(null, scale, code)


def standardized_statistic(values: np.ndarray, scale: np.ndarray, alternative) -> np.ndarray:
    """Return ``float64(stat(values)) * scale``, with ``-inf`` where ``scale == 0`` or the product is NaN.

    This is the observed counterpart of :func:`accumulate_maxima` (same arithmetic, so the identity
    permutation ties with itself exactly). ``-inf`` marks pixels that cannot be tested: with
    :func:`maxt_counts` they get the largest count, hence p = 1.

    Parameters
    ----------
    values : ndarray of float32, shape (M,)
        Observed map.
    scale : ndarray of float64, shape (M,)
        Per-pixel factor, as given to :func:`accumulate_maxima`.
    alternative : {0, 1, 2} or {"two-sided", "greater", "less"}

    Returns
    -------
    ndarray of float64, shape (M,)
    """
    _check_array("values", values, dtype=np.float32, ndim=1)
    _check_array("scale", scale, dtype=np.float64, ndim=1)
    _check_length("scale", scale, values.shape[0])
    stat = _numpy.statistic(values.astype(np.float64), alternative_code(alternative)) * scale
    stat[(scale == 0.0) | np.isnan(stat)] = -np.inf
    return stat


def maxt_counts(observed_stat: np.ndarray, maxima: np.ndarray) -> np.ndarray:
    """Count, for every observed value, the null maxima that reach it: ``#{b : maxima[b] >= observed}``.

    Parameters
    ----------
    observed_stat : array_like of float, any shape
        Observed (standardised) statistics, e.g. from :func:`standardized_statistic`.
    maxima : array_like of float, shape (B,)
        Per-permutation maxima from :func:`accumulate_maxima`, all batches concatenated. Must not
        contain NaN.

    Returns
    -------
    ndarray of int64, same shape as ``observed_stat``
        The Westfall-Young max-T p-value is then ``(counts + 1) / (B + 1)``. A NaN observed value
        gets 0.
    """
    observed_stat = np.asarray(observed_stat)
    maxima = np.asarray(maxima)
    if maxima.ndim != 1:
        raise ValueError(f"maxima must be 1-D, got shape {maxima.shape}")
    if not (np.issubdtype(maxima.dtype, np.floating) or np.issubdtype(maxima.dtype, np.integer)):
        raise ValueError(f"maxima must be real numbers, got dtype {maxima.dtype}")
    if not (np.issubdtype(observed_stat.dtype, np.floating) or np.issubdtype(observed_stat.dtype, np.integer)):
        raise ValueError(f"observed_stat must be real numbers, got dtype {observed_stat.dtype}")
    if np.isnan(maxima).any():
        raise ValueError("maxima contain NaN")
    ordered = np.sort(maxima.astype(np.float64))
    below = np.searchsorted(ordered, observed_stat.astype(np.float64), side="left")
    counts = (ordered.size - below).astype(np.int64)
    # searchsorted places NaN after every number: NaN >= anything is False, so count 0
    counts[np.isnan(observed_stat)] = 0
    return counts.reshape(observed_stat.shape)
