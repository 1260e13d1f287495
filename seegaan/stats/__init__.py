"""The statistics of SEE-GAAN: permutation plans, the streaming permutation test and its corrections.

Modules
-------
permutation
    Pre-drawn null plans: sign flips per patient (:func:`draw_signflips`) and permutations with their
    exchangeability schemes (:func:`draw_permutations`).
engine
    :func:`permutation_test`: observed maps, a producer of null maps and a plan -> p-values.
maxstat
    :class:`MaxT` (standardised difference, s0) and :class:`MaxD` (raw difference); ``min_change``.
spatial
    :class:`TFCE` and :class:`Cluster` over ``seegaan_kernels.spatial``.
base
    What the engine and the corrections share: the null-map contract, pixel statistics, block sums.
correction
    :class:`PValues` (none, Bonferroni, Holm, FDR), :func:`correct_pvalues` and :func:`as_correction`.
mask
    :func:`load_mask`: the pixels that form the family of tests.

Names load on first use, so ``import seegaan.stats`` stays light.
"""

from __future__ import annotations

from seegaan._internal.lazy import lazy_module

_LAZY = {
    "PermutationPlan": "seegaan.stats.permutation",
    "choose_scheme": "seegaan.stats.permutation",
    "draw_permutations": "seegaan.stats.permutation",
    "draw_signflips": "seegaan.stats.permutation",
    "permutation_test": "seegaan.stats.engine",
    "PermutationTest": "seegaan.stats.engine",
    "permutation_sd": "seegaan.stats.base",
    "FamilyWise": "seegaan.stats.base",
    "PixelStatistic": "seegaan.stats.base",
    "SeegaanWarning": "seegaan._internal.errors",
    "check_memory": "seegaan.stats.engine",
    "MaxT": "seegaan.stats.maxstat",
    "MaxD": "seegaan.stats.maxstat",
    "PermutationSD": "seegaan.stats.maxstat",
    "RawDifference": "seegaan.stats.maxstat",
    "parse_sd_offset": "seegaan.stats.maxstat",
    "TFCE": "seegaan.stats.spatial",
    "Cluster": "seegaan.stats.spatial",
    "PValues": "seegaan.stats.correction",
    "as_correction": "seegaan.stats.correction",
    "correct_pvalues": "seegaan.stats.correction",
    "feasibility_warning": "seegaan.stats.correction",
    "load_mask": "seegaan.stats.mask",
    "check_mask": "seegaan.stats.mask",
}

__getattr__, __dir__, __all__ = lazy_module("seegaan.stats", _LAZY)
