"""Multiple-testing corrections: every correction by name, and the methods that act on p-values alone.

The family-wise permutation corrections need the null distribution of a maximum
(:mod:`seegaan.stats.maxstat`, :mod:`seegaan.stats.spatial`); the methods here (:class:`PValues`) act on
the uncorrected permutation p-values alone (statsmodels, wrapped so any shape goes in and the same shape
comes out). :func:`as_correction` turns a name and the command line's options into an options object.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import cast

import numpy as np

from seegaan._internal.choices import CORRECTIONS, P_METHODS, PValueMethod
from seegaan._internal.errors import SeegaanError
from seegaan.stats.maxstat import MaxD, MaxT
from seegaan.stats.spatial import TFCE, Cluster

#: the family-wise corrections by name (the others are :class:`PValues` methods)
FAMILY_WISE = {cls.name: cls for cls in (MaxT, MaxD, TFCE, Cluster)}
#: option name (as in the command line, ``--tfce-e`` -> ``tfce_e``) -> field of the options classes
_OPTION_FIELDS = {
    "sd_offset": "sd_offset",
    "min_change": "min_change",
    "tfce_e": "E",
    "tfce_connectivity": "connectivity",
    "cluster_threshold": "threshold",
}


@dataclass(frozen=True)
class PValues:
    """A correction of the uncorrected permutation p-values: ``"none"``, Bonferroni, Holm or FDR.

    Parameters
    ----------
    method : {"none", "bonferroni", "holm", "fdr_bh", "fdr_by"}
        ``none``: the paper's uncorrected pixel-wise test; the others as in statsmodels' ``multipletests``.
    """

    method: PValueMethod = "fdr_bh"
    family_wise = False

    def __post_init__(self):
        if self.method not in P_METHODS:
            raise SeegaanError(f"unknown correction {self.method!r}; use one of {', '.join(CORRECTIONS)}")

    @property
    def name(self) -> str:
        return self.method

    def adjust(
        self, p_value: np.ndarray, family: np.ndarray, *, alpha: float, n_perm: int
    ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        """Adjusted p-values, rejections and warnings for the permutation p-values of ``family``."""
        p_adjusted, significant = correct_pvalues(np.where(family, p_value, 1.0), self.method, alpha=alpha, mask=family)
        msg = feasibility_warning(self.method, int(family.sum()), n_perm, alpha)
        return p_adjusted, significant, (msg,) if msg else ()

    def attrs(self) -> dict:
        return {}


#: what ``correction=`` takes besides a name
CorrectionOptions = MaxT | MaxD | TFCE | Cluster | PValues


def as_correction(correction="maxt", **options) -> CorrectionOptions:
    """The options object of a correction given by name (or as such an object) and command-line options.

    Parameters
    ----------
    correction : str or options object
        A name of :data:`seegaan._internal.choices.CORRECTIONS` (its defaults) or a :class:`MaxT`, :class:`MaxD`,
        :class:`TFCE`, :class:`Cluster` or :class:`PValues` (returned as it is; no options then).
    **options
        ``sd_offset``, ``min_change``, ``tfce_e``, ``tfce_connectivity``, ``cluster_threshold``: None (and
        ``min_change=0``,
        which tests any change) means not given; a given option that the correction does not take is an
        error.

    Returns
    -------
    MaxT, MaxD, TFCE, Cluster or PValues
    """
    unknown = set(options) - set(_OPTION_FIELDS)
    if unknown:
        raise TypeError(f"as_correction() got unexpected options {', '.join(sorted(unknown))}")
    given = {
        key: value
        for key, value in options.items()
        if value is not None and not (key == "min_change" and _is_zero(value))
    }
    if not isinstance(correction, str):
        if not hasattr(correction, "family_wise"):
            raise SeegaanError(
                f"correction must be a name ({', '.join(CORRECTIONS)}) or an options object "
                f"such as MaxT(), not {correction!r}"
            )
        if given:
            raise SeegaanError(f"give {', '.join(given)} in the options object {correction!r}, not separately")
        return correction
    if correction not in CORRECTIONS:
        raise SeegaanError(f"unknown correction {correction!r}; use one of {', '.join(CORRECTIONS)}")
    cls = FAMILY_WISE.get(correction, PValues)
    fields = {f.name for f in dataclasses.fields(cls)}
    for key in given:
        only = key.split("_")[0] if key.startswith(("tfce_", "cluster_")) else None
        if only is not None and correction != only:
            raise SeegaanError(f"--{key.replace('_', '-')} applies to --correction {only} only (got {correction})")
        if _OPTION_FIELDS[key] not in fields:
            takers = [
                name
                for name, c in FAMILY_WISE.items()
                if _OPTION_FIELDS[key] in {f.name for f in dataclasses.fields(c)}
            ]
            raise SeegaanError(
                f"--{key.replace('_', '-')} applies to --correction {' or '.join(takers)} only (got {correction})"
            )
    kwargs = {_OPTION_FIELDS[key]: value for key, value in given.items()}
    return cls(**kwargs) if cls is not PValues else PValues(cast(PValueMethod, correction))


def _is_zero(value) -> bool:
    try:
        return float(value) == 0
    except (TypeError, ValueError):
        return False


def correct_pvalues(p, method: PValueMethod = "fdr_bh", *, alpha: float = 0.05, mask=None):
    """Adjust p-values of any shape for multiple testing.

    Parameters
    ----------
    p : array-like
        p-values (any shape).
    method : {"none", "bonferroni", "holm", "fdr_bh", "fdr_by"}
    alpha : float
        Level used for the rejections.
    mask : bool array of the same shape, optional
        The family of tests; entries outside it get adjusted p = 1 and are never rejected.

    Returns
    -------
    p_adjusted : ndarray, same shape as ``p``
    reject : bool ndarray, same shape as ``p``
    """
    p = np.asarray(p, dtype=np.float64)
    if method not in P_METHODS:
        raise SeegaanError(f"unknown correction {method!r}; use one of {', '.join(CORRECTIONS)}")
    if not 0 < alpha < 1:
        raise SeegaanError(f"alpha must be between 0 and 1 (got {alpha})")
    if np.any((p < 0) | (p > 1)) or not np.isfinite(p).all():
        raise ValueError("p-values must be finite and within [0, 1]")
    mask = np.ones(p.shape, bool) if mask is None else np.asarray(mask, bool)
    p_adj = np.ones_like(p)
    flat = p[mask]
    if method == "none":
        adj = flat
    elif flat.size:
        from statsmodels.stats.multitest import multipletests  # deferred: statsmodels (1 s to import)

        adj = multipletests(flat, alpha=alpha, method=method)[1]
    else:
        adj = flat
    p_adj[mask] = adj
    return p_adj, (p_adj <= alpha) & mask


def feasibility_warning(method: str, n_tests: int, n_perm: int, alpha: float) -> str | None:
    """A message when B permutations make rejection impossible or nearly so under ``method``.

    The smallest attainable permutation p-value is 1 / (B + 1).
    """
    if n_perm <= 0 or n_tests <= 0:
        return None
    p_min = 1.0 / (n_perm + 1)
    if method in ("bonferroni", "holm") and p_min > alpha / n_tests:
        need = math.ceil(n_tests / alpha) - 1
        return (
            f"{method}: with {n_perm} permutations the smallest p-value is 1/{n_perm + 1} = {p_min:.3g}, above "
            f"alpha/m = {alpha / n_tests:.3g} for {n_tests} tests, so nothing can be rejected; use maxt or at "
            f"least {need} permutations"
        )
    if method in ("fdr_bh", "fdr_by"):
        c = 1.0 if method == "fdr_bh" else sum(1.0 / i for i in range(1, n_tests + 1))
        frac = p_min * c / alpha
        if frac >= 1:
            return (
                f"{method}: with {n_perm} permutations no test can be rejected (smallest p {p_min:.3g}); "
                "use more permutations or maxt"
            )
        if frac > 0.01:
            return (
                f"{method}: with {n_perm} permutations (smallest p {p_min:.3g}) a rejection needs at least "
                f"{100 * frac:.1f}% of the {n_tests} tests at that floor; use more permutations or maxt"
            )
    return None
