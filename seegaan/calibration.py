"""A check on the user's own cohort and decoder: does the test keep its family-wise error here?

:func:`calibrate` makes null cohorts from the cohort's own latents -- the feature's effect removed, everything
else kept -- and runs each through the same test the user is about to run (the same trajectory, null,
correction, number of draws and decoder). The fraction of null cohorts with any significant pixel is the
family-wise error of that test on this design, reported with its exact (Clopper–Pearson) 95% interval and a
verdict.

How a null cohort is made, from the trajectory's own fit:

* the latents' mean under H0 is the weighted null model's fit (:mod:`seegaan.interpolation.nullmodel`: one
  common mean, or the covariates' linear model), so the feature has no effect and the covariates keep theirs;
* every patient gets the full-model residuals (leverage-corrected) of a *donor* patient with the same number
  of images, drawn with replacement from the same class (class-mean) or from the patients nearest in the
  feature (numeric: the nearest tenth, at least 5), so each group's -- or each part of the feature's --
  spread, skewness and within-patient correlation are kept, and the patients, their images, the feature
  values and the covariates are the cohort's own.

It checks the test *on this design*, not the decoder's faithfulness or the model's quality; a verdict
"liberal" means: do not trust the family-wise claim of this test here (more patients, ``--null`` or a mask
may help; docs/statistics.md).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import stats

from seegaan._internal.errors import SeegaanError
from seegaan._internal.io import atomic_path
from seegaan._internal.progress import Progress, no_progress
from seegaan._internal.summary import Summary
from seegaan.decoder import load_decoder_on
from seegaan.interpolation import InterpolationResult, interpolate
from seegaan.interpolation.nullmodel import patient_codes
from seegaan.options import TestOptions
from seegaan.sequences import SequenceResult, run_sequence

__all__ = ["Calibration", "calibrate", "clopper_pearson", "null_cohort"]

#: the verdicts, from the exact 95% interval of the family-wise error against alpha
VERDICTS = ("liberal", "consistent with alpha", "conservative")


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper–Pearson) interval of a binomial proportion k/n."""
    a = (1.0 - level) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


@dataclass(frozen=True)
class Calibration:
    """The family-wise error of a test on null cohorts made from the user's own latents.

    Attributes
    ----------
    k, n : int
        Null cohorts with at least one significant pixel, and null cohorts run.
    alpha : float
    interval : (float, float)
        Exact 95% interval of ``k / n``.
    verdict : str
        ``"liberal"`` (the interval lies above alpha), ``"conservative"`` (below) or ``"consistent with
        alpha"``.
    min_p : ndarray (n,)
        Every null cohort's smallest adjusted p-value.
    attrs : dict
        What was checked: the test's settings and the seed.
    """

    k: int
    n: int
    alpha: float
    interval: tuple[float, float]
    verdict: str
    min_p: np.ndarray = field(repr=False)
    attrs: dict = field(default_factory=dict)

    @property
    def fwer(self) -> float:
        return self.k / self.n

    def line(self) -> str:
        lo, hi = self.interval
        return (
            f"{self.k} of {self.n} null cohorts made from these latents had a significant pixel: family-wise error "
            f"{self.fwer:.3f} [{lo:.3f}, {hi:.3f}] at alpha {self.alpha:g}: {self.verdict}"
        )

    def summary(self) -> Summary:
        lo, hi = self.interval
        lines = [
            ("null cohorts", str(self.n)),
            ("with a significant pixel", str(self.k)),
            ("family-wise error", f"{self.fwer:.3f} [{lo:.3f}, {hi:.3f}] (exact 95% interval)"),
            ("alpha", f"{self.alpha:g}"),
            ("verdict", self.verdict),
        ]
        lines += [(k, str(v)) for k, v in self.attrs.items() if k.startswith("test_")]
        return Summary(title="SEE-GAAN calibration", lines=tuple(lines))

    def sequence_attrs(self) -> dict:
        """The attrs a sequence carries once this calibration is attached to it."""
        lo, hi = self.interval
        return {
            "calibration_k": int(self.k),
            "calibration_n": int(self.n),
            "calibration_fwer": float(self.fwer),
            "calibration_interval": f"{lo:.4f},{hi:.4f}",
            "calibration_verdict": self.verdict,
            "calibration_seed": str(self.attrs.get("seed", "")),
            "calibration_n_perm": int(self.attrs.get("n_perm", 0)),
        }

    def attach(self, result: SequenceResult) -> SequenceResult:
        """``result`` with this calibration in its attrs (and a warning when the verdict is "liberal")."""
        attrs = {**result.attrs, **self.sequence_attrs()}
        messages = result.warnings
        if self.verdict == "liberal":
            messages = (*messages, f"calibration: {self.line()}")
            attrs["warnings"] = "\n".join(messages)
        return replace(result, attrs=attrs, warnings=messages)

    def to_json(self) -> str:
        return json.dumps(
            {
                "k": self.k,
                "n": self.n,
                "alpha": self.alpha,
                "fwer": self.fwer,
                "interval": list(self.interval),
                "verdict": self.verdict,
                "min_p": [float(p) for p in self.min_p],
                "attrs": self.attrs,
            },
            indent=1,
        )

    def save(self, path: str | os.PathLike, *, overwrite: bool = False, inputs=()) -> Path:
        """Write the calibration as JSON, atomically."""
        with atomic_path(path, overwrite=overwrite, inputs=inputs, suffixes=".json") as tmp:
            tmp.write_text(self.to_json() + "\n", encoding="utf-8")
        return Path(path)


def _donors(x: np.ndarray, codes: np.ndarray, categorical: bool, rng: np.random.Generator) -> np.ndarray:
    """For every patient a donor patient of the same number of images: the same class, or nearby in x."""
    P = int(codes.max()) + 1
    sizes = np.bincount(codes, minlength=P)
    xp = np.zeros(P)
    np.add.at(xp, codes, x)
    xp /= sizes
    donors = np.arange(P)
    for size in np.unique(sizes):
        same = np.flatnonzero(sizes == size)
        if categorical:
            for g in np.unique(xp[same]):
                pool = same[xp[same] == g]
                donors[pool] = rng.choice(pool, size=pool.size, replace=True)
        else:
            order = same[np.argsort(xp[same], kind="stable")]
            half = max(2, int(round(0.05 * order.size)))  # a tenth of the patients, at least 5
            for rank, p in enumerate(order):
                lo, hi = max(0, rank - half), min(order.size, rank + half + 1)
                donors[p] = order[rng.integers(lo, hi)]
    return donors


def null_cohort(interp: InterpolationResult, rng: np.random.Generator):
    """A cohort like ``interp.cohort`` whose analysed latents follow H0 (see the module docstring)."""
    null = interp.null_model()
    W = interp.latents
    X, _ = interp._design
    n_cov = 0 if interp._Z is None else interp._Z.shape[1]
    lam = interp._spec.lam if interp._spec.lam is not None else float(np.median(np.atleast_1d(interp.lam)))
    S = interp._spec.penalty(lam, n_cov)
    A = np.linalg.solve(X.T @ X + S, X.T)
    h = np.clip(np.einsum("ip,pi->i", X, A), 0.0, 0.99)
    r = (W - X @ (A @ W)) / np.sqrt(1.0 - h)[:, None]
    codes = patient_codes(interp.patient_ids)
    donors = _donors(np.asarray(interp.feature_codes, np.float64), codes, interp._spec.categorical, rng)
    # image j of patient p takes the residual of image j of its donor (images in their order within the patient)
    position = np.zeros(codes.size, np.int64)
    first = {}
    members: dict[int, list[int]] = {}
    for i, c in enumerate(codes):
        members.setdefault(int(c), []).append(i)
        position[i] = len(members[int(c)]) - 1
        first.setdefault(int(c), i)
    source = np.array([members[int(donors[c])][position[i]] for i, c in enumerate(codes)])
    W0 = (W - null.residuals) + r[source]
    w = interp.cohort["w"].values.copy()
    w[interp.image_index] = W0.astype(w.dtype)
    return interp.cohort.assign(w=(interp.cohort["w"].dims, w))


def _same_trajectory(interp: InterpolationResult, cohort) -> InterpolationResult:
    """The trajectory of ``interp`` (method, levels, grid, transform, smoothing, covariates) on ``cohort``."""
    lam = interp.lam
    gam_lam = "auto" if isinstance(lam, np.ndarray) else (0.6 if lam is None else float(lam))
    return interpolate(
        cohort,
        feature=interp.feature,
        method=interp.method,
        levels=interp.levels,
        grid=interp.grid if interp.levels is None else np.asarray(interp.grid, np.float64),
        transform=interp.transform,
        gam_lam=gam_lam,
        gam_splines=int(interp.n_splines or 20),
        adjust=list(interp.covariates) or None,
    )


def calibrate(
    interp: InterpolationResult,
    decoder,
    *,
    n_cohorts: int = 100,
    n_perm: int = 99,
    seed: int = 0,
    progress: Progress | None = None,
    **test_options,
) -> Calibration:
    """Run the test on ``n_cohorts`` null cohorts made from the cohort's own latents; its family-wise error.

    Parameters
    ----------
    interp : InterpolationResult
        The trajectory to be tested (from :func:`seegaan.interpolate`); its method, levels, grid, transform,
        smoothing and covariates are used on every null cohort.
    decoder : str, path or callable
        The decoder the test will use.
    n_cohorts : int
        Null cohorts (100: about ±0.05 on the error; more on request).
    n_perm : int
        Null draws per cohort (99: the smallest attainable p is 0.01).
    seed : int
        Seeds the null cohorts and every test's draws (recorded).
    progress : callable, optional
        ``progress(n=1, total=None)`` over the cohorts.
    **test_options
        The test's settings, as for :func:`seegaan.sequence`: ``null``, ``correction``, ``alpha``,
        ``alternative``, ``mask``, ``batch_size``, ``backend``, ``device``, ...

    Returns
    -------
    Calibration
    """
    if not isinstance(interp, InterpolationResult):
        raise SeegaanError("calibrate() needs the result of seegaan.interpolate(...)")
    if isinstance(n_cohorts, bool) or not isinstance(n_cohorts, (int, np.integer)) or int(n_cohorts) < 1:
        raise SeegaanError(f"--cohorts must be a whole number of at least 1 (got {n_cohorts!r})")
    if isinstance(n_perm, str) or int(n_perm) < 1:
        raise SeegaanError(f"calibration needs a number of null draws of at least 1 (got {n_perm!r})")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise SeegaanError(f"--seed must be a whole number of 0 or more (got {seed!r})")
    options = TestOptions.create(decoder=decoder, n_perm=int(n_perm), seed=0, **test_options).resolve(interp)
    dec = load_decoder_on(decoder, options.device)
    progress = progress or no_progress
    progress(0, total=int(n_cohorts))
    streams = np.random.SeedSequence([int(seed), 22]).spawn(int(n_cohorts))
    min_p = np.empty(int(n_cohorts))
    for r, stream in enumerate(streams):
        cohort_rng, test_seed = np.random.default_rng(stream), int(stream.generate_state(1)[0])
        null_interp = _same_trajectory(interp, null_cohort(interp, cohort_rng))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = run_sequence(null_interp, dec, replace(options, seed=test_seed))
        p = result.p_adjusted[1:]
        min_p[r] = float(p.min()) if p.size else 1.0
        progress(1)
    k = int(np.sum(min_p <= options.alpha))
    lo, hi = clopper_pearson(k, int(n_cohorts))
    verdict = "liberal" if lo > options.alpha else "conservative" if hi < options.alpha else "consistent with alpha"
    attrs = {
        "seed": int(seed),
        "n_perm": int(n_perm),
        "test_null": options.null,
        "test_correction": options.correction.name,
        "test_alternative": options.alternative,
        "test_feature": interp.feature,
        "test_method": interp.method,
        "test_covariates": ",".join(interp.covariates),
        "decoder": dec.identity,
    }
    return Calibration(k, int(n_cohorts), float(options.alpha), (lo, hi), verdict, min_p, attrs)
