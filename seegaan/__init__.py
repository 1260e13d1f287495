"""seegaan: SEE-GAAN latent traversals of chest radiographs with permutation-tested pixels.

``import seegaan`` is light: torch and numba load only when a function needs them. The public
functions are resolved lazily on first attribute access.
"""

from __future__ import annotations

from seegaan._internal.errors import SeegaanError
from seegaan._internal.lazy import lazy_module
from seegaan._version import __version__

# public name -> module that defines it
_LAZY = {
    # latent cohorts
    "create_cohort": "seegaan.data.cohort",
    "validate_cohort": "seegaan.data.cohort",
    "open_cohort": "seegaan.data.cohort",
    "save_cohort": "seegaan.data.cohort",
    "cohort_summary": "seegaan.data.cohort",
    # interpolation and sequences
    "interpolate": "seegaan.interpolation",
    "InterpolationResult": "seegaan.interpolation",
    "sequence": "seegaan.sequences",
    "SequenceResult": "seegaan.sequences",
    "save_sequence": "seegaan.sequences",
    "plot_sequence": "seegaan.viz.figures",
    "load_decoder": "seegaan.decoder",
    # statistics
    "load_mask": "seegaan.stats.mask",
    "SeegaanWarning": "seegaan._internal.errors",
    "correct_pvalues": "seegaan.stats.correction",
    "draw_permutations": "seegaan.stats.permutation",
    "permutation_test": "seegaan.stats.engine",
    "MaxT": "seegaan.stats.maxstat",
    "MaxD": "seegaan.stats.maxstat",
    "TFCE": "seegaan.stats.spatial",
    "Cluster": "seegaan.stats.spatial",
    "PValues": "seegaan.stats.correction",
    # local sequences and CNN explanations
    "local_sequence": "seegaan.explain.local",
    "LocalResult": "seegaan.explain.local",
    "plot_local": "seegaan.explain.local",
    "pixel_test": "seegaan.pixeltest",
    "calibrate": "seegaan.calibration",
    "Calibration": "seegaan.calibration",
    "load_model": "seegaan.explain.cnn",
    "ExplainResult": "seegaan.explain.counterfactual",
    "local_direction": "seegaan.explain.counterfactual",
    "attributions": "seegaan.explain.attribution",
    "plot_explanation": "seegaan.explain.attribution",
    # results to look at and share
    "open_sequence": "seegaan.viz.accessor",
    "make_report": "seegaan.viz.report",
}

#: modules of earlier layouts -> where they live now: ``seegaan.local.local_sequence``, ``seegaan.predict.predict``
#: and ``seegaan.animate.animate`` keep working as attribute access (``import seegaan.local`` does not).
_MOVED = {
    "cohort": "seegaan.data.cohort",
    "local": "seegaan.explain.local",
    "predict": "seegaan.explain.predictions",
    "cnn": "seegaan.explain.cnn",
    "attribution": "seegaan.explain.attribution",
    "plotting": "seegaan.viz.figures",
    "animate": "seegaan.viz.animation",
    "report": "seegaan.viz.report",
    "accessor": "seegaan.viz.accessor",
}

__all__ = ["SeegaanError", "__version__", *sorted(_LAZY)]


__getattr__, __dir__, _ = lazy_module("seegaan", _LAZY, moved=_MOVED)
