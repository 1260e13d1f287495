"""Troubleshooting one prediction: how must the image change for the CNN to say ``target``?

The counterfactual moves the image's latent ``w_E`` along the paper's local direction

    w(λ) = w_E + λ (w̄_desired − w̄_current)

and finds λ* where CNN(G(w(λ*))) = target (within ``tol``). The two means come from
:func:`local_direction`:

class feature (boolean or categorical)
    ``current`` = the image's own level, ``desired`` = the other level (a feature with more than two
    levels needs ``levels="CURRENT,DESIRED"``, which may also be given for two).
numeric feature (ground truth, or predictions stored by :func:`seegaan.explain.predictions.predict`)
    the target splits the cohort: when the target lies above the image's prediction, ``desired`` = the
    images with a value ≥ target and ``current`` = those below it (mirrored for a lower target).
no feature
    the same split on the *model's predictions* for the reconstructions G(w_E) of every cohort image
    (one pass of the decoder and CNN over the cohort; to reuse predictions, run ``predict`` first and pass
    its feature name).

λ* is found by scanning ``n_scan`` values over ``lambda_range`` for a sign change of
f(λ) = CNN(G(w(λ))) − target, choosing the bracket nearest λ = 0, and solving it with
:func:`scipy.optimize.brentq`; the answer is checked (|f(λ*)| ≤ tol) and refined once before giving up.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
from scipy.optimize import brentq

from seegaan._internal.docs import fill_doc
from seegaan._internal.errors import SeegaanError, SeegaanWarning
from seegaan._internal.io import atomic_paths, check_output_path
from seegaan._internal.memory import check_steps_memory
from seegaan._internal.progress import Progress, no_progress
from seegaan._internal.summary import Summary
from seegaan._version import __version__
from seegaan.data.cohort import feature_kind, feature_missing, get_feature, validate_cohort
from seegaan.decoder import decoder_device, load_decoder_on
from seegaan.decoding import decoding_precision
from seegaan.explain.attribution import attributions as attribute
from seegaan.explain.attribution import check_attribution_model, check_methods, plot_explanation
from seegaan.explain.cnn import load_model
from seegaan.explain.directions import DIRECTIONS, MINIMAL_STEPS, LatentPath, gradient_path, latent_scale, minimal_path
from seegaan.explain.predictions import image_rows
from seegaan.formats import write_netcdf, write_png
from seegaan.interpolation.fit import _check_covariates, _covariates, _parse_levels
from seegaan.sequences import model_mismatch

#: decoded frames from λ = 0 to λ* kept in the result (the figure's bottom row)
N_FRAMES = 5


# --------------------------------------------------------------------------------------------------
# the direction (shared with local sequences)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Direction:
    """A local latent direction ``delta = desired − current`` (float64, shape (D,)).

    Attributes
    ----------
    delta : ndarray (D,)
        ``w̄_desired − w̄_current``; λ = 1 moves a latent by the whole mean difference.
    current, desired : ndarray (D,)
        The two mean latents.
    current_label, desired_label : str
        What the groups are ("False", "bnpp < 1000", "prediction >= 0.5", ...).
    n_current, n_desired : int
        Images in each group.
    basis : str
        What defined the groups ("feature ahf", "feature bnpp", "model prediction").
    """

    delta: np.ndarray
    current: np.ndarray
    desired: np.ndarray
    current_label: str
    desired_label: str
    n_current: int
    n_desired: int
    basis: str

    @property
    def norm(self) -> float:
        return float(np.linalg.norm(self.delta))

    @property
    def unit(self) -> np.ndarray:
        """The unit direction (D,)."""
        return self.delta / self.norm

    def latents(self, w0: np.ndarray, lambdas) -> np.ndarray:
        """``w0 + λ delta`` for each λ, shape (len(lambdas), D), float64."""
        lam = np.atleast_1d(np.asarray(lambdas, dtype=np.float64))
        return np.asarray(w0, np.float64)[None] + lam[:, None] * self.delta[None]


def _image_index(cohort: xr.Dataset, image_id: str) -> int:
    ids = np.asarray(cohort["image_id"].values).astype(str)
    hit = np.flatnonzero(ids == str(image_id))
    if hit.size == 0:
        raise SeegaanError(
            f"image {image_id!r} is not in the cohort (ids look like {', '.join(ids[:3])}); "
            "give an image_id of the cohort (seegaan-stats inspect)"
        )
    return int(hit[0])


def _class_groups(cohort: xr.Dataset, feature: str, levels, index: int):
    """(current mask, desired mask, current label, desired label) of a class feature."""
    values = get_feature(cohort, feature)
    kind = feature_kind(values)
    missing = feature_missing(values)
    present = np.asarray(values).astype(str)
    found = sorted(set(present[~missing].tolist()))

    levels = _parse_levels(levels)
    if levels is None:
        if missing[index]:
            raise SeegaanError(
                f"image {cohort['image_id'].values[index]!r} has no value of {feature!r}; give --levels CURRENT,DESIRED"
            )
        own = present[index]
        others = [lv for lv in found if lv != own]
        if len(others) != 1:
            raise SeegaanError(
                f"{feature!r} has {len(found)} levels ({', '.join(found[:8])}); choose the two with "
                "--levels CURRENT,DESIRED"
            )
        levels = (own, others[0])
    for lv in levels:
        if lv not in found:
            raise SeegaanError(f"level {lv!r} is not a value of {feature!r}; levels: {', '.join(found[:12])}")
    cur, des = (present == levels[0]) & ~missing, (present == levels[1]) & ~missing
    return cur, des, levels[0], levels[1], kind


def _threshold_groups(values: np.ndarray, target: float, prediction: float, what: str):
    """Split at ``target``: desired = on the target's side, seen from the image's ``prediction``."""
    values = np.asarray(values, np.float64)
    ok = np.isfinite(values)
    up = target > prediction
    if up:
        des, cur = ok & (values >= target), ok & (values < target)
        labels = (f"{what} < {target:g}", f"{what} >= {target:g}")
    else:
        des, cur = ok & (values <= target), ok & (values > target)
        labels = (f"{what} > {target:g}", f"{what} <= {target:g}")
    for group, label in ((des, labels[1]), (cur, labels[0])):
        if not group.any():
            span = f"{np.min(values[ok]):.4g} to {np.max(values[ok]):.4g}" if ok.any() else "no values"
            raise SeegaanError(
                f"no cohort image has {label} (the cohort's {what} range: {span}), so there is no "
                "direction toward the target; choose a target inside that range or give a class "
                "--feature"
            )
    return cur, des, labels[0], labels[1]


def local_direction(
    cohort: xr.Dataset,
    *,
    image_id: str,
    feature: str | None = None,
    levels: str | Sequence[str] | None = None,
    target: float | None = None,
    prediction: float | None = None,
    scores: np.ndarray | None = None,
    adjust: Sequence[str] | str | None = None,
) -> Direction:
    """The local direction of one image (module docstring: how the two groups are chosen).

    Parameters
    ----------
    cohort : xarray.Dataset
        A latent cohort.
    image_id : str
        The image whose direction is wanted (its own level is ``current`` for a class feature).
    feature : str, optional
        A class feature (levels) or a numeric one (split at ``target``).
    levels : "CURRENT,DESIRED" or (CURRENT, DESIRED), optional
        Class features only; default: the image's own level and the other one.
    target, prediction : float, optional
        Numeric split: the target and the image's current prediction (which side is "desired").
    scores : ndarray (n_images,), optional
        Without ``feature``: the model's predictions for every cohort image (the split's values).
    adjust : list of str or "A,B", optional
        Covariates held fixed: the direction is the coefficient of the group indicator in the least-squares
        fit of the latents of both groups on ``[1, indicator, covariates]`` (the design of a covariate-adjusted
        class-mean trajectory), not the plain difference of the group means. Images missing a covariate
        are left out of the fit.

    Returns
    -------
    Direction
    """
    validate_cohort(cohort)
    index = _image_index(cohort, image_id)
    if feature is not None and feature_kind(get_feature(cohort, feature)) != "numeric":
        cur, des, cur_label, des_label, _ = _class_groups(cohort, feature, levels, index)
        basis = f"feature {feature}"
    else:
        if levels is not None:
            raise SeegaanError(f"--levels applies to class features; {feature or 'the model prediction'} is numeric")
        if target is None or prediction is None:
            raise SeegaanError("a numeric split needs the target and the image's prediction")
        if feature is not None:
            values, what, basis = get_feature(cohort, feature).astype(np.float64), feature, f"feature {feature}"
        else:
            if scores is None or np.shape(scores) != (cohort.sizes["image"],):
                raise SeegaanError("without a feature, give the model's predictions for every cohort image (scores)")
            values, what, basis = np.asarray(scores, np.float64), "prediction", "model prediction"
        cur, des, cur_label, des_label = _threshold_groups(values, float(target), float(prediction), what)
    if not cur.any() or not des.any():
        empty = cur_label if not cur.any() else des_label
        raise SeegaanError(f"group {empty!r} of {basis} has no images; choose other --levels")
    w = cohort["w"].values.astype(np.float64)
    current, desired = w[cur].mean(axis=0), w[des].mean(axis=0)
    adjust = _adjust_names(adjust, feature)
    if adjust:
        delta, basis = _adjusted_delta(cohort, w, cur, des, adjust, basis), f"{basis} adjusted for {', '.join(adjust)}"
        current, desired = current, current + delta
    else:
        delta = desired - current
    if not np.linalg.norm(delta) > 0:
        raise SeegaanError(f"the mean latents of {cur_label!r} and {des_label!r} are equal; there is no direction")
    return Direction(
        delta=delta,
        current=current,
        desired=desired,
        current_label=cur_label,
        desired_label=des_label,
        n_current=int(cur.sum()),
        n_desired=int(des.sum()),
        basis=basis,
    )


def _adjust_names(adjust, feature: str | None) -> tuple[str, ...]:
    if isinstance(adjust, str):
        adjust = [a.strip() for a in adjust.split(",") if a.strip()]
    adjust = tuple(adjust or ())
    if feature is not None and feature in adjust:
        raise SeegaanError(f"--adjust {feature} is the feature itself; drop it from --adjust")
    return adjust


def _adjusted_delta(cohort: xr.Dataset, w: np.ndarray, cur: np.ndarray, des: np.ndarray, adjust, basis: str):
    """The group indicator's coefficient in ``w ~ 1 + indicator + covariates`` over both groups' images."""
    rows = np.flatnonzero(cur | des)
    Z, ok, owners = _covariates(cohort, adjust, rows)
    rows, Z = rows[ok], Z[ok]
    indicator = des[rows].astype(np.float64)[:, None]
    if np.ptp(indicator) == 0:
        raise SeegaanError(f"after dropping images missing {', '.join(adjust)}, one group of {basis} is empty")
    _check_covariates(np.column_stack([1.0 - indicator, indicator]), Z, owners, basis)
    X = np.column_stack([np.ones(rows.size), indicator, Z - Z.mean(axis=0)])
    coef = np.linalg.lstsq(X, w[rows], rcond=None)[0]
    return coef[1]


def source_image(images, image_id: str, size: int | None) -> np.ndarray:
    """The radiograph ``image_id`` from folder ``images`` (:func:`seegaan.data.load_dataset`), (H, W)."""
    imageset, rows, missing = image_rows(images, [image_id], size)
    if missing:
        raise SeegaanError(
            f"image {image_id!r} is not in {Path(images)} (image ids are the file names without extension); "
            "point --images at the folder the cohort was encoded from, or leave it out"
        )
    return imageset.array(rows)[0, 0]


# --------------------------------------------------------------------------------------------------
# the λ solve
# --------------------------------------------------------------------------------------------------
def parse_lambda_range(lambda_range) -> tuple[float, float]:
    """``(a, b)`` from a pair or ``"A:B"``; refuses a reversed, empty or non-finite range."""
    if isinstance(lambda_range, str):
        parts = lambda_range.split(":")
        try:
            pair = tuple(float(p) for p in parts)
        except ValueError:
            pair = ()
    else:
        try:
            pair = tuple(float(v) for v in lambda_range)
        except (TypeError, ValueError):
            pair = ()
    if len(pair) != 2 or not np.isfinite(pair).all():
        raise SeegaanError(f"--lambda-range must be two numbers A:B, not {lambda_range!r}")
    if not pair[0] < pair[1]:
        raise SeegaanError(f"--lambda-range {pair[0]:g}:{pair[1]:g} is reversed or empty; give A:B with A < B")
    return pair  # type: ignore[return-value]


def _check_tol(tol) -> float:
    try:
        tol = float(tol)
    except (TypeError, ValueError):
        raise SeegaanError(f"--tol must be a positive number, not {tol!r}") from None
    if not (np.isfinite(tol) and tol > 0):
        raise SeegaanError(f"--tol must be a positive number, not {tol:g}")
    return tol


def _bracket(lams: np.ndarray, g: np.ndarray) -> tuple[float, float] | None:
    """The scan interval with a sign change (or an exact zero) nearest λ = 0, or None."""
    best, best_dist = None, np.inf
    for i in range(lams.size - 1):
        if g[i] == 0 or g[i + 1] == 0 or np.sign(g[i]) != np.sign(g[i + 1]):
            a, b = lams[i], lams[i + 1]
            dist = 0.0 if a <= 0 <= b else min(abs(a), abs(b))
            if dist < best_dist:
                best, best_dist = (float(a), float(b)), dist
    return best


def solve_lambda(f, lams: np.ndarray, preds: np.ndarray, target: float, tol: float) -> tuple[float, float]:
    """λ* with |f(λ*) − target| ≤ tol from a scan (``lams``, ``preds`` = f(lams)); returns (λ*, f(λ*)).

    Raises a one-line SeegaanError naming the closest value reached (and where) when no scan interval
    brackets the target, or where the prediction jumps across it (a step, not a crossing).
    """
    lams = np.asarray(lams, np.float64)
    g = np.asarray(preds, np.float64) - target
    bracket = _bracket(lams, g)
    if bracket is None:
        k = int(np.argmin(np.abs(g)))
        if abs(g[k]) <= tol:
            return float(lams[k]), float(preds[k])
        raise SeegaanError(
            f"the target {target:g} is not reached for λ in [{lams[0]:g}, {lams[-1]:g}]: the closest "
            f"prediction is {preds[k]:.4g} at λ = {lams[k]:.4g}; widen --lambda-range or choose "
            "another target"
        )
    a, b = bracket
    at = dict(zip(lams.tolist(), g.tolist()))
    for end in (a, b):  # a scan point on the target
        if at[end] == 0:
            return end, float(target)
    cache: dict[float, float] = {a: at[a], b: at[b]}

    def fg(lam: float) -> float:
        if lam not in cache:
            cache[lam] = float(f(lam)) - target
        return cache[lam]

    root = a
    for xtol in ((b - a) * 1e-6, (b - a) * 1e-13):  # check, then refine once
        root = brentq(fg, a, b, xtol=xtol, rtol=8.9e-16, maxiter=200)
        if abs(fg(root)) <= tol:
            return float(root), float(fg(root) + target)
    raise SeegaanError(
        f"the prediction jumps across the target {target:g} near λ = {root:.6g} (from "
        f"{at[a] + target:.4g} at λ = {a:.4g} to {at[b] + target:.4g} at λ = {b:.4g}; "
        f"{fg(root) + target:.4g} at the crossing) without reaching it within --tol {tol:g}; "
        "increase --tol or choose another target"
    )


# --------------------------------------------------------------------------------------------------
# result
# --------------------------------------------------------------------------------------------------
def _notes(attrs) -> str:
    notes = str(attrs.get("attribution_notes", ""))
    if not notes:
        return ""
    return (
        f" (notice: {notes}: Grad-CAM keeps positive evidence only, and the CNN has none at this layer for "
        "this image; try another --layer)"
    )


@dataclass(frozen=True, eq=False)
class ExplainResult:
    """A counterfactual for one image (immutable).

    Attributes
    ----------
    image_id : str
    target, tol : float
    lambda_star : float
        λ with |CNN(G(w(λ))) − target| ≤ tol.
    prediction_star, prediction_0 : float
        The CNN's prediction at λ* and for the reconstruction G(w_E) (λ = 0).
    lambdas, predictions : ndarray (n_scan,)
        The scanned λ path and the CNN's predictions along it.
    reconstruction, counterfactual, difference : ndarray (H, W)
        G(w_E), G(w(λ*)) and their difference (counterfactual − reconstruction).
    frame_lambdas, frame_predictions : ndarray (n_frames,)
    frames : ndarray (n_frames, H, W)
        Decoded images from λ = 0 to λ*.
    direction : Direction or LatentPath
        The mean direction, or the path of ``gradient``/``minimal``.
    attributions : dict of str -> ndarray (H, W)
        Attribution maps of the reconstruction (:func:`seegaan.explain.attribution.attributions`), if asked for.
    """

    image_id: str
    target: float
    tol: float
    lambda_star: float
    prediction_star: float
    prediction_0: float
    lambdas: np.ndarray
    predictions: np.ndarray
    reconstruction: np.ndarray
    counterfactual: np.ndarray
    frame_lambdas: np.ndarray
    frame_predictions: np.ndarray
    frames: np.ndarray
    direction: Direction | LatentPath = field(repr=False)
    w_image: np.ndarray = field(repr=False)
    attributions: dict = field(default_factory=dict, repr=False)
    attrs: dict = field(default_factory=dict, repr=False)

    @property
    def difference(self) -> np.ndarray:
        return self.counterfactual - self.reconstruction

    def to_dataset(self) -> xr.Dataset:
        """Variables ``reconstruction``, ``counterfactual``, ``difference`` (y, x), ``prediction`` (lambda),
        ``frames`` (frame, y, x) with ``frame_lambda``/``frame_prediction``, ``attribution_<method>`` (y, x),
        ``direction`` and ``w_image`` (latent); attrs as listed in :attr:`attrs`."""
        yx = ("y", "x")
        data = {
            "reconstruction": (yx, self.reconstruction.astype(np.float32)),
            "counterfactual": (yx, self.counterfactual.astype(np.float32)),
            "difference": (yx, self.difference.astype(np.float32)),
            "prediction": (("lambda",), self.predictions.astype(np.float64)),
            "frames": (("frame", "y", "x"), self.frames.astype(np.float32)),
            "direction": (("latent",), self._direction_vector().astype(np.float32)),
            "w_image": (("latent",), self.w_image.astype(np.float32)),
        }
        coords_path = {}
        if isinstance(self.direction, LatentPath):
            data["path"] = (("path_lambda", "latent"), self.direction.offsets.astype(np.float32))
            coords_path["path_lambda"] = self.direction.knots.astype(np.float64)
        for name, amap in self.attributions.items():
            data[f"attribution_{name}"] = (yx, np.asarray(amap, np.float32))
        coords = {
            "lambda": self.lambdas.astype(np.float64),
            "frame_lambda": ("frame", self.frame_lambdas.astype(np.float64)),
            "frame_prediction": ("frame", self.frame_predictions.astype(np.float64)),
            **coords_path,
        }
        return xr.Dataset(data, coords=coords, attrs=dict(self.attrs))

    def _direction_vector(self) -> np.ndarray:
        """``mean``: Δw; a path: its mean move per unit λ up to λ*, ``(w(λ*) − w_E) / λ*``."""
        d = self.direction
        if isinstance(d, Direction):
            return d.delta
        lam = self.lambda_star if self.lambda_star != 0 else 1.0
        return (d.latents(self.w_image, [self.lambda_star])[0] - self.w_image) / lam

    def summary(self) -> Summary:
        a, d = self.attrs, self.direction
        lines = (
            ("image", self.image_id),
            ("target", f"{self.target:g} (tol {self.tol:g})"),
            ("prediction at λ = 0", f"{self.prediction_0:.4g} (on the reconstruction G(w_E))"),
            *(
                [("prediction on the image", f"{a['prediction_image']:.4g} (gap {a['reconstruction_gap']:+.3g})")]
                if "prediction_image" in a
                else []
            ),
            *([("warning", a["gap_warning"])] if a.get("gap_warning") else []),
            ("λ*", f"{self.lambda_star:.4g}"),
            ("prediction at λ*", f"{self.prediction_star:.4g}"),
            (
                "direction",
                f"mean, {d.basis}: {d.current_label} (n={d.n_current}) -> {d.desired_label} "
                f"(n={d.n_desired}), |Δw| = {d.norm:.4g}"
                if isinstance(d, Direction)
                else f"{d.kind}: {d.describe()}; λ in units of the latent spread {a.get('latent_scale', 0):.4g}",
            ),
            ("λ scanned", f"{self.lambdas[0]:g} to {self.lambdas[-1]:g} ({self.lambdas.size} values)"),
            ("max |difference|", f"{float(np.abs(self.difference).max()):.4g}"),
            ("attributions", (", ".join(self.attributions) or "none") + _notes(a)),
            ("model", str(a.get("model", ""))),
            ("decoder", str(a.get("decoder", ""))),
        )
        return Summary(title="SEE-GAAN explanation", lines=lines)

    def plot(self, path=None, **kwargs):
        """Panel figure like the paper's Fig. 6; see :func:`seegaan.explain.attribution.plot_explanation`."""
        return plot_explanation(self.to_dataset(), path=path, **kwargs)

    def save(self, nc, png=None, *, overwrite: bool = False, inputs: Sequence = ()):
        """Write the netCDF file and, with ``png``, the figure: both or neither, atomically.

        ``inputs`` (cohort, decoder, model files) may not be overwritten.
        """
        check_output_path(nc, overwrite=overwrite, inputs=inputs, suffixes=".nc", others=[png])
        if png is not None:
            check_output_path(png, overwrite=overwrite, inputs=inputs, suffixes=".png", others=[nc])
        ds = self.to_dataset()
        # one block for both files: a Ctrl-C while the figure is written drops the netCDF file too
        with atomic_paths([nc, png], overwrite=overwrite, inputs=inputs, suffixes=[".nc", ".png"]) as temps:
            write_netcdf(ds, temps[0])
            if temps[1] is not None:
                write_png(self.plot(), temps[1])
        return nc, png


# --------------------------------------------------------------------------------------------------
# the public function
# --------------------------------------------------------------------------------------------------
def _predict_latents(
    decoder, model, w: np.ndarray, batch_size: int, progress: Progress
) -> tuple[np.ndarray, np.ndarray]:
    """(images (K, H, W), predictions (K,)) of latents ``w`` (K, D), in batches."""
    images, preds = [], []
    for start in range(0, len(w), batch_size):
        img = decoder(w[start : start + batch_size])
        images.append(img)
        preds.append(model(img[:, None]))
        progress(len(img))
    return np.concatenate(images), np.concatenate(preds)


#: warn when the CNN's answers on the image and on G(w_E) differ by more than this share of the change asked for
GAP_SHARE = 0.5


def _reconstruction_gap(model, source, p0: float, target: float) -> dict:
    """The CNN on the original image against its answer on G(w_E), with a warning when they disagree."""
    if source is None:
        return {}
    p_image = float(model(np.asarray(source, np.float32)[None, None])[0])
    gap = p0 - p_image
    wrong_side = np.sign(target - p_image) != np.sign(target - p0)
    large = abs(gap) > GAP_SHARE * abs(target - p_image)
    message = ""
    if wrong_side:
        message = (
            f"the CNN says {p_image:.4g} on the image but {p0:.4g} on its reconstruction G(w_E): the target "
            f"{target:g} lies between them, so the counterfactual moves the reconstruction the other way than the "
            "image would need; refine the latent or choose another target"
        )
    elif large:
        message = (
            f"the CNN says {p_image:.4g} on the image but {p0:.4g} on its reconstruction G(w_E), a gap of "
            f"{abs(gap):.3g}, more than half of the change asked for ({abs(target - p_image):.3g}): the "
            "counterfactual explains the reconstruction more than the image"
        )
    if message:
        warnings.warn(message, SeegaanWarning, stacklevel=3)
    return {"prediction_image": p_image, "reconstruction_gap": gap, "gap_warning": message}


def _check_direction(direction, *, feature, levels, adjust, lo: float, proximity) -> str:
    """The direction's name, with the options that do not apply to it refused (one line each)."""
    if direction not in DIRECTIONS:
        raise SeegaanError(f"unknown direction {direction!r}; use one of {', '.join(DIRECTIONS)}")
    if direction == "mean":
        return direction
    for name, value in (("--feature", feature), ("--levels", levels), ("--adjust", adjust)):
        if value:
            raise SeegaanError(
                f"{name} defines the mean direction; --direction {direction} follows the CNN itself: drop {name}"
            )
    if lo < 0:
        raise SeegaanError(
            f"--direction {direction} starts at the image (λ = 0): --lambda-range must start at 0 or above"
        )
    if direction == "minimal":
        try:
            ok = float(proximity) > 0 and np.isfinite(float(proximity))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise SeegaanError(f"--proximity must be a positive number, not {proximity!r}")
    return direction


@fill_doc
def explain(
    cohort: xr.Dataset,
    decoder,
    model,
    *,
    image_id: str,
    target: float,
    feature: str | None = None,
    levels: str | Sequence[str] | None = None,
    tol: float = 0.01,
    lambda_range=(0.0, 3.0),
    n_scan: int = 25,
    attributions: Sequence[str] = (),
    layer: str | None = None,
    batch_size: int = 32,
    progress: Progress | None = None,
    command_line: str = "",
    device: str = "cpu",
    direction: str = "mean",
    adjust: Sequence[str] | str | None = None,
    proximity: float = 1.0,
    images: str | os.PathLike | None = None,
) -> ExplainResult:
    """Move one image along a latent direction until the CNN predicts ``target``.

    Parameters
    ----------
    cohort : xarray.Dataset
        A latent cohort holding the image.
    decoder : Decoder or spec
        G (:func:`seegaan.load_decoder`).
    model : Model or spec
        The CNN (:func:`seegaan.explain.cnn.load_model`).
    image_id : str
        The image to explain.
    target : float
        The prediction wanted (in the model's output units).
    feature : str, optional
        Defines the direction (module docstring); default: the model's own predictions over the cohort.
    levels : "CURRENT,DESIRED", optional
        Class features: the two levels (default: the image's own and the other one).
    tol : float
        Accept λ* when |CNN(G(w(λ*))) − target| ≤ tol (> 0).
    lambda_range : (a, b) or "A:B"
        The λ interval searched (a < b).
    n_scan : int
        λ values scanned for a sign change (>= 3).
    attributions : sequence of {"vg", "gradcam", "ig"}
        Attribution maps of the reconstruction to add (needs captum and an ``nn.Module`` model).
    layer : str, optional
        Grad-CAM layer name (default: the last Conv2d).
    batch_size : int
        Images per decoder/model call.
    progress : callable, optional
        ``progress(n=1, total=None)`` over the decoded images.
    %(command_line)s
    %(device)s
    direction : {"mean", "gradient", "minimal"}
        ``mean`` (the paper's): towards the mean latent of the images with the desired answer -- *what goes
        with the prediction here?* ``gradient``: along the CNN's gradient through G, followed along the
        path; ``minimal``: the smallest image change that reaches the target -- *what does the CNN use?*
        (:mod:`seegaan.explain.directions`). For ``gradient`` and ``minimal`` λ is the latent distance
        travelled in units of the cohort's latent spread, and ``feature``/``levels``/``adjust`` do not apply.
    adjust : list of str or "A,B", optional
        ``mean`` only: covariates held fixed (:func:`local_direction`).
    proximity : float
        ``minimal`` only: the weight of the mean squared pixel change against the squared prediction error
        (> 0; larger keeps the image closer, smaller reaches the target more surely).
    images : path, optional
        Folder of the cohort's radiographs: the CNN also reads the original image (at the cohort's image
        size), and the gap between its answers on the image and on G(w_E) is reported; a
        :class:`seegaan.SeegaanWarning` when the reconstruction is on the other side of the target, or when
        the gap exceeds half of the change asked for (``|target − prediction on the image|``).

    Returns
    -------
    ExplainResult
    """
    # cheap checks first
    validate_cohort(cohort)
    device = decoder_device(decoder, device)
    index = _image_index(cohort, image_id)
    tol = _check_tol(tol)
    lo, hi = parse_lambda_range(lambda_range)
    if not (isinstance(n_scan, (int, np.integer)) and n_scan >= 3):
        raise SeegaanError(f"n_scan must be an integer of at least 3, not {n_scan!r}")
    check_steps_memory(int(n_scan), cohort.attrs.get("image_size"), "--n-scan")
    try:
        target = float(target)
    except (TypeError, ValueError):
        raise SeegaanError(f"--target must be a number, not {target!r}") from None
    if not np.isfinite(target):
        raise SeegaanError("--target must be a finite number")
    if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
        raise SeegaanError(f"batch_size must be a positive integer, not {batch_size!r}")
    methods = check_methods(attributions)
    kind = _check_direction(direction, feature=feature, levels=levels, adjust=adjust, lo=lo, proximity=proximity)
    proximity = float(proximity)
    adjust = _adjust_names(adjust, feature)
    class_feature = feature is not None and feature_kind(get_feature(cohort, feature)) != "numeric"
    if class_feature:
        path = local_direction(cohort, image_id=image_id, feature=feature, levels=levels, adjust=adjust)
    elif levels is not None:
        raise SeegaanError(f"--levels applies to class features; {feature or 'the model prediction'} is numeric")
    progress = progress or no_progress

    source = None
    if images is not None:
        source = source_image(images, image_id, int(cohort.attrs.get("image_size", 0) or 0) or None)
    decoder = load_decoder_on(decoder, device)
    mismatch = model_mismatch(cohort.attrs.get("model", ""), decoder.identity)
    if mismatch:
        warnings.warn(mismatch, SeegaanWarning, stacklevel=2)
    model = load_model(model)
    if methods:
        check_attribution_model(model, methods, layer)
    with decoding_precision(decoder) as precision:  # strict fp32 (as a sequence), the device recorded
        w0 = cohort["w"].values[index].astype(np.float64)
        w_all = cohort["w"].values
        needs_scores = kind == "mean" and not class_feature and feature is None
        n_work = n_scan + N_FRAMES + (cohort.sizes["image"] if needs_scores else 0)
        n_work += {"mean": 0, "gradient": int(n_scan) - 1, "minimal": MINIMAL_STEPS}[kind]
        progress(0, total=n_work)
        recon, p0 = _predict_latents(decoder, model, w0[None], 1, no_progress)
        recon, p0 = recon[0], float(p0[0])
        gap = _reconstruction_gap(model, source, p0, target)
        if abs(p0 - target) <= tol:
            raise SeegaanError(
                f"the model already predicts {p0:.4g} for {image_id!r}, within --tol {tol:g} of the "
                "target; choose another target"
            )
        facts: dict = {}
        if kind != "mean":
            scale = latent_scale(w_all)
            facts["latent_scale"] = scale
            if kind == "gradient":
                path = gradient_path(
                    decoder,
                    model,
                    w0,
                    target=target,
                    prediction=p0,
                    scale=scale,
                    hi=hi,
                    n_knots=int(n_scan),
                    batch_size=int(batch_size),
                    progress=progress,
                )
            else:
                path, more = minimal_path(
                    decoder,
                    model,
                    w0,
                    target=target,
                    reconstruction=recon,
                    scale=scale,
                    proximity=proximity,
                    batch_size=int(batch_size),
                    progress=progress,
                )
                facts.update(more)
        elif not class_feature:
            scores = None
            if feature is None:
                scores = _predict_latents(decoder, model, w_all, int(batch_size), progress)[1]
            path = local_direction(
                cohort, image_id=image_id, feature=feature, target=target, prediction=p0, scores=scores, adjust=adjust
            )

        lams = np.linspace(lo, hi, int(n_scan))
        _, preds = _predict_latents(decoder, model, path.latents(w0, lams), int(batch_size), progress)

        def f(lam: float) -> float:
            return float(model(decoder(path.latents(w0, [lam]))[:, None])[0])

        lam_star, pred_star = solve_lambda(f, lams, preds, target, tol)
        frame_lams = np.linspace(0.0, lam_star, N_FRAMES)
        frames, frame_preds = _predict_latents(decoder, model, path.latents(w0, frame_lams), int(batch_size), progress)
    maps = {}
    if methods:
        maps = {k: v[0] for k, v in attribute(model, recon[None], methods=methods, layer=layer).items()}
    notes = [f"{name}: all zero" for name, amap in maps.items() if name == "gradcam" and not np.any(amap)]
    attrs = {
        "image_id": str(image_id),
        "target": target,
        "tol": tol,
        "lambda_star": lam_star,
        "prediction_star": pred_star,
        "prediction_0": p0,
        "lambda_range": f"{lo:g}:{hi:g}",
        "n_scan": int(n_scan),
        "direction": kind,
        "direction_basis": path.basis,
        "current": getattr(path, "current_label", ""),
        "desired": getattr(path, "desired_label", ""),
        "n_current": getattr(path, "n_current", 0),
        "n_desired": getattr(path, "n_desired", 0),
        "adjust": ",".join(adjust),
        "gradients": getattr(path, "gradients", ""),
        "proximity": proximity if kind == "minimal" else 0.0,
        **facts,
        **gap,
        "feature": feature or "",
        "model": model.identity,
        "model_sha256": model.sha256,
        "input_size": "" if model.input_size is None else f"{model.input_size[0]},{model.input_size[1]}",
        "input_scale": model.input_scale,
        "decoder": decoder.identity,
        "precision": precision,
        "cohort_model": str(cohort.attrs.get("model", "")),
        "attributions": ",".join(maps),
        "attribution_notes": "; ".join(notes),
        "attribution_layer": str(layer or ("default (last Conv2d)" if "gradcam" in maps else "")),
        "ig_baseline": "all -1 image" if "ig" in maps else "",
        "seegaan_version": __version__,
        "command_line": command_line,
    }
    return ExplainResult(
        image_id=str(image_id),
        target=target,
        tol=tol,
        lambda_star=lam_star,
        prediction_star=pred_star,
        prediction_0=p0,
        lambdas=lams,
        predictions=preds,
        reconstruction=recon,
        counterfactual=frames[-1],
        frame_lambdas=frame_lams,
        frame_predictions=frame_preds,
        frames=frames,
        direction=path,
        w_image=w0,
        attributions=maps,
        attrs=attrs,
    )
