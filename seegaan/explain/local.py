"""Local sequences: how one image would change along a feature, with tested pixels.

The image's latent ``w_E`` is moved, never the cohort mean:

class feature (boolean or categorical)
    ``w(λ) = w_E + λ (w̄_desired − w̄_current)`` (the paper's local direction,
    :func:`seegaan.explain.local_direction`); ``current`` is the image's own level unless ``levels`` names
    another. λ = 1 moves the image by the whole difference of the two group means.
numeric feature
    ``w(v) = w_E + T(v) − T(v_E)``: the image follows the fitted *global* trajectory T
    (:func:`seegaan.interpolate`, evaluated on the grid ``[v_E, *values]``) from its own value v_E to each
    target value v.

The image itself is left out of the groups (class) or of the global fit (numeric) that make its
direction -- in the observed direction and in every null draw -- so that the test does not compare the
image with a direction it helped to make (an atypical image pulls its own group's mean; counted twice, it
made the test liberal).

The differences ``G(w(λ)) − G(w_E)`` are tested pixel by pixel against null directions of the other
images: by default their weighted null model's residual latents get one random sign per patient
(:meth:`seegaan.InterpolationResult.flip_trajectories`), with ``null="permutation"`` their labels are
permuted (:func:`seegaan.stats.permutation.draw_permutations`, patient blocks respected); the null map of a
draw is ``G(w_E + λ Δ_b) − G(w_E)`` (numeric: ``G(w_E + T_b(v) − T_b(v_E)) − G(w_E)``), the observed one is
the identity draw through the same code. The corrections are those of global sequences
(:func:`seegaan.stats.permutation_test`). A step where the latent is ``w_E`` itself (λ = 0, or v = v_E) is
``G(w_E)`` bit for bit and is not tested.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import xarray as xr

from seegaan._internal.choices import Alternative, Backend, Correction, Method, Null, Transform
from seegaan._internal.docs import fill_doc
from seegaan._internal.errors import SeegaanError, SeegaanWarning
from seegaan._internal.memory import check_steps_memory
from seegaan._internal.progress import Progress
from seegaan._internal.summary import Summary
from seegaan.data.cohort import feature_kind, feature_missing, get_feature, validate_cohort
from seegaan.decoder import load_decoder_on
from seegaan.decoding import LocalNulls, check_shippable, decoding_precision, local_frames
from seegaan.explain.counterfactual import Direction, ExplainResult, _image_index, local_direction
from seegaan.explain.counterfactual import source_image as _source_image
from seegaan.formats import add_cf_attrs, save_figure
from seegaan.interpolation import interpolate
from seegaan.options import TestOptions
from seegaan.sequences import Statistic, _attrs_for, _run_test, model_mismatch, significant_difference
from seegaan.stats.mask import mask_attrs
from seegaan.viz.figures import cnn_label, panel_steps

#: λ values when none are given: from the image (0) to a whole mean difference (1)
DEFAULT_LAMBDAS = "0:1:5"
#: the most λ values, target values or steps a user may ask for (memory is checked as well, by image size)
MAX_STEPS = 100_000
#: target values of a numeric feature when none are given (5th to 95th percentile, as ``interpolate``)
DEFAULT_STEPS = 5


# --------------------------------------------------------------------------------------------------
# option parsing (cheap, before any work)
# --------------------------------------------------------------------------------------------------
def parse_lambdas(lambdas) -> np.ndarray:
    """λ values from ``"A:B:N"`` (N evenly spaced values from A to B) or numbers; all finite and >= 0."""
    if isinstance(lambdas, str) and ":" in lambdas:
        parts = lambdas.split(":")
        try:
            a, b, k = float(parts[0]), float(parts[1]), parts[2] if len(parts) == 3 else ""
            n = int(k)
        except (ValueError, IndexError):
            raise SeegaanError(
                f"--lambdas must be A:B:N (N evenly spaced values from A to B) or 'v1,v2,...', not {lambdas!r}"
            ) from None
        if len(parts) != 3 or not (np.isfinite(a) and np.isfinite(b)):
            raise SeegaanError(f"--lambdas must be A:B:N with finite A and B, not {lambdas!r}")
        if not a < b:
            raise SeegaanError(f"--lambdas {lambdas}: the range is reversed or empty; give A:B:N with A < B")
        if n < 2:
            raise SeegaanError(f"--lambdas {lambdas}: N must be at least 2 (the number of λ values)")
        if n > MAX_STEPS:
            raise SeegaanError(f"--lambdas {lambdas}: N must be at most {MAX_STEPS:,} λ values")
        lam = np.linspace(a, b, n)
    else:
        lam = _numbers(lambdas, "--lambdas")
    if (lam < 0).any():
        raise SeegaanError(f"λ must be >= 0 (got {lam.min():g}): λ = 0 is the image, λ = 1 a whole mean difference")
    if not (lam > 0).any():
        raise SeegaanError("give at least one λ > 0 (λ = 0 is the image itself)")
    return lam


def _numbers(values, what: str) -> np.ndarray:
    try:
        if isinstance(values, str):
            out = np.array([float(v) for v in values.split(",")])
        else:
            out = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise SeegaanError(f"{what} must be comma-separated numbers, not {values!r}") from None
    if out.size == 0 or not np.isfinite(out).all():
        raise SeegaanError(f"{what} must be one or more finite numbers, not {values!r}")
    return out


# --------------------------------------------------------------------------------------------------
# result
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class LocalResult:
    """A permutation-tested local sequence of one image (immutable).

    Attributes
    ----------
    image_id, feature : str
    kind : {"class", "numeric"}
        ``class``: the steps are λ; ``numeric``: the steps are feature values.
    steps : ndarray (K,)
        λ values or target feature values.
    latents : ndarray (K, D)
        ``w(step)`` (float64); rows at the image are ``w_E`` itself.
    w_image : ndarray (D,)
    reconstruction : ndarray (H, W)
        ``G(w_E)``.
    images, difference : ndarray (K, H, W)
        ``G(w(step))`` and ``G(w(step)) − G(w_E)``.
    p_value, p_adjusted, significant : ndarray (K, H, W) or None
        None when ``n_perm == 0``.
    source_image : ndarray (H, W) or None
        The original radiograph, when found.
    direction : Direction or None
        Class features: the local direction.
    """

    image_id: str
    feature: str
    kind: str
    steps: np.ndarray
    latents: np.ndarray = field(repr=False)
    w_image: np.ndarray = field(repr=False)
    reconstruction: np.ndarray = field(repr=False)
    images: np.ndarray = field(repr=False)
    difference: np.ndarray = field(repr=False)
    p_value: np.ndarray | None = field(repr=False)
    p_adjusted: np.ndarray | None = field(repr=False)
    significant: np.ndarray | None = field(repr=False)
    null_max: np.ndarray | None = field(repr=False)
    source_image: np.ndarray | None = field(repr=False)
    direction: Direction | None = field(repr=False)
    attrs: dict = field(default_factory=dict, repr=False)
    warnings: tuple[str, ...] = ()
    #: the CNN's prediction at every step (:func:`seegaan.explain.predictions.cnn_along`), or None
    model_prediction: np.ndarray | None = field(default=None, repr=False)

    @property
    def step_name(self) -> str:
        return "lambda" if self.kind == "class" else "feature_value"

    @property
    def significant_difference(self) -> np.ndarray | None:
        return significant_difference(self.significant, self.difference)

    def to_dataset(self) -> xr.Dataset:
        """``image``, ``difference`` and the test (step, y, x) with the step coordinate ``lambda`` or
        ``feature_value``; ``w`` (step, latent), ``w_image`` (latent), ``reconstruction`` and
        ``source_image`` (y, x); attrs as in :attr:`attrs`."""
        dims3 = ("step", "y", "x")
        data = {
            "w": (("step", "latent"), self.latents.astype(np.float32)),
            "w_image": (("latent",), self.w_image.astype(np.float32)),
            "reconstruction": (("y", "x"), self.reconstruction.astype(np.float32)),
            "image": (dims3, self.images.astype(np.float32)),
            "difference": (dims3, self.difference.astype(np.float32)),
        }
        if self.direction is not None:
            data["direction"] = (("latent",), self.direction.delta.astype(np.float32))
        if self.source_image is not None:
            data["source_image"] = (("y", "x"), self.source_image.astype(np.float32))
        if self.model_prediction is not None:
            data["model_prediction"] = (("step",), np.asarray(self.model_prediction, np.float64))
        if self.p_value is not None:
            data.update(
                {
                    "p_value": (dims3, self.p_value.astype(np.float64)),
                    "p_adjusted": (dims3, self.p_adjusted.astype(np.float64)),
                    "significant": (dims3, self.significant.astype(bool)),
                    "significant_difference": (dims3, self.significant_difference),
                }
            )
        coords = {"step": np.arange(self.steps.size), self.step_name: ("step", self.steps.astype(np.float64))}
        ds = xr.Dataset(data, coords=coords, attrs=dict(self.attrs))
        ds[self.step_name].attrs["units"] = (
            "multiples of the mean difference desired - current" if self.kind == "class" else self.feature
        )

        return add_cf_attrs(ds, "sequence")

    def summary(self) -> Summary:
        a = self.attrs
        if self.kind == "class":
            d = self.direction
            how = f"{d.current_label} (n={d.n_current}) -> {d.desired_label} (n={d.n_desired}), |Δw| = {d.norm:.4g}"
            steps = ", ".join(f"{s:g}" for s in self.steps)
        else:
            how = f"along the {a['method']} trajectory from the image's value {a['image_value']:.6g}"
            steps = ", ".join(f"{s:.4g}" for s in self.steps)
        lines = [
            ("image", self.image_id),
            ("feature", f"{self.feature}: {how}"),
            ("λ" if self.kind == "class" else "values", steps),
            ("image size", f"{self.images.shape[1]}x{self.images.shape[2]}"),
            ("original image", "shown" if self.source_image is not None else "not found (reconstruction only)"),
            ("permutations", f"{a['n_perm']} ({a['permutation_scheme']})"),
        ]
        if self.p_value is not None:
            tested = self.significant[np.asarray(self.latents != self.w_image).any(axis=1)]
            lines += [
                ("correction", f"{a['correction']} at alpha {a['alpha']}"),
                ("statistic", a["statistic"]),
                ("alternative", a["alternative"]),
                ("smallest attainable p", f"{a['smallest_p']:.4g}"),
                ("significant pixels", f"{int(tested.sum())} of {tested.size}"),
                ("significant per step", ", ".join(str(int(s.sum())) for s in self.significant)),
            ]
        lines += [("seed", str(a["seed"])), ("decoder", a["decoder"])]
        lines += [(f"warning {i + 1}", w) for i, w in enumerate(self.warnings)]
        return Summary(title="SEE-GAAN local sequence", lines=tuple(lines))

    def plot(self, path=None, **kwargs):
        """Original (when found), reconstruction, frames and significant differences; see :func:`plot_local`."""
        return plot_local(self.to_dataset(), path=path, **kwargs)

    # netCDF and figure, both or neither, atomically; ``inputs`` (cohort, decoder) may not be overwritten
    save = ExplainResult.save


# --------------------------------------------------------------------------------------------------
# decoding along offsets from w_E
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Path:
    """How a direction (or a trajectory) turns into offsets from w_E at every step."""

    kind: str
    steps: np.ndarray  # λ (class) or target values (numeric)
    moving: np.ndarray  # steps whose latent is not w_E

    def offsets(self, trajectories: np.ndarray) -> np.ndarray:
        """(nb, K, D) offsets from trajectories (nb, 2 or K + 1, D) on the grid ``[0, 1]`` / ``[v_E, *values]``."""
        if self.kind == "class":
            delta = trajectories[:, 1] - trajectories[:, 0]
            out = self.steps[None, :, None] * delta[:, None, :]
        else:
            out = trajectories[:, 1:] - trajectories[:, :1]
        out[:, ~self.moving] = 0.0
        return out


# --------------------------------------------------------------------------------------------------
# the public function
# --------------------------------------------------------------------------------------------------
def _adjusted_for(covariates) -> str:
    return f", adjusted for {', '.join(covariates)}" if covariates else ""


@fill_doc
def local_sequence(
    cohort: xr.Dataset,
    decoder,
    *,
    image_id: str,
    feature: str,
    levels: str | Sequence[str] | None = None,
    lambdas=None,
    values=None,
    method: Method = "auto",
    transform: Transform = "none",
    gam_lam: float | str = 0.6,
    n_perm: int | Literal["exact"] = 1000,
    correction: Correction | object = "maxt",
    statistic: Statistic = "auto",
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    seed: int | np.random.Generator | None = 0,
    batch_size: int = 16,
    null_cache_mb: float = 1024,
    backend: Backend = "numba",
    mask=None,
    images: str | os.PathLike | None = None,
    progress: Progress | None = None,
    command_line: str = "",
    client=None,
    device: str = "cpu",
    null: Null = "sign-flip",
    adjust: Sequence[str] | str | None = None,
) -> LocalResult:
    """Move one image along a feature and test every pixel of its change by permutation.

    Parameters
    ----------
    cohort : xarray.Dataset
        A latent cohort holding the image.
    %(decoder)s
    image_id : str
        The image to move (its latent is w_E).
    feature : str
        A class feature (local direction) or a numeric one (the global trajectory), see the module docstring.
    levels : "CURRENT,DESIRED", optional
        Class features: the two levels (default: the image's own and the other one).
    lambdas : "A:B:N" or numbers, optional
        Class features: the λ values (>= 0), default ``"0:1:5"``.
    values : "v1,v2,..." or numbers, optional
        Numeric features: the target values; default the 5th to 95th percentile in 5 steps.
    method : {"auto", "linear", "gam"}
        Numeric features: the global trajectory T (auto: gam); ``transform``, ``gam_lam`` as for
        :func:`seegaan.interpolate`.
    %(n_perm)s
    correction : str or options object
        As for :func:`seegaan.sequence` (``maxt`` default).
    statistic : {"auto", "difference"}
        The decoded difference (as :func:`seegaan.sequence`).
    %(alpha)s
    %(alternative)s
    %(seed)s
    %(batch_size)s
    %(null_cache_mb)s
    %(backend)s
    %(mask)s
    images : path, optional
        Folder of the cohort's radiographs: the original of ``image_id`` is read
        (:func:`seegaan.data.load_dataset` at the cohort's ``image_size``) and shown in the figure.
    %(progress)s
    %(command_line)s
    %(client)s
    %(device)s
    %(null)s
        The image itself is left out of the groups (class) or the global fit (numeric) that make its
        direction, in the observed direction and in every null draw.
    adjust : list of str or "A,B", optional
        Covariates held fixed: the direction is the covariate-adjusted difference of the class means (or the
        covariate-adjusted global trajectory), from the same design as an adjusted global sequence
        (:func:`seegaan.interpolate`; Freedman–Lane under ``null="permutation"``).

    Returns
    -------
    LocalResult
    """
    # cheap checks first, in the order a user fixes them
    if client is not None:
        check_shippable(decoder)
    validate_cohort(cohort)
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
        mask=mask,
        device=device,
        null=null,
    )
    index = _image_index(cohort, image_id)
    # the image is left out of every group and fit that makes its direction (observed and null)
    others = cohort.isel(image=np.delete(np.arange(cohort.sizes["image"]), index))
    values_all = get_feature(cohort, feature)
    is_class = feature_kind(values_all) != "numeric"
    direction = None
    if is_class:
        if values is not None:
            raise SeegaanError(
                f"{feature!r} is a class feature: give --lambdas (multiples of the mean difference), not --values"
            )
        if method not in ("auto", "class-mean"):
            raise SeegaanError(f"--method applies to numeric features; {feature!r} is a class feature")
        steps = parse_lambdas(DEFAULT_LAMBDAS if lambdas is None else lambdas)
        chosen = local_direction(cohort, image_id=image_id, feature=feature, levels=levels)
        interp = interpolate(
            others,
            feature=feature,
            method="class-mean",
            levels=(chosen.current_label, chosen.desired_label),
            grid=[0.0, 1.0],
            adjust=adjust,
        )
        codes = np.asarray(interp.feature_codes)
        direction = dataclasses.replace(
            chosen,
            delta=interp.trajectory[1] - interp.trajectory[0],
            current=interp.trajectory[0],
            desired=interp.trajectory[1],
            n_current=int((codes == 0).sum()),
            n_desired=int((codes == 1).sum()),
            basis=f"{chosen.basis}, the image left out" + _adjusted_for(interp.covariates),
        )
        moving = steps != 0
    else:
        if levels is not None:
            raise SeegaanError(f"--levels applies to class features; {feature!r} is numeric")
        if lambdas is not None:
            raise SeegaanError(f"{feature!r} is numeric: give target --values, not --lambdas")
        if feature_missing(values_all)[index]:
            raise SeegaanError(
                f"image {image_id!r} has no value of {feature!r}, so it has no place on the "
                "trajectory; choose another image"
            )
        own = float(values_all[index])
        if values is None:
            steps = interpolate(
                cohort, feature=feature, method=method, transform=transform, gam_lam=gam_lam, steps=DEFAULT_STEPS
            ).grid
        else:
            steps = _numbers(values, "--values")
        if not (steps != own).any():
            raise SeegaanError(f"every target value equals the image's own {feature} ({own:g}); give other --values")
        interp = interpolate(
            others,
            feature=feature,
            method=method,
            transform=transform,
            gam_lam=gam_lam,
            grid=np.concatenate([[own], steps]),
            adjust=adjust,
        )
        if interp.method == "class-mean":
            raise SeegaanError(f"{feature!r} has two values: treat it as a class (levels) or give --method linear")
        moving = steps != own
    check_steps_memory(len(steps), cohort.attrs.get("image_size"), "--lambdas" if is_class else "--values")
    options = options.resolve(interp)
    correction = options.correction
    null_model = interp.null_model() if options.tests and options.null == "sign-flip" else None
    size = int(cohort.attrs.get("image_size", 0) or 0) or None
    source = None if images is None else _source_image(images, image_id, size)

    path = _Path("class" if is_class else "numeric", steps, moving)
    dec = load_decoder_on(decoder, options.device)
    mismatch = model_mismatch(cohort.attrs.get("model", ""), dec.identity)
    if mismatch:
        warnings.warn(mismatch, SeegaanWarning, stacklevel=2)
    together = bool(getattr(dec.fn, "batch_invariant", False))
    w_image = cohort["w"].values[index].astype(np.float64)
    # the observed offsets through the same code as every null row (the identity row reproduces them bit for
    # bit, as an exact permutation test needs); for a class this is lambda (mean_desired - mean_current)
    observed_offsets = path.offsets(interp.trajectory[None])
    with decoding_precision(dec) as precision:
        reconstruction = dec(w_image[None].astype(np.float32))[0]  # G(w_E) as it is defined
        frames = local_frames(dec, w_image, observed_offsets, moving, reconstruction, together)[0]
        difference = frames - reconstruction
        family = np.broadcast_to(moving[:, None, None], difference.shape).copy()
        roi = options.family_mask(difference.shape[1:])
        if roi is not None:
            family &= roi[None]
        base = dict(
            interp=interp,
            decoder_id=dec.identity,
            alpha=options.alpha,
            alternative=options.alternative,
            seed=options.seed,
            command_line=command_line,
        )

        def make_null(scheme: str):
            return LocalNulls(
                interp,
                dec,
                scheme,
                path,
                w_image,
                reconstruction,
                spec=None if client is None else decoder,
                device=options.device,
                null_model=null_model,
            )

        test, messages, stat_attrs = None, (), {"statistic": options.statistic}
        if options.tests:
            test, plan, correction, stat_attrs = _run_test(
                interp, dec, difference, make_null, family, options, progress=progress, client=client
            )
            messages = test.messages
    if test is None:
        attrs = _attrs_for(n_perm=0, scheme="none", correction=correction.name, **base)
    else:
        attrs = _attrs_for(
            n_perm=plan.n_perm,
            scheme=plan.scheme + (" (exact)" if plan.exact else ""),
            correction=correction.name,
            **base,
        )
        attrs.update(test.attrs, **({} if roi is None else mask_attrs(roi)))
    shift = np.linalg.norm(observed_offsets[0], axis=1)
    attrs.update(
        stat_attrs,
        null=options.null,
        **({} if null_model is None else {"null_model": null_model.description()}),
        image_left_out=1,
        adjust=",".join(interp.covariates),
        precision=precision,
        image_id=str(image_id),
        local_kind=path.kind,
        step_coordinate=("lambda" if is_class else "feature_value"),
        steps=",".join(f"{s:.10g}" for s in steps),
        shift_norms=",".join(f"{s:.6g}" for s in shift),
        source_image="shown" if source is not None else "",
    )
    if is_class:
        attrs.update(
            levels=f"{direction.current_label},{direction.desired_label}",
            direction_norm=direction.norm,
            current=direction.current_label,
            desired=direction.desired_label,
            n_current=direction.n_current,
            n_desired=direction.n_desired,
        )
    else:
        attrs.update(image_value=own, direction_norm=float(shift.max()))
    latents = w_image[None] + observed_offsets[0]
    return LocalResult(
        image_id=str(image_id),
        feature=feature,
        kind=path.kind,
        steps=np.asarray(steps, np.float64),
        latents=latents,
        w_image=w_image,
        reconstruction=reconstruction,
        images=frames,
        difference=difference,
        p_value=None if test is None else test.p_value,
        p_adjusted=None if test is None else test.p_adjusted,
        significant=None if test is None else test.significant,
        null_max=None if test is None else test.null_max,
        source_image=source,
        direction=direction,
        attrs=attrs,
        warnings=tuple(messages),
    )


# --------------------------------------------------------------------------------------------------
# figure
# --------------------------------------------------------------------------------------------------
def plot_local(ds: xr.Dataset, path=None, *, max_steps: int | None = None, dpi: int = 150, overwrite: bool = False):
    """Plot a local sequence dataset.

    Top row: the original radiograph (when the dataset has ``source_image``), the reconstruction G(w_E) and
    the decoded frames; bottom row, under each frame: the significant differences (or the raw ones without
    a test) in ``Spectral_r`` with symmetric limits over the faded frame, and one colour bar.

    Returns
    -------
    matplotlib.figure.Figure
        Outside pyplot (no backend is chosen); written atomically to ``path`` when given.
    """
    from matplotlib.figure import Figure  # deferred: matplotlib (heavy, figures only)

    step_name = "lambda" if "lambda" in ds.coords else "feature_value"
    steps, tested, diff, lim = panel_steps(ds, max_steps)
    lead = ["source_image"] if "source_image" in ds else []
    lead.append("reconstruction")
    ncol = len(lead) + len(steps)
    fig = Figure(figsize=(1.9 * ncol + 0.8, 4.3), layout="constrained")
    axes = fig.subplots(2, ncol, squeeze=False)
    for j, name in enumerate(lead):
        axes[0, j].imshow(ds[name].values, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        axes[0, j].set_title("original" if name == "source_image" else "reconstruction G(w_E)", fontsize=7)
        axes[1, j].set_axis_off()
    im = None
    a = ds.attrs
    for j, k in enumerate(steps, start=len(lead)):
        top, bottom = axes[0, j], axes[1, j]
        frame = ds["image"].values[k]
        value = float(ds[step_name].values[k])
        top.imshow(frame, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        label = f"λ = {value:.3g}" if step_name == "lambda" else f"{a.get('feature', '')} = {value:.4g}"
        top.set_title(label + cnn_label(ds, k), fontsize=7)
        bottom.imshow(frame, cmap="gray", vmin=-1, vmax=1, alpha=0.35, interpolation="nearest")
        shown = np.where(diff[k] != 0, diff[k], np.nan) if tested else diff[k]
        im = bottom.imshow(shown, cmap="Spectral_r", vmin=-lim, vmax=lim, interpolation="nearest")
        if tested:
            bottom.set_title(f"{int(ds['significant'].values[k].sum())} px", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1, len(lead)].set_ylabel("significant Δ" if tested else "Δ (untested)", fontsize=8)
    fig.colorbar(im, ax=axes[1, len(lead) :].tolist(), shrink=0.9, label="image − G(w_E)")
    how = (
        f"{a.get('current')} → {a.get('desired')}"
        if step_name == "lambda"
        else f"{a.get('method')} trajectory from {float(a.get('image_value', np.nan)):.4g}"
    )
    test = (
        f"{a.get('correction')}, α={a.get('alpha')}, B={a.get('n_perm')}, {a.get('statistic')}"
        if tested
        else "no permutation test"
    )
    fig.suptitle(f"{a.get('image_id', '')}: {a.get('feature', '')} ({how}) — {test}", fontsize=9)
    if path is not None:
        save_figure(fig, path, dpi=dpi, overwrite=overwrite)
    return fig
