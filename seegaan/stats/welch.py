"""Studentised pixel statistics: every map -- observed and null -- over its own standard error (issue #11).

With two groups of different size *and* spread the permutation null of the raw (or permutation-SD
standardised) difference is too narrow (Behrens–Fisher; Janssen 1997; Chung & Romano 2013); for a
``linear`` trajectory the same happens when the latent spread is largest where the leverage is (at both
ends of the feature; DiCiccio & Romano 2017). Here every map is divided by the standard error of *its
own* fit -- the Welch SE of its group assignment (class-mean), or the HC3 SE of the slope of its permuted
regression (linear) -- which keeps the test exact under exchangeability and makes it asymptotically valid
under unequal spread. The Welch t is carried through its Welch–Satterthwaite df onto the normal scale
(PALM's v -> z, Winkler et al. 2014); the HC3 t is used as z (n - 2 df changed nothing at n = 150,
``docs/welch.md``). The standard errors come from the delta-method linearised images ``u_i = J (w_i - w̄)``
(:func:`seegaan.stats.standard_errors.linearise`); a permutation only changes which images are summed in which group
(:func:`seegaan.stats.standard_errors.iter_welch_se`) or which feature value a latent is paired with
(:func:`seegaan.stats.standard_errors.iter_slope_se`). Details and calibration: ``docs/welch.md``.

Arrays in, arrays out: :class:`WelchDesign` / :class:`SlopeDesign` hold ``u`` and the design; their
``z`` turns difference maps and their permutation rows into z maps and ``null_maps`` wraps a producer of
null differences (:class:`StudentisedNull`, picklable when that producer is); :class:`StudentisedZ`
(alias :class:`WelchZ`) is the pixel statistic the family-wise corrections act on (z as it is: no further
standardising by the permutation SD).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from seegaan.stats.base import NullMaps, PixelStatistic
from seegaan.stats.standard_errors import finite_difference_step, iter_welch_se, linearise, slope_se, t_to_z

#: a z beyond this is where the t tail underflows float64 (ndtri(5e-324) = -38.5): capped, not inf
Z_CAP = 38.5


def _per_step(step_scale: np.ndarray, se: np.ndarray, dof: np.ndarray | None):
    """(nb, M) SE (and df) of the unit difference -> (nb, K * M): step k's SE is ``step_scale[k]`` times it."""
    nb, M = se.shape
    full = (step_scale[None, :, None] * se[:, None, :]).reshape(nb, -1)
    if dof is None:
        return full, None
    return full, np.broadcast_to(dof[:, None, :], (nb, step_scale.size, M)).reshape(nb, -1)


class _Design:
    """Shared by the designs: ``se(rows) -> (se, dof or None)``, each (nb, K * M)."""

    def se(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:  # pragma: no cover
        raise NotImplementedError

    def z(self, difference: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """float32 signed z maps (nb, K * M) of the difference maps (nb, K * M) of ``rows``."""
        se, dof = self.se(rows)
        return studentised_z(difference, se, dof)

    def null_maps(self, differences: NullMaps) -> NullMaps:
        """A producer of z maps from a producer of null difference maps (same rows, same order)."""
        return StudentisedNull(self, differences)


@dataclass(frozen=True, eq=False)
class StudentisedNull:
    """``rows -> z maps``: the null differences of ``rows`` over their own SE (picklable)."""

    design: _Design
    differences: NullMaps

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        return self.design.z(self.differences(rows), rows)


@dataclass(frozen=True, eq=False)
class WelchDesign(_Design):
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
        The plan's scheme (:func:`seegaan.stats.standard_errors.group_indicator` conventions).
    step_scale : ndarray (K,), optional
        Replaces ``|t_k - t_0|`` (e.g. ``|λ_k|`` of a local sequence).
    """

    u: np.ndarray = field(repr=False)
    groups: np.ndarray = field(repr=False)
    grid: np.ndarray
    scheme: str
    step_scale: np.ndarray | None = None

    def se(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Welch SE and Welch–Satterthwaite df, each (nb, K * M), of the permutation ``rows`` (nb, n)."""
        rows = np.atleast_2d(rows)
        _, se, dof = next(iter_welch_se(self.u, self.groups, rows, self.scheme, batch_size=max(len(rows), 1), df=True))
        g = np.asarray(self.grid, np.float64)
        scale = np.abs(g - g[0]) if self.step_scale is None else np.asarray(self.step_scale, np.float64)
        return _per_step(scale, se, dof)


@dataclass(frozen=True, eq=False)
class SlopeDesign(_Design):
    """What the HC3 SE of the permuted regression's slope (``linear`` trajectory) needs.

    Attributes
    ----------
    u : ndarray (n, M), float64
        Linearised images of the analysed latents.
    x : ndarray (n,)
        The feature as the map sees it (``InterpolationResult.feature_codes``).
    step_scale : ndarray (K,)
        ``|g_k - g_0|`` (grid on the feature's transformed scale): step k's SE is that times the slope's.
    scheme : {"image", "whole-block", "patient-label"}
        See :func:`seegaan.stats.standard_errors.feature_per_latent`.
    clusters : ndarray (n,), optional
        Patient of every image when the units are patients (cluster-robust CR3).
    """

    u: np.ndarray = field(repr=False)
    x: np.ndarray = field(repr=False)
    step_scale: np.ndarray
    scheme: str
    clusters: np.ndarray | None = field(default=None, repr=False)

    def se(self, rows: np.ndarray) -> tuple[np.ndarray, None]:
        """HC3 (or CR3) SE (nb, K * M) of the permutation ``rows`` (nb, n); no df (z = t)."""
        rows = np.atleast_2d(rows)
        se = slope_se(self.u, self.x, rows, self.scheme, hc="HC3", clusters=self.clusters, batch_size=max(len(rows), 1))
        return _per_step(np.asarray(self.step_scale, np.float64), se, None)


def studentised_z(difference: np.ndarray, se: np.ndarray, dof: np.ndarray | None = None) -> np.ndarray:
    """``sign(d) * z(|d| / se, dof)`` as float32; 0 where se is 0 (the pixel cannot be tested).

    ``dof`` None: z = t (no df). A monotone, odd, per-pixel function of (d, se, dof): exactness under
    exchangeability is kept and the identity row reproduces the observed map bit for bit. z is capped at
    :data:`Z_CAP` where the t tail underflows.
    """
    d = np.asarray(difference, dtype=np.float64)
    se = np.asarray(se, dtype=np.float64)
    ok = se > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(ok, d / np.where(ok, se, 1.0), 0.0)
    z = np.abs(t) if dof is None else t_to_z(t, np.where(ok, dof, np.nan))
    z = np.where(ok, np.minimum(np.where(np.isfinite(z), z, Z_CAP), Z_CAP), 0.0)
    return np.ascontiguousarray(np.sign(d) * z, dtype=np.float32)


#: the Welch z of :class:`WelchDesign` (the name the class-mean code was written with)
welch_z = studentised_z


@dataclass(frozen=True, eq=False)
class StudentisedZ(PixelStatistic):
    """Studentised z maps as they are (scale 1 on testable pixels): no permutation-SD standardising.

    ``difference``, ``se`` and ``dof`` (None: z = t) are the observed map's (flattened, identity row), so
    that ``min_change`` shrinks the *difference* before it is divided by its SE (:meth:`shrink`);
    ``description`` is recorded as ``pixel_statistic``.
    """

    difference: np.ndarray = field(repr=False)
    se: np.ndarray = field(repr=False)
    dof: np.ndarray | None = field(repr=False)
    description: str = "welch z (own SE per permutation, Welch-Satterthwaite df -> z)"

    def scale(self, sd, tested):
        scale = np.zeros(sd.size, dtype=np.float64)
        scale[(sd > 0) & tested] = 1.0  # a pixel whose z never varies (se 0 everywhere) is not tested
        return scale, {"pixel_statistic": self.description}

    def shrink(self, observed, min_change):
        d = self.difference.astype(np.float64)
        return studentised_z(np.sign(d) * np.maximum(np.abs(d) - min_change, 0.0), self.se, self.dof)


#: the class-mean name of :class:`StudentisedZ`
WelchZ = StudentisedZ


def studentise(
    decode,
    W: np.ndarray,
    x: np.ndarray,
    grid_t: np.ndarray,
    patient_ids: np.ndarray,
    scheme: str,
    difference: np.ndarray,
    null_differences: NullMaps,
    correction,
    statistic: str,
    *,
    at: np.ndarray | None = None,
    step_scale: np.ndarray | None = None,
    where: str = "cohort mean",
):
    """Observed z, the producer of null z maps, the correction with the studentised pixel statistic, attrs.

    ``W`` (n, D) are the analysed latents, ``x`` (n,) the feature codes the maps see, ``grid_t`` (K,) the grid
    on the fitted scale (class-mean: fractions t), ``patient_ids`` (n,) the patients; ``decode`` maps float32
    latents (B, D) to images (B, H, W) (its ``fn.autocast_bf16`` asks for a bf16-sized step).
    ``u = J (w_i − w̄)`` is computed once from the analysed latents (2 min(n, D) decodes; J at ``at``,
    default the cohort mean, described as ``where``). ``statistic="welch"``: the Welch SE of the
    (permuted) group-mean difference of u, t through its df to z; ``"hc3"``: the HC3 SE of the slope of
    the permuted regression of u on the feature (CR3 over patients when patients have several images, the
    feature is constant within each and the plan moves whole patients), z = t. Step k's SE is ``step_scale[k]`` times
    that (default
    ``|g_k − g_0|``: the grid, on the feature's transformed scale for hc3). The observed map's SE is the
    identity row through the same code as every null row.
    """
    W = np.asarray(W, np.float64)
    n, D = W.shape
    bf16 = bool(getattr(getattr(decode, "fn", decode), "autocast_bf16", False))
    h = finite_difference_step(2.0**-8) if bf16 else finite_difference_step()  # docs/welch.md
    along = "axes" if D <= n else "images"
    u = linearise(decode, W, at=at, along=along, h=h)
    x = np.asarray(x, np.float64)
    how = (
        "along the latent axes (step h x the latent's SD)"
        if along == "axes"
        else "along each w_i - w̄ (step h x |w_i - w̄|)"
    )
    attrs = {
        "statistic": statistic,
        f"{statistic}_linearisation": f"J at {where}, central differences {how}, h={h:.3g}",
        f"{statistic}_decodes": 2 * min(n, D),
    }
    design: WelchDesign | SlopeDesign
    if statistic == "welch":
        design = WelchDesign(u, x, np.asarray(grid_t, np.float64), scheme, step_scale=step_scale)
        description = "welch z (own SE per permutation, Welch-Satterthwaite df -> z)"
    else:
        g = np.asarray(grid_t, np.float64)
        scale = np.abs(g - g[0]) if step_scale is None else np.asarray(step_scale, np.float64)
        clusters = None if scheme == "image" else _patient_clusters(patient_ids, x)
        design = SlopeDesign(u, x, scale, scheme, clusters)
        description = f"hc3 z (slope over its HC3 SE of the permuted fit, delta method at {where}; z = t, no df)"
        attrs["hc3_se"] = (
            "CR3 over patients (several images per patient, feature constant within each)"
            if clusters is not None
            else "HC3 over images"
        )
    d_obs = np.ascontiguousarray(difference.reshape(1, -1))
    se_obs, dof_obs = design.se(np.arange(n)[None])
    observed = studentised_z(d_obs, se_obs, dof_obs).reshape(difference.shape)
    if correction.family_wise:
        stat = StudentisedZ(d_obs[0], se_obs[0], None if dof_obs is None else dof_obs[0], description)
        correction = dataclasses.replace(correction, pixel_statistic=stat)
    return observed, design.null_maps(null_differences), correction, attrs


def _patient_clusters(patient_ids: np.ndarray, x: np.ndarray) -> np.ndarray | None:
    """``patient_ids`` when some patient has several images and ``x`` is constant within every patient."""
    ids = np.asarray(patient_ids).astype(str)
    _, codes = np.unique(ids, return_inverse=True)
    codes = codes.ravel()
    if codes.max(initial=-1) + 1 == ids.size:
        return None
    lo = np.full(codes.max() + 1, np.inf)
    hi = np.full(codes.max() + 1, -np.inf)
    np.minimum.at(lo, codes, x)
    np.maximum.at(hi, codes, x)
    return ids if np.array_equal(lo, hi) else None
