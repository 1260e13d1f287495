"""seegaan: SEE-GAAN latent traversals of chest radiographs with permutation-tested pixels.

``import seegaan`` is light: torch and numba load only when a function needs them. The public
functions are resolved lazily on first attribute access.
"""

from __future__ import annotations

from seegaan._lazy import lazy_module

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
    "plot_sequence": "seegaan.plotting",
    "load_decoder": "seegaan.decoder",
    # statistics
    "load_mask": "seegaan.stats.mask",
    "SeegaanWarning": "seegaan.stats.engine",
    "correct_pvalues": "seegaan.stats.correction",
    "draw_permutations": "seegaan.stats.permutation",
    "permutation_test": "seegaan.stats.engine",
    "MaxT": "seegaan.stats.maxstat",
    "MaxD": "seegaan.stats.maxstat",
    "TFCE": "seegaan.stats.spatial",
    "Cluster": "seegaan.stats.spatial",
    "PValues": "seegaan.stats.correction",
    # local sequences and CNN explanations (the functions named like their modules -- predict, explain,
    # animate -- are imported from them: seegaan.predict.predict, so a module is never shadowed)
    "local_sequence": "seegaan.local",
    "LocalResult": "seegaan.local",
    "plot_local": "seegaan.local",
    "pixel_test": "seegaan.pixeltest",
    "load_model": "seegaan.cnn",
    "ExplainResult": "seegaan.explain",
    "local_direction": "seegaan.explain",
    "attributions": "seegaan.attribution",
    "plot_explanation": "seegaan.attribution",
    # results to look at and share
    "open_sequence": "seegaan.accessor",
    "make_report": "seegaan.report",
}

__all__ = ["SeegaanError", "__version__", *sorted(_LAZY)]


__getattr__, __dir__, _ = lazy_module("seegaan", _LAZY)
