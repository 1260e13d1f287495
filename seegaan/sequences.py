"""Decode a latent trajectory and test every pixel of its differences against a null distribution.

The observed sequence is ``G(L @ W)``; its differences from step 0 are compared with the differences of
``B`` null sequences, each decoded for real from a null trajectory through the same linear map ``L``. The
null (``null=``): ``"sign-flip"`` (the default) flips the weighted null model's residual latents, one sign
per patient (:meth:`seegaan.InterpolationResult.flip_trajectories`, :mod:`seegaan.interpolation.nullmodel`);
``"permutation"`` permutes the feature's labels or the latents (:mod:`seegaan.stats.permutation`). The test
itself is :func:`seegaan.stats.permutation_test`; this module decodes, hands it the observed maps and a
producer of null maps, and wraps the result. The family of tests is every pixel of steps 1..K-1 (step 0 has
no difference by definition) within the mask. What each null assumes and how it was calibrated:
``docs/statistics.md``.

Decoding runs in strict fp32 (no TF32) unless the checkpoint decoder was loaded for bf16.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import xarray as xr

from seegaan._internal.choices import Alternative, Backend, Correction, Null, Scheme, Statistic
from seegaan._internal.docs import fill_doc
from seegaan._internal.errors import SeegaanError, SeegaanWarning
from seegaan._internal.io import atomic_paths
from seegaan._internal.progress import Progress
from seegaan._internal.summary import Summary
from seegaan._version import __version__
from seegaan.data.cohort import cohort_hash
from seegaan.decoder import load_decoder_on
from seegaan.decoding import NullDifferences, decoding_precision
from seegaan.formats import add_cf_attrs, save_netcdf, write_netcdf, write_png
from seegaan.interpolation import InterpolationResult
from seegaan.options import TestOptions
from seegaan.stats.correction import CorrectionOptions
from seegaan.stats.engine import permutation_test
from seegaan.stats.mask import mask_attrs
from seegaan.stats.permutation import PermutationPlan, draw_permutations, draw_signflips, patient_count
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
    #: the CNN's prediction at every decoded step (:func:`seegaan.explain.predictions.cnn_along`), or None
    model_prediction: np.ndarray | None = field(default=None, repr=False)

    @property
    def significant_difference(self) -> np.ndarray | None:
        return significant_difference(self.significant, self.difference)

    def to_dataset(self) -> xr.Dataset:
        """The sequence as a Dataset: ``w`` (step, latent), ``image``, ``difference`` and the test (step, y, x);
        ``model_prediction`` (step) when a CNN was run along it."""
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
        if self.model_prediction is not None:
            data["model_prediction"] = (("step",), np.asarray(self.model_prediction, np.float64))
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
            ("null draws", f"{a['n_perm']} ({a['permutation_scheme']})"),
        ]
        if self.p_value is not None:
            sig = self.significant[1:]
            lines += [("correction", f"{a['correction']} at alpha {a['alpha']}")]
            if a.get("null_model"):
                lines.append(("null model", a["null_model"]))
            if "calibration_verdict" in a:
                lines.append(
                    (
                        "calibration",
                        f"family-wise error {a['calibration_fwer']:.3f} [{a['calibration_interval']}] on "
                        f"{a['calibration_n']} null cohorts of these latents: {a['calibration_verdict']}",
                    )
                )
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
        if self.model_prediction is not None:
            preds = ", ".join(f"{v:.4g}" for v in self.model_prediction)
            lines.append(("CNN along the steps", f"{preds} ({a.get('model', '')})"))
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
                write_png(self.plot(), tmp_png)
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
    device: str = "cpu",
    null: Null = "sign-flip",
) -> SequenceResult:
    """Decode a trajectory and test its pixels against the sign-flip (or permutation) null.

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
    statistic : {"auto", "difference"}
        What is tested at every pixel: the decoded difference (max-T, TFCE and cluster divide it by its
        SD over the B + 1 maps). The Welch and HC3 statistics of earlier versions were retired: the
        sign-flip null is valid under unequal spread without linearising the decoder.
    %(alpha)s
    %(alternative)s
    %(device)s
    %(null)s
        Recorded as ``null`` (with ``null_model`` for the sign flips).

    Returns
    -------
    SequenceResult
    """
    if not isinstance(interp, InterpolationResult):
        raise SeegaanError("sequence() needs the result of seegaan.interpolate(...)")
    options = TestOptions.create(
        decoder=decoder,
        n_perm=n_perm,
        null=null,
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
    return run_sequence(interp, decoder, options, progress=progress, command_line=command_line, client=client)


def run_sequence(
    interp: InterpolationResult,
    decoder,
    options: TestOptions,
    *,
    progress: Progress | None = None,
    command_line: str = "",
    client=None,
) -> SequenceResult:
    """:func:`sequence` with its test settings already validated (:meth:`TestOptions.create`).

    The options are resolved against the trajectory (statistic, plan, memory of the plan) and the null
    model of the sign flips is estimated before anything is decoded; the image size and so the mask and
    the memory of the whole test are checked right after the observed trajectory is decoded.
    """
    options = options.resolve(interp)
    statistic, correction = options.statistic, options.correction
    null_model = interp.null_model() if options.tests and options.null == "sign-flip" else None
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
            attrs.update(statistic=statistic, precision=precision, **({"warnings": pre[0]} if pre else {}))
            return SequenceResult(interp, images, difference, None, None, None, None, attrs, pre)

        spec = None if client is None else decoder

        def make_null(scheme: str):
            return NullDifferences(
                interp, dec, scheme, difference.shape, spec=spec, device=options.device, null_model=null_model
            )

        test, plan, correction, stat_attrs = _run_test(
            interp,
            dec,
            difference,
            make_null,
            family,
            options,
            progress=progress,
            client=client,
        )
    messages = (*pre, *test.messages)
    attrs = _attrs_for(
        n_perm=plan.n_perm, scheme=plan.scheme + (" (exact)" if plan.exact else ""), correction=correction.name, **attrs
    )
    attrs.update(stat_attrs, precision=precision, null=options.null)
    if null_model is not None:
        attrs["null_model"] = null_model.description()
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
):
    """The plan and the test of a sequence whose observed difference maps are decoded (``options.tests``).

    Checks the memory of the whole test, draws the plan (:func:`draw_plan`), makes the null producer with
    ``make_null(plan.scheme)``, runs :func:`seegaan.stats.permutation_test` and warns its messages (and
    when few patients make the sign flips coarse). Returns ``(test, plan, correction, stat_attrs)``.
    """
    statistic, correction = options.statistic, options.correction
    n = int(interp.image_index.size)
    options.check_memory(n, difference.shape)
    plan = draw_plan(interp, options)
    null_maps = make_null(plan.scheme)
    stat_attrs = {"statistic": statistic}
    test = permutation_test(
        difference,
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
    note = few_patients_note(interp, options)
    messages = (*(() if note is None else (note,)), *test.messages)
    for msg in messages:
        warnings.warn(msg, SeegaanWarning, stacklevel=4)
    return dataclasses.replace(test, messages=messages), plan, correction, stat_attrs


#: with fewer patients than this the sign flips get a warning (measured: 20 patients x 2 images, a linear
#: trajectory: 0.070 [0.049, 0.096]; 28 patients in two classes: 0.007-0.037; docs/statistics.md)
FEW_PATIENTS = 40


def draw_plan(interp: InterpolationResult, options: TestOptions) -> PermutationPlan:
    """The null draws of a test, all before any decoding: sign flips (one per patient) or permutations.

    A one-line error when an exact enumeration holds only the identity.
    """
    if options.null == "sign-flip":
        plan = draw_signflips(interp.patient_ids, options.n_perm, seed=options.seed)
    else:
        plan = draw_permutations(
            interp.patient_ids,
            options.n_perm,
            feature=interp.feature_codes,
            covariates=bool(interp.covariates),
            scheme=options.scheme,
            seed=options.seed,
        )
    if plan.n_perm == 0:
        raise SeegaanError("exact enumeration found no null draw other than the identity; the cohort is too small")
    return plan


def few_patients_note(interp: InterpolationResult, options: TestOptions) -> str | None:
    """A warning when the sign flips have few patients to flip (conservative; the permutation null is exact
    and more powerful when the patients are exchangeable)."""
    if options.null != "sign-flip" or not options.tests:
        return None
    patients = patient_count(interp.patient_ids)
    if patients >= FEW_PATIENTS:
        return None
    return (
        f"only {patients} patients: the sign-flip null is approximate with few patients (measured family-wise "
        "errors 0.01-0.07 at 20-28 patients, docs/statistics.md); if the groups have equal spread (exchangeable "
        "patients), --null permutation is exact and more powerful"
    )


def save_sequence(ds: xr.Dataset, path, *, overwrite: bool = False):
    """Write a sequence dataset to netCDF atomically."""
    save_netcdf(ds, path, overwrite=overwrite)
    return path
