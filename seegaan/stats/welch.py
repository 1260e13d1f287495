"""The Welch statistic of a class-mean trajectory: every map over its own standard error (issue #11).

With two groups of different size *and* spread the permutation null of the raw (or permutation-SD
standardised) difference is too narrow (Behrens–Fisher; Janssen 1997; Chung & Romano 2013). Here every
map -- the observed one and each null one -- is divided by the Welch standard error of *its own* group
assignment, and the Welch t is carried through its Welch–Satterthwaite df onto the normal scale (PALM's
v -> z, Winkler et al. 2014). The standard error comes from the delta-method linearised images
``u_i = J (w_i - w̄)``, J the decoder Jacobian at the cohort mean (:func:`seegaan._welch.linearise`); a
permutation only changes which images are summed in which group (:func:`seegaan._welch.iter_welch_se`).
Details and calibration: ``docs/welch.md``.

Arrays in, arrays out: :class:`WelchDesign` holds ``u``, the groups and the grid; :meth:`WelchDesign.z`
turns difference maps and their permutation rows into z maps; :class:`WelchZ` is the pixel statistic the
family-wise corrections act on (z as it is: no further standardising by the permutation SD).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from seegaan.stats.engine import NullMaps, PixelStatistic

#: a z beyond this is where the t tail underflows float64 (ndtri(5e-324) = -38.5): capped, not inf
Z_CAP = 38.5


@dataclass(frozen=True, eq=False)
class WelchDesign:
    """What the Welch SE of any permutation row needs.

    Attributes
    ----------
    u : ndarray (n, M), float64
        Linearised images of the analysed latents (M = H * W pixels of one frame).
    groups : ndarray (n,)
        0/1 group code of every analysed image (``InterpolationResult.feature_codes``).
    grid : ndarray (K,)
        The class-mean grid t_k (fraction from group A to group B); the SE of step k is
        ``|t_k - t_0|`` times that of the group-mean difference.
    scheme : {"image", "whole-block", "patient-label"}
        The plan's scheme (:func:`seegaan._welch.group_indicator` conventions).
    """

    u: np.ndarray = field(repr=False)
    groups: np.ndarray = field(repr=False)
    grid: np.ndarray
    scheme: str

    def se(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Welch SE and Welch–Satterthwaite df, each (nb, K * M), of the permutation ``rows`` (nb, n)."""
        from seegaan._welch import iter_welch_se

        rows = np.atleast_2d(rows)
        _, se, dof = next(iter_welch_se(self.u, self.groups, rows, self.scheme, t=self.grid,
                                        batch_size=max(len(rows), 1), df=True))
        return se.reshape(len(rows), -1), dof.reshape(len(rows), -1)

    def z(self, difference: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """float32 signed z maps (nb, K * M) of the difference maps (nb, K * M) of ``rows``."""
        se, dof = self.se(rows)
        return welch_z(difference, se, dof)

    def null_maps(self, differences: NullMaps) -> NullMaps:
        """A producer of z maps from a producer of null difference maps (same rows, same order)."""

        def null_maps(rows: np.ndarray) -> np.ndarray:
            return self.z(differences(rows), rows)

        return null_maps


def welch_z(difference: np.ndarray, se: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """``sign(d) * z(|d| / se, dof)`` as float32; 0 where se is 0 (the pixel cannot be tested).

    A monotone, odd, per-pixel function of (d, se, dof): exactness under exchangeability is kept and the
    identity row reproduces the observed map bit for bit. z is capped at :data:`Z_CAP` where the t tail
    underflows.
    """
    from seegaan._welch import t_to_z

    d = np.asarray(difference, dtype=np.float64)
    se = np.asarray(se, dtype=np.float64)
    ok = se > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(ok, d / np.where(ok, se, 1.0), 0.0)
    z = t_to_z(t, np.where(ok, dof, np.nan))
    z = np.where(ok, np.minimum(np.where(np.isfinite(z), z, Z_CAP), Z_CAP), 0.0)
    return np.ascontiguousarray(np.sign(d) * z, dtype=np.float32)


@dataclass(frozen=True, eq=False)
class WelchZ(PixelStatistic):
    """The Welch z maps as they are (scale 1 on testable pixels): no permutation-SD standardising.

    ``difference``, ``se`` and ``dof`` are the observed map's (flattened, identity row), so that
    ``min_change`` shrinks the *difference* before it is divided by its SE (:meth:`shrink`).
    """

    difference: np.ndarray = field(repr=False)
    se: np.ndarray = field(repr=False)
    dof: np.ndarray = field(repr=False)

    def scale(self, sd, tested):
        scale = np.zeros(sd.size, dtype=np.float64)
        scale[(sd > 0) & tested] = 1.0   # a pixel whose z never varies (se 0 everywhere) is not tested
        return scale, {"pixel_statistic": "welch z (own SE per permutation, Welch-Satterthwaite df -> z)"}

    def shrink(self, observed, min_change):
        d = self.difference.astype(np.float64)
        return welch_z(np.sign(d) * np.maximum(np.abs(d) - min_change, 0.0), self.se, self.dof)
