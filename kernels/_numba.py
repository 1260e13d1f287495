"""Numba shim: ``jit`` and ``prange`` that degrade to plain Python when Numba is absent or disabled.

Numba is used when it imports and the environment variable ``SEEGAAN_DISABLE_NUMBA`` is not set to a
true value (``1``, ``true``, ``yes``, ``on``). Without it, ``jit`` returns the function unchanged and
``prange`` is ``range``, so the kernels still run (slowly) as ordinary Python. The public functions of
:mod:`seegaan_kernels` never run those slow loops: they use the NumPy twins instead (see
:func:`seegaan_kernels.has_numba`).

This module is imported only when a Numba kernel is first needed, so ``import seegaan_kernels`` does not
import Numba.
"""

from __future__ import annotations

import os

_TRUE = {"1", "true", "yes", "on"}


def numba_disabled_by_env() -> bool:
    """Return True when ``SEEGAAN_DISABLE_NUMBA`` asks for the NumPy code paths."""
    return os.environ.get("SEEGAAN_DISABLE_NUMBA", "").strip().lower() in _TRUE


HAS_NUMBA = False
if not numba_disabled_by_env():
    try:
        import numba as _numba
    except ImportError:  # numba missing or broken (e.g. built against another NumPy)
        _numba = None
    else:
        HAS_NUMBA = True

if HAS_NUMBA:

    def jit(**options):
        """``numba.njit`` with ``cache=True`` and ``nogil=True``; never ``fastmath``.

        ``fastmath`` is refused because the kernels compare with ``>=`` and promise sums that are
        bit-identical to the NumPy twins.
        """
        if options.get("fastmath"):
            raise ValueError("fastmath is not allowed in seegaan_kernels (results are compared with >=)")
        options.setdefault("cache", True)
        options.setdefault("nogil", True)
        return _numba.njit(**options)

    prange = _numba.prange

else:

    def jit(**options):
        """No-op stand-in for ``numba.njit``: returns the function unchanged."""

        def decorator(func):
            return func

        return decorator

    prange = range
