"""seegaan: SEE-GAAN latent traversals of chest radiographs with permutation-tested pixels.

``import seegaan`` is light: torch and numba load only when a function needs them. The public
functions are resolved lazily on first attribute access.
"""

from __future__ import annotations

import importlib

from seegaan._errors import SeegaanError
from seegaan._version import __version__

# public name -> module that defines it
_LAZY = {
    # latent cohorts
    "create_cohort": "seegaan.cohort",
    "validate_cohort": "seegaan.cohort",
    "open_cohort": "seegaan.cohort",
    "save_cohort": "seegaan.cohort",
    "cohort_summary": "seegaan.cohort",
    # interpolation and sequences
    "interpolate": "seegaan.interpolation",
    "InterpolationResult": "seegaan.interpolation",
    "sequence": "seegaan.sequences",
    "SequenceResult": "seegaan.sequences",
    "save_sequence": "seegaan.sequences",
    "SeegaanWarning": "seegaan.sequences",
    "plot_sequence": "seegaan.plotting",
    "load_decoder": "seegaan.decoder",
    "correct_pvalues": "seegaan.correction",
    "draw_permutations": "seegaan.permutation",
}

__all__ = ["SeegaanError", "__version__", *sorted(_LAZY)]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'seegaan' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
