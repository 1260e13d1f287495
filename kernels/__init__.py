"""seegaan_kernels: streaming permutation-test kernels (arrays in, arrays out).

Each kernel is a Numba function with a plain NumPy twin that gives identical results; choose with
``backend="numba" | "numpy"``. ``"numba"`` falls back to NumPy when Numba is not installed or the
environment variable ``SEEGAAN_DISABLE_NUMBA=1`` is set. Importing this package does not import Numba;
the kernels compile on first use and are cached on disk (``cache=True``).

Functions
---------
accumulate_exceedances
    Per-pixel exceedance counts and running float64 sums of a batch of null maps (in place).
accumulate_maxima
    Per-permutation maximum of the scaled pixel statistic (Westfall-Young max-T).
standardized_statistic
    The observed counterpart of ``accumulate_maxima``.
maxt_counts
    Number of null maxima at or above each observed value.
preload
    Load the Numba kernels in a background thread (overlapping Numba's one-time start-up with other work).

Streaming use (draw all permutations first, then split them into batches of any size; the results do
not depend on the split)::

    counts = np.zeros(M, np.int64); total = np.zeros(M); total_sq = np.zeros(M)
    for null in batches:                      # float32 (nb, M), C-contiguous
        accumulate_exceedances(null, observed, "two-sided", counts, total, total_sq)
    p_uncorrected = (counts + 1) / (B + 1)
    sd = np.sqrt(np.maximum(total_sq / B - (total / B) ** 2, 0))
    scale = np.divide(1.0, sd, out=np.zeros(M), where=sd > 0)
    # max-T needs the SD first: a second pass over the same permutations
    maxima = np.concatenate([accumulate_maxima(null, scale, "two-sided") for null in batches])
    p_maxt = (maxt_counts(standardized_statistic(observed, scale, "two-sided"), maxima) + 1) / (B + 1)
"""

from ._api import (
    ALTERNATIVE_CODES,
    accumulate_exceedances,
    accumulate_maxima,
    alternative_code,
    has_numba,
    maxt_counts,
    preload,
    standardized_statistic,
)

__all__ = [
    "ALTERNATIVE_CODES",
    "accumulate_exceedances",
    "accumulate_maxima",
    "alternative_code",
    "has_numba",
    "maxt_counts",
    "preload",
    "standardized_statistic",
]
