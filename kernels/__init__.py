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
"""

from ._api import (
    ALTERNATIVE_CODES,
    accumulate_exceedances,
    accumulate_maxima,
    alternative_code,
    has_numba,
    maxt_counts,
    standardized_statistic,
)

__all__ = [
    "ALTERNATIVE_CODES",
    "accumulate_exceedances",
    "accumulate_maxima",
    "alternative_code",
    "has_numba",
    "maxt_counts",
    "standardized_statistic",
]
