"""Decode a latent trajectory and test every pixel of its differences by permutation.

The observed sequence is ``G(L @ W)``; its differences from step 0 are compared with the differences of
``B`` null sequences, each decoded from the trajectory of permuted latents (the same linear map, no
refitting; see :mod:`seegaan.stats.permutation`). The test itself is :func:`seegaan.stats.permutation_test`;
this module decodes, hands it the observed maps and a producer of null maps, and wraps the result. The
family of tests is every pixel of steps 1..K-1 (step 0 has no difference by definition) within the mask.

The statistic (``statistic=``): ``difference`` tests the decoded difference itself (max-T divides it by
its permutation SD); ``welch`` divides every map -- observed and null -- by its own Welch standard error
from delta-method linearised images and maps the Welch t through its df onto z; ``hc3`` divides every map
of a ``linear`` trajectory by the HC3 standard error of the slope of its own (permuted) regression
(:mod:`seegaan.stats.welch`, ``docs/welch.md``); ``auto`` takes ``welch`` for a class-mean trajectory and
``hc3`` for a linear one, both without covariates (except with ``maxd``, the paper's raw difference), and
``difference`` otherwise (GAM).

The null lines (``null_pivot=``): for a ``linear`` trajectory without covariates every null line pivots by
default at x0, where the fitted level and slope are uncorrelated (``"x0"``,
:meth:`seegaan.InterpolationResult.null_pivot_x0`; hc3 then takes its Jacobian at the observed line's point
ŵ(x0)); ``"mean"`` is the usual null of the permuted fit, through the sample mean latent (the only one for
class-mean, GAM and covariates). ``docs/welch.md``, "Pivoting the null lines at x₀".
Decoding runs in strict fp32 (no TF32) unless the checkpoint decoder was loaded for bf16.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import xarray as xr

from seegaan._internal.choices import (
    NULL_PIVOTS,
    Alternative,
    Backend,
    Correction,
    NullPivot,
    Scheme,
    Statistic,
)
from seegaan._internal.docs import fill_doc
from seegaan._internal.errors import SeegaanError, SeegaanWarning
from seegaan._internal.io import atomic_paths
from seegaan._internal.progress import Progress
from seegaan._internal.summary import Summary
from seegaan._version import __version__
from seegaan.data.cohort import cohort_hash
from seegaan.decoder import load_decoder_on
from seegaan.decoding import NullDifferences, decoding_precision
from seegaan.formats import add_cf_attrs, save_netcdf, write_netcdf
from seegaan.interpolation import InterpolationResult
from seegaan.options import TestOptions
from seegaan.stats.correction import CorrectionOptions
from seegaan.stats.engine import permutation_test
from seegaan.stats.mask import mask_attrs
from seegaan.stats.permutation import draw_permutations
from seegaan.stats.welch import studentise as _studentise
from seegaan.viz.figures import plot_sequence


@dataclass(frozen=True, eq=False)
class SequenceResult:
    """A decoded, permutation-tested SEE-GAAN sequence (immutable).

    Arrays have shape (K, H, W) unless noted; the p-value fields are None when ``n_perm == 0``.
    """

    interpolation: InterpolationResult
    images: np.ndarray
    difference: np.ndarray
    p_value: np.ndarray | None
    p_adjusted: np.ndarray | None
    significant: np.ndarray | None
    null_max: np.ndarray | None = field(repr=False)
    attrs: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def significant_difference(self) -> np.ndarray | None:
        return significant_difference(self.significant, self.difference)

    def to_dataset(self) -> xr.Dataset:
        """The sequence as a Dataset: ``w`` (step, latent), ``image``, ``difference`` and the test (step, y, x)."""
        interp = self.interpolation
        K, H, W = self.images.shape
        dims3 = ("step", "y", "x")
        data = {
            "w": (("step", "latent"), interp.trajectory.astype(np.float32)),
            "image": (dims3, self.images.astype(np.float32)),
            "difference": (dims3, self.difference.astype(np.float32)),
        }
        if self.p_value is not None:
            data.update(
                {
                    "p_value": (dims3, self.p_value.astype(np.float64)),
                    "p_adjusted": (dims3, self.p_adjusted.astype(np.float64)),
                    "significant": (dims3, self.significant.astype(bool)),
                    "significant_difference": (dims3, self.significant_difference),
                }
            )
        coords = {"step": np.arange(K), "feature_value": ("step", interp.grid.astype(np.float64))}
        ds = xr.Dataset(data, coords=coords, attrs=dict(self.attrs))
        ds["feature_value"].attrs["units"] = "fraction from first to second level" if interp.levels else interp.feature

        return add_cf_attrs(ds, "sequence")

    def summary(self) -> Summary:
        a = self.attrs
        lines = [
            ("feature", f"{a['feature']} ({a['method']})"),
            ("compared", _comparison(self.interpolation)),
            ("steps", str(self.images.shape[0])),
            ("image size", f"{self.images.shape[1]}x{self.images.shape[2]}"),
            ("permutations", f"{a['n_perm']} ({a['permutation_scheme']})"),
        ]
        if self.p_value is not None:
            sig = self.significant[1:]
            lines += [("correction", f"{a['correction']} at alpha {a['alpha']}")]
            if "statistic" in a:
                label = STATISTIC_LABELS.get(a["statistic"], a["statistic"])
                if a.get("null_pivot") == "x0":
                    label = label.replace("at the cohort mean", "at ŵ(x0)")
                lines.append(("statistic", label))
            if a.get("null_pivot") == "x0":
                lines.append(
                    (
                        "null lines",
                        f"pivot at x0 = {a['x0']:.6g} (x0 - mean {a['x0_shift']:+.4g}"
                        f"{' on the log scale' if a['transform'] == 'log' else ''})",
                    )
                )
            elif "null_pivot" in a:
                lines.append(("null lines", "through the mean latent (exact under exchangeability)"))
            if "sd_offset" in a:
                how = "plain studentised max-T" if a["sd_offset"] == "0" else a["sd_offset"]
                lines.append(("SD offset s0", f"{a['sd_offset_value']:.4g} ({how})"))
            if "mask_pixels" in a:
                lines.append(
                    ("mask", f"{a['mask_pixels']} of {self.images.shape[1] * self.images.shape[2]} pixels tested")
                )
            if a.get("min_change", 0) > 0:
                lines.append(("minimum change", f"{a['min_change']:g} image units (|change| must exceed it)"))
            lines += [
                ("alternative", a["alternative"]),
                ("smallest attainable p", f"{a['smallest_p']:.4g}"),
                ("significant pixels", f"{int(sig.sum())} of {sig.size} ({100 * sig.mean():.2f}%)"),
            ]
            per_step = ", ".join(str(int(s.sum())) for s in self.significant)
            lines.append(("significant per step", per_step))
        lines += [("seed", str(a["seed"])), ("decoder", a["decoder"])]
        lines += [(f"warning {i + 1}", w) for i, w in enumerate(self.warnings)]
        return Summary(title="SEE-GAAN sequence", lines=tuple(lines))

    def plot(self, path=None, **kwargs):
        """Figure like the paper's Fig. 1c; see :func:`seegaan.viz.figures.plot_sequence`."""
        return plot_sequence(self.to_dataset(), path=path, **kwargs)

    def save(self, nc, png=None, *, overwrite: bool = False):
        """Write the netCDF file and, when ``png`` is given, the figure: both or neither.

        Both are written to temporary files beside their targets and renamed only when both were written;
        an existing file is refused unless ``overwrite``.

        Returns
        -------
        nc, png
        """
        dataset = self.to_dataset()
        # one block for both files: a Ctrl-C while the figure is written drops the netCDF file too
        with atomic_paths([nc, png], overwrite=overwrite) as (tmp_nc, tmp_png):
            write_netcdf(dataset, tmp_nc)
            if tmp_png is not None:
                self.plot(tmp_png)
        return nc, png


def significant_difference(significant: np.ndarray | None, difference: np.ndarray) -> np.ndarray | None:
    """The difference where significant, 0 elsewhere (float32); None for an untested sequence."""
    if significant is None:
        return None
    return np.where(significant, difference, 0.0).astype(np.float32)


def _comparison(interp: InterpolationResult) -> str:
    """What is compared, in the feature's own terms: ``"sex: F (128) -> M (119)"`` or the grid and n."""
    if interp.levels:
        codes = np.asarray(interp.feature_codes)
        a, b = interp.levels
        return f"{interp.feature}: {a} ({int((codes == 0).sum())}) -> {b} ({int((codes == 1).sum())})"
    grid = interp.grid
    unit = "" if interp.transform == "none" else f", fitted on {interp.transform}({interp.feature})"
    return (
        f"{interp.feature} from {grid[0]:.4g} to {grid[-1]:.4g} in {grid.size} steps, "
        f"{int(interp.image_index.size)} images{unit}"
    )


def model_mismatch(cohort_model: str, decoder_id: str) -> str | None:
    """A warning when the cohort was encoded by a checkpoint other than the decoder (their sha256 differ)."""
    hashes = [re.findall(r"sha256:([0-9a-f]{64})", str(x)) for x in (cohort_model, decoder_id)]
    if hashes[0] and hashes[1] and hashes[0][0] != hashes[1][0]:
        return (
            f"the cohort was encoded by {cohort_model} but is decoded by {decoder_id}: different checkpoints "
            "(sha256 differ), so the latents may not mean the same images; decode with the encoding checkpoint"
        )
    return None


def _attrs_for(
    *,
    interp: InterpolationResult,
    decoder_id: str,
    n_perm: int,
    scheme: str,
    correction: str,
    alpha: float,
    alternative: str,
    seed,
    command_line: str,
) -> dict:
    lam = interp.lam
    if isinstance(lam, np.ndarray):
        vals, counts = np.unique(lam, return_counts=True)
        lam_txt = "auto (GCV per latent dimension): " + ", ".join(f"{v:g} x{c}" for v, c in zip(vals, counts))
    else:
        lam_txt = "" if lam is None else f"{lam:g}"
    return {
        "feature": interp.feature,
        "method": interp.method,
        "levels": ",".join(interp.levels) if interp.levels else "",
        "grid": ",".join(f"{g:.10g}" for g in interp.grid),
        "transform": interp.transform,
        "covariates": ",".join(interp.covariates),
        "gam_lam": lam_txt,
        "gam_splines": int(interp.n_splines or 0),
        "n_images": int(interp.image_index.size),
        "n_missing": int(interp.n_missing),
        "n_perm": int(n_perm),
        "permutation_scheme": scheme,
        "alternative": alternative,
        "correction": correction if n_perm else "none (no permutation test)",
        "alpha": float(alpha),
        "seed": "" if seed is None else (str(seed) if isinstance(seed, (int, np.integer)) else "generator"),
        "smallest_p": 1.0 / (n_perm + 1) if n_perm else 1.0,
        "decoder": decoder_id,
        "cohort_hash": cohort_hash(interp.cohort),
        "cohort_model": str(interp.cohort.attrs.get("model", "")),
        "seegaan_version": __version__,
        "command_line": command_line,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


@fill_doc
def sequence(
    interp: InterpolationResult,
    decoder,
    *,
    n_perm: int | Literal["exact"] = 1000,
    correction: Correction | CorrectionOptions = "maxt",
    statistic: Statistic = "auto",
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    seed: int | np.random.Generator | None = 0,
    batch_size: int = 16,
    null_cache_mb: float = 1024,
    backend: Backend = "numba",
    scheme: Scheme | None = None,
    mask=None,
    progress: Progress | None = None,
    command_line: str = "",
    client=None,
    null_pivot: NullPivot | None = None,
    device: str = "cpu",
) -> SequenceResult:
    """Decode a trajectory and test its pixels by permutation.

    Parameters
    ----------
    interp : InterpolationResult
        From :func:`seegaan.interpolate`.
    %(decoder)s
    correction : str or options object
        A name for the correction with its defaults, or an options object for other parameters:
        ``"maxt"`` / :class:`~seegaan.stats.MaxT` (default): Westfall–Young max statistic over all pixels and
        steps of the standardised difference z = difference / (permutation SD + s0), family-wise error
        control. ``"maxd"`` / :class:`~seegaan.stats.MaxD`: the same with the raw difference (the paper's
        pixel statistic). ``"tfce"`` / :class:`~seegaan.stats.TFCE`: threshold-free cluster enhancement of z
        within each step, its maximum over steps as the null. ``"cluster"`` / :class:`~seegaan.stats.Cluster`:
        cluster mass; every pixel of a cluster gets the cluster's p. ``"none"``, ``"fdr_bh"``, ``"fdr_by"``,
        ``"bonferroni"``, ``"holm"`` / :class:`~seegaan.stats.PValues`: the paper's uncorrected pixel-wise
        test, or a correction of those p-values.
    statistic : {"auto", "welch", "hc3", "difference"}
        What is tested at every pixel. ``"welch"``: every map (observed and null) over its own Welch
        standard error, from delta-method linearised images ``u_i = J (w_i - w̄)`` (J the decoder Jacobian at
        the cohort mean, by central differences: 2 min(n, D) extra decodes, once), the Welch t mapped
        through its Welch–Satterthwaite df to z; the corrections act on z as it is. Null: equal group
        means; valid when the groups differ in size and spread (asymptotically; exact under
        exchangeability). Class-mean trajectories without covariates only. ``"difference"``: the decoded
        difference (max-T, TFCE and cluster divide it by its permutation SD); exact under exchangeability,
        too liberal when a small group is more variable (class-mean) or when the spread is largest at
        both ends of the feature (linear). ``"hc3"``: every map of a ``linear`` trajectory over the HC3
        SE of the slope of its own permuted regression (residuals and leverages of the permuted fit,
        the same linearised images; cluster-robust CR3 over patients when patients have several images
        and the feature is constant within each), times ``|g_k - g_0|``; z = t (no df). Null: no
        linear association; valid when the spread changes along the feature (asymptotically; exact
        under exchangeability). ``"auto"`` (default): ``welch`` for class-mean and ``hc3`` for linear,
        both without covariates and unless ``correction`` is ``maxd``; else ``difference`` (GAM).
        Recorded as ``statistic`` (with ``<statistic>_linearisation``, ``<statistic>_decodes`` and,
        for hc3, ``hc3_se``).
    %(alpha)s
    %(alternative)s
    null_pivot : {"x0", "mean"}, optional
        Where the null lines of a ``linear`` trajectory pivot. ``"x0"`` (the default for linear trajectories
        without covariates): every null line is ``ŵ(x0) + b*_b (g_k − x0)`` -- the observed line's latent at
        x0, the permutation's own slope -- with x0 where the fitted level and slope are uncorrelated under
        sampling, estimated once from the observed residuals per patient
        (:meth:`~seegaan.InterpolationResult.null_pivot_x0`); with ``hc3`` the Jacobian is taken at ŵ(x0).
        It removes the excess of max-T when the latent spread changes along the feature (50 patients x 3
        images, spread growing 1 -> 2, hc3 FWER 0.117 -> 0.058 at α = 0.05, ``docs/welch.md``); the test is then
        exact under exchangeability only approximately (measured: indistinguishable). ``"mean"`` (the
        default, and the only choice, for class-mean, GAM and covariates): the usual null, every line
        through the sample mean latent; exact under exchangeability by construction. Recorded as
        ``null_pivot`` (and ``x0``, ``x0_shift``).
    %(device)s
    Returns
    -------
    SequenceResult
    """
    if not isinstance(interp, InterpolationResult):
        raise SeegaanError("sequence() needs the result of seegaan.interpolate(...)")
    options = TestOptions.create(
        decoder=decoder,
        n_perm=n_perm,
        correction=correction,
        statistic=statistic,
        alpha=alpha,
        alternative=alternative,
        seed=seed,
        batch_size=batch_size,
        null_cache_mb=null_cache_mb,
        backend=backend,
        scheme=scheme,
        mask=mask,
        device=device,
    )
    return run_sequence(
        interp, decoder, options, null_pivot=null_pivot, progress=progress, command_line=command_line, client=client
    )


def run_sequence(
    interp: InterpolationResult,
    decoder,
    options: TestOptions,
    *,
    null_pivot: NullPivot | None = None,
    progress: Progress | None = None,
    command_line: str = "",
    client=None,
) -> SequenceResult:
    """:func:`sequence` with its test settings already validated (:meth:`TestOptions.create`).

    The options are resolved against the trajectory (statistic, plan, memory of the plan) and the null
    pivot chosen before anything is decoded; the image size and so the mask and the memory of the whole
    test are checked right after the observed trajectory is decoded.
    """
    options = options.resolve(interp)
    statistic, correction = options.statistic, options.correction
    null_pivot = resolve_null_pivot(null_pivot, interp)
    dec = load_decoder_on(decoder, options.device)
    mismatch = model_mismatch(interp.cohort.attrs.get("model", ""), dec.identity)
    if mismatch:
        warnings.warn(mismatch, SeegaanWarning, stacklevel=3)
    pre = (mismatch,) if mismatch else ()
    with decoding_precision(dec) as precision:
        images = dec(interp.trajectory.astype(np.float32))
        if images.shape[0] != interp.n_steps:
            raise SeegaanError(f"decoder returned {images.shape[0]} images for {interp.n_steps} latents")
        difference = images - images[0]
        family = np.ones(difference.shape, bool)
        family[0] = False
        roi = options.family_mask(difference.shape[1:])
        if roi is not None:
            family &= roi[None]
        attrs = dict(
            interp=interp,
            decoder_id=dec.identity,
            alpha=options.alpha,
            alternative=options.alternative,
            seed=options.seed,
            command_line=command_line,
        )
        if not options.tests:
            attrs = _attrs_for(n_perm=0, scheme="none", correction=correction.name, **attrs)
            attrs.update(
                statistic=statistic, null_pivot=null_pivot, precision=precision, **({"warnings": pre[0]} if pre else {})
            )
            return SequenceResult(interp, images, difference, None, None, None, None, attrs, pre)

        # the pivot: computed once from the observed latents, before any permutation; fixed data (like w̄)
        # that travels with the null producer
        x0 = interp.null_pivot_x0() if null_pivot == "x0" else None
        pivot_attrs, studentise_kwargs = {"null_pivot": null_pivot}, None
        if x0 is not None:
            _ = interp.observed_slope  # cached here, so that Dask workers receive it with the trajectory
            pivot_attrs.update(
                x0=_feature_units(x0, interp.transform),
                x0_shift=x0
                - math.fsum(np.asarray(interp.feature_codes, np.float64).tolist()) / interp.feature_codes.size,
            )
            if statistic == "hc3":
                studentise_kwargs = dict(at=interp.pivot_point(x0), where="ŵ(x0)")
        spec = None if client is None else decoder

        def make_null(scheme: str):
            return NullDifferences(interp, dec, scheme, difference.shape, spec=spec, x0=x0, device=options.device)

        test, plan, correction, stat_attrs = _run_test(
            interp,
            dec,
            difference,
            make_null,
            family,
            options,
            progress=progress,
            client=client,
            studentise_kwargs=studentise_kwargs,
        )
    messages = (*pre, *test.messages)
    attrs = _attrs_for(
        n_perm=plan.n_perm, scheme=plan.scheme + (" (exact)" if plan.exact else ""), correction=correction.name, **attrs
    )
    attrs.update(stat_attrs, **pivot_attrs, precision=precision)
    attrs.update(test.attrs, **({} if roi is None else mask_attrs(roi)))
    if messages:
        attrs["warnings"] = "\n".join(messages)
    return SequenceResult(
        interp, images, difference, test.p_value, test.p_adjusted, test.significant, test.null_max, attrs, messages
    )


def _run_test(
    interp: InterpolationResult,
    dec,
    difference: np.ndarray,
    make_null,
    family: np.ndarray,
    options: TestOptions,
    *,
    progress=None,
    client=None,
    studentise_kwargs: dict | None = None,
):
    """The plan and the test of a sequence whose observed difference maps are decoded (``options.tests``).

    Checks the memory of the whole test, draws the plan (an error when it holds only the identity), makes
    the null producer with ``make_null(plan.scheme)``, studentises when the resolved statistic is welch or
    hc3 (:func:`studentise` with ``studentise_kwargs``), runs :func:`seegaan.stats.permutation_test` and
    warns its messages. Returns ``(test, plan, correction, stat_attrs)``.
    """
    statistic, correction = options.statistic, options.correction
    n = int(interp.image_index.size)
    options.check_memory(n, difference.shape, statistic)
    plan = draw_permutations(
        interp.patient_ids,
        options.n_perm,
        feature=interp.feature_codes,
        covariates=bool(interp.covariates),
        scheme=options.scheme,
        seed=options.seed,
    )
    if plan.n_perm == 0:
        raise SeegaanError("exact enumeration found no permutation other than the identity; the cohort is too small")
    observed, null_maps = difference, make_null(plan.scheme)
    stat_attrs = {"statistic": statistic}
    if statistic in ("welch", "hc3"):
        observed, null_maps, correction, stat_attrs = studentise(
            interp, dec, plan.scheme, difference, null_maps, correction, statistic, **(studentise_kwargs or {})
        )
    test = permutation_test(
        observed,
        null_maps,
        plan,
        correction=correction,
        family=family,
        alpha=options.alpha,
        alternative=options.alternative,
        batch_size=options.batch_size,
        null_cache_mb=options.null_cache_mb,
        backend=options.backend,
        progress=progress,
        client=client,
    )
    for msg in test.messages:
        warnings.warn(msg, SeegaanWarning, stacklevel=4)
    return test, plan, correction, stat_attrs


#: how the summary names each statistic
STATISTIC_LABELS = {
    "welch": "Welch z (own SE per permutation, delta method at the cohort mean)",
    "hc3": "HC3 z (slope over its HC3 SE of the permuted fit, delta method at the cohort mean)",
    "difference": "difference",
}


def resolve_null_pivot(null_pivot, interp: InterpolationResult) -> str:
    """``"x0"`` or ``"mean"`` from ``null_pivot=`` (see :func:`sequence`): None gives ``"x0"`` for a linear
    trajectory without covariates and ``"mean"`` otherwise; ``"x0"`` anywhere else is a one-line error."""
    if null_pivot is None:
        return "x0" if interp.method == "linear" and not interp.covariates else "mean"
    if null_pivot not in NULL_PIVOTS:
        raise SeegaanError(f"unknown null pivot {null_pivot!r}; use one of {', '.join(NULL_PIVOTS)}")
    if null_pivot == "x0":
        interp._check_pivot()
    return null_pivot


def _feature_units(code: float, transform: str) -> float:
    """A value of the fitted scale (``feature_codes``) in the feature's own units."""
    return float(np.exp(code)) if transform == "log" else float(code)


def studentise(
    interp: InterpolationResult,
    dec,
    scheme: str,
    difference: np.ndarray,
    null_differences,
    correction,
    statistic: str,
    *,
    at: np.ndarray | None = None,
    step_scale: np.ndarray | None = None,
    where: str = "cohort mean",
):
    """:func:`seegaan.stats.welch.studentise` of a trajectory's latents, feature, grid and patients."""
    return _studentise(
        dec,
        interp.latents,
        interp.feature_codes,
        interp._spec.grid_t,
        interp.patient_ids,
        scheme,
        difference,
        null_differences,
        correction,
        statistic,
        at=at,
        step_scale=step_scale,
        where=where,
    )


def save_sequence(ds: xr.Dataset, path, *, overwrite: bool = False):
    """Write a sequence dataset to netCDF atomically."""
    save_netcdf(ds, path, overwrite=overwrite)
    return path
