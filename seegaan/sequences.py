"""Decode a latent trajectory and test every pixel of its differences by permutation.

The observed sequence is ``G(L @ W)``; its differences from step 0 are compared with the differences of
``B`` null sequences, each decoded from the trajectory of permuted latents (the same linear map, no
refitting; see :mod:`seegaan.permutation`). Null maps are streamed in batches into the kernels of
``seegaan_kernels``: exceedance counts and the permutation mean/SD per pixel (pass 1), then, for max-T, the
per-permutation maximum of the standardised difference (pass 2). Memory is O(steps x pixels) unless the
whole null fits in ``null_cache_mb``, in which case pass 2 reads it from memory instead of decoding again
(the same bits either way).

p-values are ``(b + 1) / (B + 1)`` where ``b`` counts null statistics >= the observed one (ties count
against). The family of tests is every pixel of steps 1..K-1 (step 0 has no difference by definition).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import warnings
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
import xarray as xr

from seegaan._errors import SeegaanError
from seegaan._summary import Summary
from seegaan._version import __version__
from seegaan.cohort import cohort_hash
from seegaan.correction import ALL_CORRECTIONS, correct_pvalues, feasibility_warning
from seegaan.decoder import load_decoder
from seegaan.interpolation import InterpolationResult
from seegaan.permutation import draw_permutations

Alternative = Literal["two-sided", "greater", "less"]
Correction = Literal["maxt", "maxd", "tfce", "cluster", "none", "fdr_bh", "fdr_by", "bonferroni", "holm"]
FWER_CORRECTIONS = ("maxt", "maxd", "tfce", "cluster")
MAX_STATISTIC = ("maxt", "maxd")  # single-step max over pixels and steps (standardised or raw)
ALTERNATIVES = {"two-sided": 0, "greater": 1, "less": 2}


class SeegaanWarning(UserWarning):
    """A result is valid but probably not what the user wants (e.g. B too small to reject)."""


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
        if self.significant is None:
            return None
        return np.where(self.significant, self.difference, 0.0).astype(np.float32)

    def to_dataset(self) -> xr.Dataset:
        """The sequence dataset of DESIGN.md §3."""
        interp = self.interpolation
        K, H, W = self.images.shape
        dims3 = ("step", "y", "x")
        data = {
            "w": (("step", "latent"), interp.trajectory.astype(np.float32)),
            "image": (dims3, self.images.astype(np.float32)),
            "difference": (dims3, self.difference.astype(np.float32)),
        }
        if self.p_value is not None:
            data.update({
                "p_value": (dims3, self.p_value.astype(np.float64)),
                "p_adjusted": (dims3, self.p_adjusted.astype(np.float64)),
                "significant": (dims3, self.significant.astype(bool)),
                "significant_difference": (dims3, self.significant_difference),
            })
        coords = {"step": np.arange(K), "feature_value": ("step", interp.grid.astype(np.float64))}
        ds = xr.Dataset(data, coords=coords, attrs=dict(self.attrs))
        ds["feature_value"].attrs["units"] = "fraction from first to second level" if interp.levels else interp.feature
        return ds

    def summary(self) -> Summary:
        a = self.attrs
        lines = [("feature", f"{a['feature']} ({a['method']})"), ("steps", str(self.images.shape[0])),
                 ("image size", f"{self.images.shape[1]}x{self.images.shape[2]}"),
                 ("permutations", f"{a['n_perm']} ({a['permutation_scheme']})")]
        if self.p_value is not None:
            sig = self.significant[1:]
            lines += [("correction", f"{a['correction']} at alpha {a['alpha']}")]
            if "sd_offset" in a:
                how = "plain studentised max-T" if a["sd_offset"] == "0" else a["sd_offset"]
                lines.append(("SD offset s0", f"{a['sd_offset_value']:.4g} ({how})"))
            if "mask_pixels" in a:
                lines.append(("mask", f"{a['mask_pixels']} of {self.images.shape[1] * self.images.shape[2]} "
                                       "pixels tested"))
            if a.get("min_change", 0) > 0:
                lines.append(("minimum change", f"{a['min_change']:g} image units (|change| must exceed it)"))
            lines += [("alternative", a["alternative"]),
                      ("smallest attainable p", f"{a['smallest_p']:.4g}"),
                      ("significant pixels", f"{int(sig.sum())} of {sig.size} ({100 * sig.mean():.2f}%)")]
            per_step = ", ".join(str(int(s.sum())) for s in self.significant)
            lines.append(("significant per step", per_step))
        lines += [("seed", str(a["seed"])), ("decoder", a["decoder"])]
        lines += [(f"warning {i + 1}", w) for i, w in enumerate(self.warnings)]
        return Summary(title="SEE-GAAN sequence", lines=tuple(lines))

    def plot(self, path=None, **kwargs):
        """Figure like the paper's Fig. 1c; see :func:`seegaan.plotting.plot_sequence`."""
        from seegaan.plotting import plot_sequence

        return plot_sequence(self.to_dataset(), path=path, **kwargs)


def _attrs_for(interp: InterpolationResult, decoder_id: str, *, n_perm: int, scheme: str, correction: str,
               alpha: float, alternative: str, seed, command_line: str) -> dict:
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


def _standardise(batch: np.ndarray, scale: np.ndarray, code: int) -> np.ndarray:
    """z = stat(null) * scale for a batch (nb, M); -inf where a pixel cannot be tested (scale 0)."""
    import seegaan_kernels as kern

    return np.stack([kern.standardized_statistic(row, scale, code) for row in batch])


def _signed_codes(code: int) -> tuple[int, ...]:
    """Spatial methods enhance positive and negative effects separately (FSL/MNE): two-sided = both."""
    return (1, 2) if code == 0 else (code,)


def _null_maxima(batch, scale, code, correction, opts, shape, backend) -> np.ndarray:
    """Per-permutation maximum of the family-wise statistic of a batch of null maps."""
    import seegaan_kernels as kern

    if correction in MAX_STATISTIC:
        return kern.accumulate_maxima(batch, scale, code, backend=backend)
    from seegaan_kernels import spatial

    out = np.full(batch.shape[0], -np.inf)
    for sign in _signed_codes(code):
        z = _standardise(batch, scale, sign)
        if correction == "tfce":
            m = spatial.tfce_max(z, shape=shape, dh=opts["dh"], H=opts["H"], E=opts["E"],
                                 connectivity=opts["connectivity"], backend=backend)
        else:
            m = spatial.cluster_max(z, shape=shape, threshold=opts["threshold"],
                                    connectivity=opts["connectivity"], backend=backend)
        out = np.maximum(out, m)
    return out


def _fwer_pvalues(observed, scale, code, shape, null_max: np.ndarray, correction, opts, backend) -> np.ndarray:
    """Family-wise adjusted p-values (K, H, W) from the observed map and the null maxima."""
    import seegaan_kernels as kern

    B = null_max.size
    if correction in MAX_STATISTIC:
        z_obs = kern.standardized_statistic(observed, scale, code).reshape(shape)
        return np.where(np.isfinite(z_obs), (kern.maxt_counts(z_obs, null_max) + 1) / (B + 1), 1.0)
    from seegaan_kernels import spatial

    p = np.ones(shape)
    for sign in _signed_codes(code):
        z = kern.standardized_statistic(observed, scale, sign).reshape(shape)
        if correction == "tfce":
            score = spatial.tfce(z, dh=opts["dh"], H=opts["H"], E=opts["E"], connectivity=opts["connectivity"],
                                 backend=backend)
            p = np.where(score > 0, np.minimum(p, (kern.maxt_counts(score, null_max) + 1) / (B + 1)), p)
        else:
            labels, masses = spatial.cluster_masses(z, opts["threshold"], connectivity=opts["connectivity"],
                                                    backend=backend)
            p_cluster = np.concatenate([[1.0], (kern.maxt_counts(masses, null_max) + 1) / (B + 1)])
            p = np.where(labels > 0, np.minimum(p, p_cluster[labels]), p)
    return p


def sequence(interp: InterpolationResult, decoder, *, n_perm: int | Literal["exact"] = 1000,
             correction: Correction = "maxt", alpha: float = 0.05, alternative: Alternative = "two-sided",
             seed: int | np.random.Generator | None = 0, batch_size: int = 16, null_cache_mb: float = 1024,
             backend: Literal["numba", "numpy"] = "numba", scheme: str | None = None,
             tfce_h: float = 2.0, tfce_e: float = 0.5, tfce_dh: float = 0.1, cluster_threshold: float = 3.0,
             connectivity: Literal[4, 8] = 4, mask=None, sd_offset: float | str | None = None,
             min_change: float = 0.0, progress: Callable[..., None] | None = None, command_line: str = "") -> SequenceResult:
    """Decode a trajectory and test its pixels by permutation.

    Parameters
    ----------
    interp : InterpolationResult
        From :func:`seegaan.interpolate`.
    decoder : str, path or callable
        A checkpoint, ``"module:callable"`` or a callable mapping float32 (B, D) to (B, H, W).
    n_perm : int or "exact"
        Number of permutations B (0 = decode only, no test; ``"exact"`` enumerates all).
    correction : {"maxt", "maxd", "tfce", "cluster", "none", "fdr_bh", "fdr_by", "bonferroni", "holm"}
        ``maxt`` (default): Westfall–Young max statistic over all pixels and steps of the standardised
        difference z = difference / (permutation SD + s0), family-wise error control (s0: ``sd_offset``).
        ``maxd``: the same with the raw difference (the paper's pixel statistic), family-wise too: every
        pixel must beat the largest null change anywhere, so it keeps large changes and drops small
        consistent ones that max-T finds where the null varies little. ``tfce``: threshold-free cluster
        enhancement of z within each step (H, E, dh in z units), its maximum over steps as the null.
        ``cluster``: cluster mass (sum of z − threshold over 2-D clusters with z > threshold), every pixel of a
        cluster gets the cluster's p. ``none``: the paper's uncorrected pixel-wise test; the FDR and
        Bonferroni/Holm methods act on the uncorrected permutation p-values.
    alpha : float
    alternative : {"two-sided", "greater", "less"}
        Direction of the difference (image - image[step 0]) that counts as evidence.
    seed : int, Generator or None
        All permutations are drawn from it before any decoding; the result does not depend on
        ``batch_size`` or ``null_cache_mb``.
    batch_size : int
        Permutations streamed through the kernels at a time (memory, not results).
    null_cache_mb : float
        Keep the null maps in memory for the max-T pass when they fit in this many MiB; else decode twice.
    backend : {"numba", "numpy"}
        Kernel implementation.
    scheme : str, optional
        Force the permutation scheme (see :func:`seegaan.draw_permutations`).
    progress : callable, optional
        ``progress(n, total=None)``: called once with ``total`` (work units) and then with the number of
        permutations just processed (each counts twice when max-T has to decode them again).
    command_line : str
        Recorded in the output's attrs.
    tfce_h, tfce_e, tfce_dh : float
        TFCE height and extent exponents and threshold step (z units; fixed, so the statistic is the same
        function for the observed and every null map).
    cluster_threshold : float
        Cluster-forming threshold on z for ``cluster``.
    connectivity : {4, 8}
        Pixel neighbourhood of clusters and TFCE.
    mask : array (H, W) of bool, or path, optional
        Test only these pixels (True): a region of interest, e.g. to leave burned-in markers or text out of
        the family (their null changes can dominate the null maxima). A path is read with
        :func:`load_mask`. Pixels outside are never significant and take no part in any correction; the
        mask's pixel count and hash go into the attrs.
    sd_offset : float, "median" or "pNN", optional
        max-T only: s0 added to every pixel's permutation SD before dividing, as SAM's fudge factor
        (Tusher et al. 2001) or SnPM's variance smoothing: without it a pixel whose null hardly varies
        (saturated background, burned-in text) turns a negligible but consistent change into a huge z. A
        number is in image units; ``"median"`` or ``"p25"`` take that percentile of the SD over the
        tested pixels; ``0`` (the default) is the plain studentised max-T. s0 is computed from all B + 1 maps
        like the SD, so the test stays exact. Recorded as ``sd_offset`` and ``sd_offset_value``.
    min_change : float
        max-T and maxd: test that a pixel's change *exceeds* this many image units (the model's [-1, 1]
        scale: 0.05 is 2.5% of the range) instead of that it is not zero. The observed difference is
        shrunk towards zero by ``min_change`` (|d| - min_change, or 0) before it meets the null maxima,
        so a consistent but negligible change is never called significant. With no change anywhere
        the test stays exact (only more conservative); for "|change| <= min_change" it assumes that the
        permutation null describes the estimate's spread around a non-zero change too (a shift model).
        ``0`` (the default) tests for any change. Recorded as ``min_change``.

    Returns
    -------
    SequenceResult
    """
    import seegaan_kernels as kern
    from seegaan_kernels.spatial import TooManyLevelsError

    if not isinstance(interp, InterpolationResult):
        raise SeegaanError("sequence() needs the result of seegaan.interpolate(...)")
    if correction not in ALL_CORRECTIONS:
        raise SeegaanError(f"unknown correction {correction!r}; use one of {', '.join(ALL_CORRECTIONS)}")
    if alternative not in ALTERNATIVES:
        raise SeegaanError(f"unknown alternative {alternative!r}; use two-sided, greater or less")
    if not 0 < float(alpha) < 1:
        raise SeegaanError(f"--alpha must be between 0 and 1 (got {alpha})")
    if not isinstance(n_perm, str) and int(n_perm) < 0:
        raise SeegaanError(f"--perm must be 0 or more (got {n_perm})")
    if int(batch_size) < 1:
        raise SeegaanError(f"batch size must be at least 1 (got {batch_size})")
    code = ALTERNATIVES[alternative]
    if sd_offset is not None and correction != "maxt":
        raise SeegaanError(f"--sd-offset applies to --correction maxt only (got {correction})")
    offset_spec = parse_sd_offset(0.0 if sd_offset is None else sd_offset)
    try:
        min_change = float(min_change)
    except (TypeError, ValueError):
        raise SeegaanError(f"--min-change must be a number >= 0 in image units (got {min_change!r})") from None
    if not (np.isfinite(min_change) and min_change >= 0):
        raise SeegaanError(f"--min-change must be a finite number >= 0 in image units (got {min_change})")
    if min_change > 0 and correction not in ("maxt", "maxd"):
        raise SeegaanError(f"--min-change applies to --correction maxt or maxd only (got {correction})")
    s0 = 0.0
    if isinstance(mask, (str, os.PathLike)):
        mask = load_mask(mask)  # a bad file fails before any decoding
    dec = load_decoder(decoder)
    progress = progress or (lambda n, total=None: None)

    traj = interp.trajectory.astype(np.float32)
    images = dec(traj)
    K, H, W = images.shape
    if K != interp.n_steps:
        raise SeegaanError(f"decoder returned {K} images for {interp.n_steps} latents")
    difference = images - images[0]
    observed = np.ascontiguousarray(difference.reshape(-1))
    M = observed.size
    roi = None if mask is None else _check_mask(mask, (H, W))

    if n_perm == 0:
        attrs = _attrs_for(interp, dec.identity, n_perm=0, scheme="none", correction=correction, alpha=alpha,
                           alternative=alternative, seed=seed, command_line=command_line)
        return SequenceResult(interp, images, difference, None, None, None, None, attrs, ())

    plan = draw_permutations(interp.patient_ids, n_perm, feature=interp.feature_codes,
                             covariates=bool(interp.covariates), scheme=scheme, seed=seed)
    B = plan.n_perm
    if B == 0:
        raise SeegaanError("exact enumeration found no permutation other than the identity; the cohort is too small")

    # A decoder that declares ``batch_invariant`` (an image's bits never depend on the rest of the call,
    # as seegaan checkpoints guarantee) decodes a whole batch of permutations at once; any other decoder
    # gets one permutation's K frames per call, so the bits never depend on ``batch_size``.
    together = bool(getattr(dec.fn, "batch_invariant", False))

    def null_maps(rows: np.ndarray) -> np.ndarray:
        trajs = np.stack([interp.null_trajectory(idx, plan.scheme) for idx in rows]).astype(np.float32)
        if together:
            frames = dec(trajs.reshape(-1, trajs.shape[-1])).reshape(len(rows), -1, H, W)
        else:
            frames = np.stack([dec(t) for t in trajs])
        if frames.shape[1:] != (K, H, W):
            raise SeegaanError(f"decoder returned frames of shape {frames.shape[1:]}, expected {(K, H, W)}")
        return np.ascontiguousarray((frames - frames[:, :1]).reshape(len(rows), M))

    counts = np.zeros(M, dtype=np.int64)
    total = np.zeros(M, dtype=np.float64)
    total_sq = np.zeros(M, dtype=np.float64)
    want_fwer = correction in FWER_CORRECTIONS
    spatial_opts = {"H": float(tfce_h), "E": float(tfce_e), "dh": float(tfce_dh),
                    "threshold": float(cluster_threshold), "connectivity": int(connectivity)}
    cache = None
    if want_fwer and B * M * 4 <= null_cache_mb * 2**20:
        cache = np.empty((B, M), dtype=np.float32)
    progress(0, total=B * (2 if want_fwer and cache is None else 1))
    for start, rows in plan.batches(int(batch_size)):
        batch = null_maps(rows)
        kern.accumulate_exceedances(batch, observed, code, counts, total, total_sq, backend=backend)
        if cache is not None:
            cache[start:start + len(rows)] = batch
        progress(len(rows))
    p_value = ((counts + 1) / (B + 1)).reshape(K, H, W)
    family = np.ones((K, H, W), bool)
    family[0] = False
    if roi is not None:
        family &= roi[None]
    messages = []

    null_max = None
    if want_fwer:
        # permutation SD over all B + 1 maps (the observed one included): a symmetric function of the
        # maps, so the max-statistic tests stay exact.
        obs64 = observed.astype(np.float64)
        s1 = total + obs64
        s2 = total_sq + obs64 * obs64
        var = (s2 - s1 * s1 / (B + 1)) / (B + 1)
        var[var <= 1e-12 * (s2 / (B + 1))] = 0.0  # pure cancellation error: no variation at this pixel
        sd = np.sqrt(np.maximum(var, 0.0))
        scale = np.zeros(M, dtype=np.float64)
        if correction == "maxd":  # the raw difference (the paper's statistic); untestable pixels stay out
            scale[sd > 0] = 1.0
        else:
            if correction == "maxt":  # z = d / (sd + s0), s0 a symmetric function of all B + 1 maps too
                s0 = _sd_offset_value(offset_spec, sd[(sd > 0) & family.reshape(-1)])
            np.divide(1.0, sd + s0, out=scale, where=sd > 0)
        scale[~family.reshape(-1)] = 0.0  # step 0 and pixels outside the mask take no part
        null_max = np.empty(B, dtype=np.float64)
        tested = observed  # shrunk by min_change: only a change beyond it can be significant
        if min_change > 0:
            tested = (np.sign(observed) * np.maximum(np.abs(observed) - min_change, 0)).astype(observed.dtype)
        try:
            for start, rows in plan.batches(int(batch_size)):
                batch = cache[start:start + len(rows)] if cache is not None else null_maps(rows)
                null_max[start:start + len(rows)] = _null_maxima(batch, scale, code, correction, spatial_opts,
                                                                 (K, H, W), backend)
                if cache is None:
                    progress(len(rows))
            p_adjusted = _fwer_pvalues(tested, scale, code, (K, H, W), null_max, correction, spatial_opts,
                                       backend)
        except TooManyLevelsError as exc:  # TFCE refuses a map that would need too many thresholds
            raise SeegaanError(f"tfce: a pixel whose permutation SD is almost 0 gives standardised differences "
                               f"too large for TFCE steps of {tfce_dh:g} ({exc}); use more permutations or "
                               "--correction maxt") from None
        significant = (p_adjusted <= alpha) & family
        if 1.0 / (B + 1) > alpha:
            messages.append(f"{correction}: with {B} permutations the smallest p-value 1/{B + 1} is above alpha "
                            f"{alpha}; nothing can be significant; use more permutations")
    else:
        p_adjusted, significant = correct_pvalues(np.where(family, p_value, 1.0), correction, alpha=alpha,
                                                  mask=family)
        msg = feasibility_warning(correction, int(family.sum()), B, alpha)
        if msg:
            messages.append(msg)
    for msg in messages:
        warnings.warn(msg, SeegaanWarning, stacklevel=2)
    attrs = _attrs_for(interp, dec.identity, n_perm=B, scheme=plan.scheme + (" (exact)" if plan.exact else ""),
                       correction=correction, alpha=alpha, alternative=alternative, seed=seed,
                       command_line=command_line)
    if correction == "maxt":
        attrs.update(sd_offset=offset_spec[0], sd_offset_value=float(s0))
    if correction in ("maxt", "maxd") and B > 0:
        attrs.update(min_change=min_change)
    if roi is not None:
        attrs.update(mask_pixels=int(roi.sum()), mask_sha256=hashlib.sha256(np.packbits(roi).tobytes()).hexdigest())
    if correction == "tfce":
        attrs.update(tfce_H=spatial_opts["H"], tfce_E=spatial_opts["E"], tfce_dh=spatial_opts["dh"],
                     connectivity=spatial_opts["connectivity"])
    elif correction == "cluster":
        attrs.update(cluster_threshold=spatial_opts["threshold"], connectivity=spatial_opts["connectivity"])
    return SequenceResult(interp, images, difference, p_value, p_adjusted, significant, null_max, attrs,
                          tuple(messages))


def parse_sd_offset(value) -> tuple[str, float | None, float | None]:
    """``(spec, absolute, percentile)`` from a number (image units, >= 0), ``"median"`` or ``"pNN"``."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "median":
            return "median", None, 50.0
        if text.startswith("p"):
            try:
                q = float(text[1:])
            except ValueError:
                q = -1.0
            if 0 <= q <= 100:
                return f"p{q:g}", None, q
            raise SeegaanError(f"--sd-offset {value!r}: a percentile is p0 to p100, e.g. p50")
        try:
            value = float(text)
        except ValueError:
            raise SeegaanError(f"--sd-offset {value!r}: give a number >= 0 (image units), median or pNN") from None
    value = float(value)
    if not value >= 0 or not np.isfinite(value):
        raise SeegaanError(f"--sd-offset must be a finite number >= 0, median or pNN (got {value})")
    return f"{value:g}", value, None


def _sd_offset_value(spec, sd_tested: np.ndarray) -> float:
    _, absolute, q = spec
    if absolute is not None:
        return absolute
    return float(np.percentile(sd_tested, q)) if sd_tested.size else 0.0


def load_mask(path) -> np.ndarray:
    """A region-of-interest mask from ``.npy`` (bool or 0/1) or an image file (PNG...; nonzero = tested)."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise SeegaanError(f"--mask {path} does not exist; give a .npy or PNG mask the size of the images")
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            from PIL import Image

            with Image.open(path) as img:
                arr = np.asarray(img.convert("L"))
    except Exception as exc:  # noqa: BLE001
        raise SeegaanError(f"cannot read mask {path} ({type(exc).__name__}); give a .npy array or a PNG") from None
    if arr.ndim != 2 or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise SeegaanError(f"mask {path} must be a 2-D array of 0/1 or bool, got shape {arr.shape} {arr.dtype}")
    return arr != 0


def _check_mask(mask, shape: tuple[int, int]) -> np.ndarray:
    roi = np.asarray(mask)
    if roi.shape != shape:
        raise SeegaanError(f"the mask has shape {roi.shape} but the decoded images are {shape[0]}x{shape[1]}; "
                           "give a mask of the image size")
    roi = roi != 0
    if not roi.any():
        raise SeegaanError("the mask selects no pixel; give a mask with at least one nonzero pixel")
    return roi


def save_sequence(ds: xr.Dataset, path, *, overwrite: bool = False):
    """Write a sequence dataset to netCDF atomically."""
    from seegaan._io import atomic_path

    with atomic_path(path, overwrite=overwrite) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4")
    return path
