"""The calibration harness: a test's family-wise error over null cohorts of a design, through the public API.

For a design of :data:`seegaan.testing.designs.DESIGNS` and a decoder of
:mod:`seegaan.testing.check_decoders`, R null cohorts (equal latent means: H0 true) go through
``seegaan.interpolate`` + ``seegaan.sequence`` (``seegaan.local_sequence`` for local designs); a cohort with
any significant pixel in the family is a family-wise error. Cohort r is built from ``SeedSequence([seed,
r])`` and its test draws from a seed of the same sequence, so every configuration sees the same cohorts
(paired comparisons). The tests run fast cases (``tests/stats/test_calibration_harness.py``);
``analyses/calibration.py`` runs the whole table for ``docs/statistics.md``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from seegaan.calibration import clopper_pearson
from seegaan.explain.local import local_sequence
from seegaan.interpolation import interpolate
from seegaan.sequences import sequence
from seegaan.testing import check_decoders, designs

__all__ = ["Rate", "family_wise_error"]


@dataclass(frozen=True)
class Rate:
    """``k`` family-wise errors in ``n`` null cohorts, with the exact 95% interval."""

    k: int
    n: int
    seconds: float
    min_p: np.ndarray = field(repr=False)

    @property
    def rate(self) -> float:
        return self.k / self.n

    @property
    def interval(self) -> tuple[float, float]:
        return clopper_pearson(self.k, self.n)

    def __str__(self) -> str:
        lo, hi = self.interval
        return f"{self.k}/{self.n} = {self.rate:.3f} [{lo:.3f}, {hi:.3f}]"


def family_wise_error(
    design: str,
    decoder: str,
    *,
    n_cohorts: int = 200,
    n_perm: int = 199,
    steps: int = 3,
    D: int = 6,
    size: int = 12,
    alpha: float = 0.05,
    seed: int = 22,
    control: bool = False,
    effect: float = 0.0,
    **test_options,
) -> Rate:
    """The family-wise error (or, with ``effect``/``shift``, the power) of a test on ``n_cohorts`` cohorts.

    ``test_options`` go to :func:`seegaan.sequence` (``null``, ``correction``, ...); ``effect`` is the
    design's ``shift`` (class-mean) or ``effect`` (numeric): 0, the default, is the null.
    """
    spec = designs.DESIGNS[design]
    dec = check_decoders.make(decoder, D, size, seed=0)
    min_p = np.empty(n_cohorts)
    start = time.perf_counter()
    for r in range(n_cohorts):
        stream = np.random.SeedSequence([int(seed), r])
        rng = np.random.default_rng(stream)
        test_seed = int(stream.generate_state(1)[0])
        kwargs = {"control": control} if not spec.local else {}
        if effect:
            kwargs["shift" if spec.method == "class-mean" else "effect"] = effect
        ds = spec(rng, D, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if spec.local:
                res = local_sequence(
                    ds,
                    dec,
                    image_id=ds.attrs["atypical_image"],
                    feature=spec.feature,
                    lambdas=f"0:1:{steps}",
                    n_perm=n_perm,
                    seed=test_seed,
                    alpha=alpha,
                    backend="numpy",
                    batch_size=n_perm,
                    **test_options,
                )
            else:
                interp = interpolate(
                    ds,
                    feature=spec.feature,
                    method=spec.method,
                    steps=steps,
                    adjust=list(spec.adjust) or None,
                    transform=spec.transform,
                )
                res = sequence(
                    interp,
                    dec,
                    n_perm=n_perm,
                    seed=test_seed,
                    alpha=alpha,
                    backend="numpy",
                    batch_size=n_perm,
                    **test_options,
                )
        p = res.p_adjusted[1:]
        min_p[r] = float(p.min()) if p.size else 1.0
    return Rate(int(np.sum(min_p <= alpha)), n_cohorts, time.perf_counter() - start, min_p)
