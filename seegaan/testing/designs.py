"""Null cohorts for calibration checks (issue #22): the latent means are equal, H0 is true in latent space.

Every builder takes ``(rng_or_seed, D)`` (a ``numpy.random.Generator`` or an int seed, and the latent
dimension) and returns a cohort of :func:`seegaan.create_cohort` (a table with ``image_id``, ``patient_id``
and the clinical columns). Its attrs record what was built: ``design`` (the builder's name), ``h0`` (the null
hypothesis that is true, in words) and, for local designs, ``atypical_image``. Each states precisely which
null is true: H0 concerns the *latent* means (or their conditional means given covariates); seen through
a nonlinear decoder G, equal latent means do not give equal mean decoded images, and the tests of
seegaan are tests of the latent trajectory seen through G (a null trajectory is a trajectory of the null
latent distribution).

Every builder except the local one also has an **exchangeable control** (``control=True``): the same sizes,
features and patient structure with the latents' spread made equal (and, for the clustered design, the
same distribution of images per patient in both groups), so that the latents are exchangeable with
respect to the feature and the plain permutation test is exact.

``shift`` (class-mean builders): the mean of the second group moves by ``shift`` latent units along a
fixed unit direction (:data:`DIRECTION_SEED`), for power; 0 (the default) is the null.

:data:`DESIGNS` names every design with how it is analysed (``feature``, ``method``, ``adjust``,
``transform``): the harness ``analyses/calibration.py`` and the tests use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from seegaan.data.cohort import create_cohort

#: the fixed direction of ``shift`` (power runs) is drawn from this seed
DIRECTION_SEED = 7


def _rng(rng_or_seed) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    return np.random.default_rng(rng_or_seed)


def direction(D: int) -> np.ndarray:
    """The fixed unit direction (D,) along which ``shift`` moves a group's mean."""
    u = np.random.default_rng(DIRECTION_SEED).standard_normal(D)
    return u / np.linalg.norm(u)


def _cohort(w, table, *, design: str, h0: str, **attrs):
    extra = {"design": design, "h0": h0, **{k: v for k, v in attrs.items() if v is not None}}
    return create_cohort(w, table, model="calibration", image_size=0, attrs=extra)


# --------------------------------------------------------------------------------------------------
# class-mean: two groups, one image per patient
# --------------------------------------------------------------------------------------------------
def class_mean(
    rng_or_seed,
    D: int,
    *,
    n_a: int = 120,
    n_b: int = 30,
    sd_ratio: float = 2.0,
    control: bool = False,
    shift: float = 0.0,
):
    """Healthy ``N(0, I)`` (n_a images), sick ``N(shift·u, sd_ratio² I)`` (n_b images), one image per patient.

    H0 (shift 0): the two groups have equal latent means; their spreads differ by ``sd_ratio`` (1 with
    ``control``: the latents are then i.i.d., exchangeable with respect to ``sick``). Feature ``sick``
    (boolean; class-mean False -> True).
    """
    rng = _rng(rng_or_seed)
    n = n_a + n_b
    sick = np.arange(n) >= n_a
    w = rng.standard_normal((n, D))
    w[sick] *= 1.0 if control else sd_ratio
    if shift:
        w[sick] += shift * direction(D)
    table = pd.DataFrame(
        {"image_id": [f"i{i:04d}" for i in range(n)], "patient_id": [f"p{i:04d}" for i in range(n)], "sick": sick}
    )
    ratio = 1.0 if control else sd_ratio
    return _cohort(
        w,
        table,
        design=f"class-mean {n_a}/{n_b} sd x{ratio:g}" + (f" shift {shift:g}" if shift else ""),
        h0=("equal latent means of the two groups" if not shift else "false (shifted)")
        + f"; sick SD x{ratio:g}"
        + ("; exchangeable" if ratio == 1 else ""),
    )


def class_120_30_sd2(rng_or_seed, D, *, control=False, shift=0.0):
    """:func:`class_mean` 120 vs 30, SD ratio 2 (control: equal spread)."""
    return class_mean(rng_or_seed, D, n_a=120, n_b=30, sd_ratio=2.0, control=control, shift=shift)


def class_190_10_sd2(rng_or_seed, D, *, control=False, shift=0.0):
    """:func:`class_mean` 190 vs 10, SD ratio 2."""
    return class_mean(rng_or_seed, D, n_a=190, n_b=10, sd_ratio=2.0, control=control, shift=shift)


def class_120_30_sd3(rng_or_seed, D, *, control=False, shift=0.0):
    """:func:`class_mean` 120 vs 30, SD ratio 3."""
    return class_mean(rng_or_seed, D, n_a=120, n_b=30, sd_ratio=3.0, control=control, shift=shift)


def class_20_8_sd2(rng_or_seed, D, *, control=False, shift=0.0):
    """:func:`class_mean` 20 vs 8, SD ratio 2 (few patients: few distinct sign patterns)."""
    return class_mean(rng_or_seed, D, n_a=20, n_b=8, sd_ratio=2.0, control=control, shift=shift)


# --------------------------------------------------------------------------------------------------
# class-mean: several images per patient
# --------------------------------------------------------------------------------------------------
def clustered(rng_or_seed, D: int, *, n_a: int = 90, n_b: int = 30, control: bool = False, shift: float = 0.0):
    """1–5 images per patient, sick patients imaged more, **equal** spread, equal means.

    Images per patient: ``1 + Binomial(4, 0.15)`` for healthy patients (mean 1.6), ``1 + Binomial(4, 0.6)``
    for sick ones (mean 3.4); with ``control`` both groups draw ``1 + Binomial(4, 0.3)``. Every latent is a
    patient effect plus image noise of equal variance (``sqrt(1/2) (a_p + e_i)``: SD 1 per image,
    within-patient correlation 0.5), the same in both groups. Feature ``sick`` constant within patients.

    H0: equal latent means, equal spread, equal correlation; the groups differ only in how many images their
    patients have (with ``control``, not even that: patients are exchangeable).
    """
    rng = _rng(rng_or_seed)
    P = n_a + n_b
    sick_p = np.arange(P) >= n_a
    prob = np.where(sick_p, 0.3 if control else 0.6, 0.3 if control else 0.15)
    counts = 1 + rng.binomial(4, prob)
    pid = np.repeat(np.arange(P), counts)
    n = pid.size
    w = np.sqrt(0.5) * (rng.standard_normal((P, D))[pid] + rng.standard_normal((n, D)))
    if shift:
        w[sick_p[pid]] += shift * direction(D)
    table = pd.DataFrame(
        {"image_id": [f"i{i:04d}" for i in range(n)], "patient_id": [f"p{p:04d}" for p in pid], "sick": sick_p[pid]}
    )
    return _cohort(
        w,
        table,
        design="clustered 1-5 images per patient" + (" (control)" if control else ", sick imaged more"),
        h0="equal latent means, equal spread"
        + ("; patients exchangeable" if control else "; sick patients have more images"),
    )


# --------------------------------------------------------------------------------------------------
# class-mean adjusted for a confounder
# --------------------------------------------------------------------------------------------------
def confounded(
    rng_or_seed,
    D: int,
    *,
    n_a: int = 120,
    n_b: int = 30,
    sd_ratio: float = 1.6,
    control: bool = False,
    shift: float = 0.0,
):
    """A covariate ``age`` correlated with the class, latents that depend on age only, sick SD x1.6.

    Age ~ N(50, 10²) (healthy) and N(62, 10²) (sick); latent mean ``β (age − 55)/10`` along the fixed
    direction with β = 0.8, plus noise ``N(0, I)`` (healthy) or ``N(0, sd_ratio² I)`` (sick; 1 with
    ``control``). Analysed as class-mean ``sick`` adjusted for ``age`` (Freedman–Lane).

    H0: no effect of ``sick`` on the latent mean given age (the marginal difference, through age, is real:
    an unadjusted test should reject); the residual spread differs by ``sd_ratio`` between the groups.
    """
    rng = _rng(rng_or_seed)
    n = n_a + n_b
    sick = np.arange(n) >= n_a
    age = np.where(sick, rng.normal(62, 10, n), rng.normal(50, 10, n))
    e = rng.standard_normal((n, D))
    e[sick] *= 1.0 if control else sd_ratio
    u = direction(D)
    w = np.outer(0.8 * (age - 55) / 10, u) + e
    if shift:
        w[sick] += shift * u
    table = pd.DataFrame(
        {
            "image_id": [f"i{i:04d}" for i in range(n)],
            "patient_id": [f"p{i:04d}" for i in range(n)],
            "sick": sick,
            "age": age,
        }
    )
    ratio = 1.0 if control else sd_ratio
    return _cohort(
        w,
        table,
        design=f"confounded {n_a}/{n_b}, sick SD x{ratio:g}",
        h0=f"no effect of sick given age (age correlated with sick); residual SD x{ratio:g} in the sick",
    )


# --------------------------------------------------------------------------------------------------
# numeric features
# --------------------------------------------------------------------------------------------------
def _numeric(rng, D, x, sd, *, name, design, h0, extra=None, effect=0.0, effect_of=None):
    n = x.size
    w = rng.standard_normal((n, D)) * sd[:, None]
    if effect:
        w += np.outer(effect * effect_of, direction(D))
    table = pd.DataFrame(
        {
            "image_id": [f"i{i:04d}" for i in range(n)],
            "patient_id": [f"p{i:04d}" for i in range(n)],
            name: x,
            **(extra or {}),
        }
    )
    return _cohort(w, table, design=design, h0=h0)


def numeric_u(rng_or_seed, D: int, *, n: int = 150, control: bool = False, effect: float = 0.0):
    """Age uniform on 20–90, latent SD ``0.5 + 1.5 |age − 55| / 35`` (2 at both ends, 0.5 in the middle).

    H0: the latent mean is 0 at every age (no association); the spread is U-shaped along age (constant
    1 with ``control``: exchangeable). ``effect``: the mean moves by ``effect (age − 55)/35`` along the
    fixed direction.
    """
    rng = _rng(rng_or_seed)
    age = rng.uniform(20, 90, n)
    sd = np.ones(n) if control else 0.5 + 1.5 * np.abs(age - 55) / 35
    return _numeric(
        rng,
        D,
        age,
        sd,
        name="age",
        effect=effect,
        effect_of=(age - 55) / 35,
        design="numeric U-shaped spread" + (" (control)" if control else ""),
        h0="latent mean 0 at every age; SD " + ("1 (exchangeable)" if control else "0.5 + 1.5|age-55|/35"),
    )


def numeric_growing(
    rng_or_seed, D: int, *, n: int = 150, control: bool = False, effect: float = 0.0, per_patient: int = 1
):
    """Age uniform on 20–90, latent SD growing linearly from 1 (age 20) to 2 (age 90), mean 0.

    ``per_patient > 1``: ``n / per_patient`` patients of ``per_patient`` images each, age per patient, every
    latent a patient effect plus image noise of equal variance (``sqrt(1/2) (a_p + e_i)``, then times the SD):
    the 50 x 3 case of the retired pivot's note (seegaan 0.1).

    H0: no association of the latent mean with age; the spread doubles along age (1 with ``control``).
    """
    rng = _rng(rng_or_seed)
    if per_patient == 1:
        age = rng.uniform(20, 90, n)
        sd = np.ones(n) if control else 1.0 + (age - 20) / 70
        return _numeric(
            rng,
            D,
            age,
            sd,
            name="age",
            effect=effect,
            effect_of=(age - 55) / 35,
            design="numeric spread x2 along the feature" + (" (control)" if control else ""),
            h0="latent mean 0 at every age; SD " + ("1 (exchangeable)" if control else "1 -> 2 along age"),
        )
    P = n // per_patient
    pid = np.repeat(np.arange(P), per_patient)
    age = rng.uniform(20, 90, P)[pid]
    sd = np.ones(pid.size) if control else 1.0 + (age - 20) / 70
    w = np.sqrt(0.5) * (rng.standard_normal((P, D))[pid] + rng.standard_normal((pid.size, D))) * sd[:, None]
    if effect:
        w += np.outer(effect * (age - 55) / 35, direction(D))
    table = pd.DataFrame(
        {"image_id": [f"i{i:04d}" for i in range(pid.size)], "patient_id": [f"p{p:04d}" for p in pid], "age": age}
    )
    return _cohort(
        w,
        table,
        design=f"numeric spread x2 along the feature, {P} patients x {per_patient}" + (" (control)" if control else ""),
        h0="latent mean 0 at every age; SD "
        + ("1 (exchangeable)" if control else "1 -> 2 along age")
        + f"; {per_patient} images per patient (within-patient correlation 0.5)",
    )


def skewed(rng_or_seed, D: int, *, n: int = 150, control: bool = False, effect: float = 0.0):
    """A BNPP-like feature, log-normal ``exp(N(6, 1.2²))`` (pg/mL), analysed on its raw scale.

    The latent SD grows with log(BNPP): ``1 + (z − z_min)/(z_max − z_min)`` with ``z = log BNPP`` (1 to 2
    over the cohort; 1 with ``control``). On the raw scale most images sit at low BNPP and a few at the
    far right end carry the GAM's right tail, and they are the most variable ones.

    H0: the latent mean does not depend on BNPP; the spread grows with it (constant with ``control``).
    """
    rng = _rng(rng_or_seed)
    z = rng.normal(6.0, 1.2, n)
    bnpp = np.exp(z)
    sd = np.ones(n) if control else 1.0 + (z - z.min()) / (z.max() - z.min())
    return _numeric(
        rng,
        D,
        bnpp,
        sd,
        name="bnpp",
        effect=effect,
        effect_of=(z - 6.0) / 1.2,
        design="skewed BNPP-like feature" + (" (control)" if control else ""),
        h0="latent mean independent of BNPP; SD " + ("1 (exchangeable)" if control else "1 -> 2 along log BNPP"),
    )


# --------------------------------------------------------------------------------------------------
# local sequences
# --------------------------------------------------------------------------------------------------
def atypical(rng_or_seed, D: int, *, n_a: int = 120, n_b: int = 30, sd_ratio: float = 1.0, distance: float = 3.0):
    """Two groups with identical latent distributions and one atypical healthy image far from its mean.

    Healthy ``N(0, I)``, sick ``N(0, sd_ratio² I)`` (``sd_ratio`` 1: identical groups), one image per
    patient; the first healthy image is replaced by ``distance`` (latent SDs) times the fixed direction.
    Its id is ``attrs["atypical_image"]``: the local sequence moves it from healthy (its level) to sick.

    H0: the two groups have equal latent means (the local direction ``w̄_sick − w̄_healthy`` has mean 0;
    with the atypical image left out of its group the two groups are i.i.d. when ``sd_ratio`` is 1).
    """
    rng = _rng(rng_or_seed)
    n = n_a + n_b
    sick = np.arange(n) >= n_a
    w = rng.standard_normal((n, D))
    w[sick] *= sd_ratio
    w[0] = distance * direction(D)
    table = pd.DataFrame(
        {"image_id": [f"i{i:04d}" for i in range(n)], "patient_id": [f"p{i:04d}" for i in range(n)], "sick": sick}
    )
    return _cohort(
        w,
        table,
        design=f"local: atypical image at {distance:g} SD, {n_a}/{n_b} sd x{sd_ratio:g}",
        h0="equal latent means of the two groups",
        atypical_image="i0000",
    )


# --------------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Design:
    """A null design and how it is analysed."""

    build: Callable
    feature: str
    method: str
    adjust: tuple[str, ...] = ()
    transform: str = "none"
    kwargs: dict = field(default_factory=dict)
    local: bool = False

    def __call__(self, rng_or_seed, D, **kw):
        return self.build(rng_or_seed, D, **{**self.kwargs, **kw})


DESIGNS = {
    "class-120-30-sd2": Design(class_120_30_sd2, "sick", "class-mean"),
    "class-190-10-sd2": Design(class_190_10_sd2, "sick", "class-mean"),
    "class-120-30-sd3": Design(class_120_30_sd3, "sick", "class-mean"),
    "class-20-8-sd2": Design(class_20_8_sd2, "sick", "class-mean"),
    "clustered": Design(clustered, "sick", "class-mean"),
    "confounded": Design(confounded, "sick", "class-mean", adjust=("age",)),
    "gam-u": Design(numeric_u, "age", "gam"),
    "gam-growing": Design(numeric_growing, "age", "gam"),
    "gam-skewed": Design(skewed, "bnpp", "gam"),
    "gam-skewed-log": Design(skewed, "bnpp", "gam", transform="log"),
    "linear-u": Design(numeric_u, "age", "linear"),
    "linear-growing": Design(numeric_growing, "age", "linear"),
    "linear-growing-patients": Design(numeric_growing, "age", "linear", kwargs={"per_patient": 3}),
    "gam-growing-patients": Design(numeric_growing, "age", "gam", kwargs={"per_patient": 3}),
    "local-atypical": Design(atypical, "sick", "class-mean", local=True),
    "local-atypical-sd2": Design(atypical, "sick", "class-mean", kwargs={"sd_ratio": 2.0}, local=True),
}
