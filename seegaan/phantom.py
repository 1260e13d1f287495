"""A procedural frontal chest-radiograph phantom whose anatomy is driven by clinical variables.

Every image is the display of a *density* map (the sum of smooth anatomical shapes, larger = more
attenuating = brighter) defined in resolution-free coordinates ``x`` (image left -> right) and ``y`` (top
-> bottom), both in [-1, 1], so the phantom renders at any size.

Clinical effects (documented in ``truth/README.md`` of every phantom cohort, see :data:`EFFECTS`):

- ``bnpp`` (NT-proBNP, pg/mL, log-normal; much higher with acute heart failure, slightly with age): the
  cardiac silhouette grows (mostly to the patient's left = image right) and gets denser, and the central
  vasculature (the hilar vessels) gets larger and denser.
- ``ahf`` (acute heart failure, bool): bilateral pleural effusions, denser lung bases in the lateral
  costophrenic regions (its direct effect; AHF also raises BNPP, so its *total* effect includes the
  heart).
- ``sex`` (F/M): breast soft tissue over the lateral lung fields in women (placed higher than in real
  anatomy so that it does not overlap the heart or the effusions).
- ``age`` (years): lower bone density of the clavicles and shoulder girdle (humeral heads) with age.
- ``manufacturer`` (vendor_a/vendor_b/vendor_c): the display curve (gamma and dynamic range) of the
  device, a global change.

Nuisance: position shift, small rotation, body size, inspiration depth (lung height), individual heart
size, breast size and rib position, detector noise, and a radiopaque side marker (the letter ``L``) in an
upper corner; the marker is the brightest thing on every image and the air around the body the darkest,
so per-image min-max scaling does not turn local effects into global ones.

The ground-truth *direct* effect of a feature (:func:`effect_map`) is ``render(feature=b) -
render(feature=a)`` with every other clinical variable at :data:`REFERENCE` and every nuisance at its
mean. Its *marginal* effect (:func:`marginal_effect_map`) lets the other clinical variables follow their
joint distribution given the feature (what an unadjusted comparison of images estimates).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from seegaan._errors import SeegaanError
from seegaan._version import __version__

FEATURES = ("bnpp", "ahf", "sex", "age", "manufacturer")
MANUFACTURERS = ("vendor_a", "vendor_b", "vendor_c")
SEXES = ("F", "M")
#: (gamma, dynamic range) of the display curve of each manufacturer
DISPLAY = {"vendor_a": (1.0, 1.0), "vendor_b": (0.75, 0.92), "vendor_c": (1.35, 0.97)}
#: values of the other clinical variables while one feature's direct effect is computed
REFERENCE = {"sex": "F", "age": 60.0, "ahf": False, "bnpp": 300.0, "manufacturer": "vendor_a"}
#: levels compared by the categorical truth maps: effect = render(b) - render(a)
CATEGORICAL_CONTRAST = {"ahf": (False, True), "sex": ("F", "M"), "manufacturer": ("vendor_a", "vendor_b")}
NUMERIC_FEATURES = ("bnpp", "age")
#: fraction of the largest |effect| above which a pixel belongs to the true region
MASK_FRACTION = 0.1
LOG_BNPP_CENTER = math.log(300.0)
#: density shown as full white (no tissue of a plausible patient reaches it, so effects are not clipped)
FULL_SCALE = 1.1

EFFECTS = {
    "bnpp": "cardiac silhouette larger (scale 1 + 0.06 log(BNPP/300), growing mostly towards image right) "
            "and denser (+0.035 per unit log BNPP); hilar vessels larger and denser (scale and density "
            "1 + 0.12 log(BNPP/300))",
    "ahf": "bilateral pleural effusions: denser lateral lung bases (costophrenic regions) when AHF is "
           "present (direct effect; AHF also raises BNPP, see the marginal maps)",
    "sex": "breast soft tissue over the lateral lung fields in women (so M - F is negative there)",
    "age": "clavicles and humeral heads less dense with age (bone density x (1 - 0.012 (age - 60)))",
    "manufacturer": "display curve: vendor_b has gamma 0.75 and 92% dynamic range, vendor_c gamma 1.35 "
                    "and 97%, vendor_a is linear (a global contrast change)",
}


@dataclass(frozen=True)
class PhantomParams:
    """Everything that determines one phantom image.

    Clinical variables first; nuisance variables default to their mean (no shift, no rotation, no
    noise), which is the setting of the ground-truth effect maps.
    """

    sex: str = "F"
    age: float = 60.0
    ahf: bool = False
    bnpp: float = 300.0
    manufacturer: str = "vendor_a"
    # nuisance: geometry (fractions of the half-width; degrees)
    shift_x: float = 0.0
    shift_y: float = 0.0
    rotation: float = 0.0
    scale: float = 1.0
    inspiration: float = 1.0
    # nuisance: individual anatomy
    heart_jitter: float = 0.0
    breast_jitter: float = 0.0
    rib_phase: float = 0.0
    # nuisance: acquisition
    noise: float = 0.0
    noise_seed: int = 0
    marker_side: int = 1
    marker_dx: float = 0.0
    marker_dy: float = 0.0

    def replace(self, **changes) -> "PhantomParams":
        return dataclasses.replace(self, **changes)


def _as_params(params) -> PhantomParams:
    if isinstance(params, PhantomParams):
        p = params
    elif isinstance(params, Mapping):
        names = {f.name for f in dataclasses.fields(PhantomParams)}
        unknown = sorted(set(params) - names)
        if unknown:
            raise SeegaanError(f"unknown phantom parameter(s) {unknown}; known: {sorted(names)}")
        p = PhantomParams(**dict(params))
    else:
        raise SeegaanError(f"phantom parameters must be a PhantomParams or a mapping; got {type(params).__name__}")
    if p.sex not in SEXES:
        raise SeegaanError(f"sex must be 'F' or 'M'; got {p.sex!r}")
    if p.manufacturer not in MANUFACTURERS:
        raise SeegaanError(f"manufacturer must be one of {', '.join(MANUFACTURERS)}; got {p.manufacturer!r}")
    if not (np.isfinite(p.bnpp) and p.bnpp > 0):
        raise SeegaanError(f"bnpp must be a positive number (pg/mL); got {p.bnpp!r}")
    if not np.isfinite(p.age):
        raise SeegaanError(f"age must be a number; got {p.age!r}")
    return p


# ------------------------------------------------------------------------------------------- shapes
def _soft(r: np.ndarray, edge: float) -> np.ndarray:
    """1 inside (r < 1), 0 outside, with a smooth edge of relative width ``edge``."""
    return 0.5 * (1.0 - np.tanh((r - 1.0) / edge))


def _ellipse(x, y, cx, cy, ax, ay, *, edge=0.08, angle=0.0, power=2.0):
    if angle:
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        x, y = c * (x - cx) + s * (y - cy), -s * (x - cx) + c * (y - cy)
        cx = cy = 0.0
    r = (np.abs((x - cx) / ax) ** power + np.abs((y - cy) / ay) ** power) ** (1.0 / power)
    return _soft(r, edge)


def _band(dist, half_width):
    """Smooth band profile of a curve, given the distance to it."""
    return np.exp(-0.5 * (dist / half_width) ** 2)


def _grid(size: int, p: PhantomParams) -> tuple[np.ndarray, np.ndarray]:
    """Anatomical coordinates of every pixel centre (inverse of the nuisance similarity transform)."""
    t = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    u, v = np.meshgrid(t, t)  # u: columns (x), v: rows (y)
    u, v = u - p.shift_x, v - p.shift_y
    c, s = math.cos(math.radians(p.rotation)), math.sin(math.radians(p.rotation))
    x = (c * u + s * v) / p.scale
    y = (-s * u + c * v) / p.scale
    return x, y


def _lungs(x, y, insp: float):
    cy_shift = (insp - 1.0) * 0.3
    right = _ellipse(x, y, -0.41, -0.05 + cy_shift, 0.32, 0.62 * insp, edge=0.07, power=2.3)
    left = _ellipse(x, y, 0.42, -0.03 + cy_shift, 0.31, 0.60 * insp, edge=0.07, power=2.3)
    bases = (-0.05 + cy_shift + 0.62 * insp, -0.03 + cy_shift + 0.60 * insp)
    return right + left, bases


def _ribs(x, y, phase: float):
    ax = np.abs(x)
    out = np.zeros_like(x)
    lateral = _soft(ax / 0.78, 0.06) * (1.0 - _soft(ax / 0.12, 0.2))
    for k in range(8):
        curve = -0.62 + phase + 0.155 * k + 0.38 * (ax - 0.12) ** 2
        out += _band(y - curve, 0.022)
    return out * lateral


def _clavicles_and_shoulders(x, y):
    ax = np.abs(x)
    curve = -0.74 - 0.10 * (ax - 0.08) + 0.25 * (ax - 0.4) ** 2
    clav = _band(y - curve, 0.032) * _soft(ax / 0.72, 0.05) * (1.0 - _soft(ax / 0.08, 0.3))
    heads = _ellipse(ax, y, 0.88, -0.70, 0.13, 0.15, edge=0.07)
    return clav, heads


#: the side marker's centre (|x|, y) in image coordinates, its half extents, and the cohort's uniform jitter
MARKER_CENTER = (0.80, -0.86)
MARKER_HALF = (0.057, 0.075)
MARKER_JITTER = (0.04, 0.03)


def _marker(size: int, p: PhantomParams) -> np.ndarray:
    """A block letter 'L' in an upper corner, in image coordinates (not moved by the anatomy)."""
    t = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    u, v = np.meshgrid(t, t)
    cx = MARKER_CENTER[0] * (1 if p.marker_side >= 0 else -1) + p.marker_dx
    cy = MARKER_CENTER[1] + p.marker_dy
    stem = (np.abs(u - (cx - 0.035)) < 0.022) & (np.abs(v - cy) < MARKER_HALF[1])
    foot = (np.abs(u - cx) < MARKER_HALF[0]) & (np.abs(v - (cy + 0.055)) < 0.02)
    return (stem | foot).astype(np.float64)


def marker_free_mask(size: int, margin: int = 2) -> np.ndarray:
    """bool (size, size): True wherever no side marker can be in a phantom cohort (either upper corner, any
    jitter), ``margin`` pixels kept clear around it. Give it to ``--mask`` (API ``mask=``) to leave the
    marker out of a test: its null changes are the largest in the image."""
    t = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    u, v = np.meshgrid(t, t)
    pad = 2.0 * margin / size
    half_u = MARKER_HALF[0] + MARKER_JITTER[0] + pad
    half_v = MARKER_HALF[1] + MARKER_JITTER[1] + pad
    near = (np.abs(np.abs(u) - MARKER_CENTER[0]) <= half_u) & (np.abs(v - MARKER_CENTER[1]) <= half_v)
    return ~near


def density(params, *, size: int) -> np.ndarray:
    """The density (attenuation) map of one phantom, before display, noise and marker; float64."""
    p = _as_params(params)
    x, y = _grid(size, p)
    log_b = math.log(p.bnpp) - LOG_BNPP_CENTER
    d = 0.42 * _ellipse(x, y, 0.0, 0.15, 0.86, 1.10, edge=0.05, power=4.0)  # trunk soft tissue
    d += 0.20 * _ellipse(x, y, 0.0, -0.95, 0.17, 0.30, edge=0.1)  # neck
    lungs, bases = _lungs(x, y, p.inspiration)
    d -= 0.36 * lungs
    d += 0.14 * _ellipse(x, y, 0.02, -0.22, 0.12, 0.58, edge=0.1, power=2.5)  # mediastinum
    d += 0.08 * _ellipse(x, y, 0.0, 0.0, 0.065, 1.3, edge=0.15, power=4.0)  # spine
    d += 0.07 * _ribs(x, y, p.rib_phase)
    # bnpp: heart and central vasculature
    s = 1.0 + 0.06 * log_b + p.heart_jitter
    d += (0.20 + 0.035 * log_b) * _ellipse(x, y, 0.06 + 0.12 * (s - 1.0), 0.40 + 0.05 * (s - 1.0),
                                           0.28 * s, 0.21 * s, edge=0.06, angle=-15.0)
    d += 0.15 * _ellipse(x, y, 0.12, -0.32, 0.08, 0.07, edge=0.15)  # aortic knob
    h = 1.0 + 0.12 * log_b
    for cx, cy in ((-0.17, -0.02), (0.19, 0.0)):
        d += 0.22 * h * _ellipse(x, y, cx, cy, 0.09 * h, 0.12 * h, edge=0.12)
    # age: bones of the shoulder girdle
    bone = 1.0 - 0.012 * (p.age - 60.0)
    clav, heads = _clavicles_and_shoulders(x, y)
    d += bone * (0.22 * clav + 0.22 * heads)
    # sex: breasts
    if p.sex == "F":
        b = 1.0 + p.breast_jitter
        for cx in (-0.58, 0.58):
            d += 0.22 * _ellipse(x, y, cx, 0.08, 0.21 * b, 0.15 * b, edge=0.07)
    # ahf: pleural effusions in the lateral costophrenic regions
    if p.ahf:
        for cx, base in ((-0.62, bases[0]), (0.65, bases[1])):
            d += 0.28 * _ellipse(x, y, cx, base - 0.07, 0.19, 0.14, edge=0.07)
    return d


def render(params, *, size: int = 256, noise: bool = True) -> np.ndarray:
    """Render one phantom radiograph, float32 (size, size) in [-1, 1].

    Parameters
    ----------
    params : PhantomParams or mapping
        Clinical and nuisance values (missing nuisance values are at their mean).
    size : int
        Side in pixels (any size >= 16; the anatomy is resolution free).
    noise : bool
        Add the detector noise ``params.noise`` (drawn from ``params.noise_seed``).
    """
    if int(size) != size or size < 16:
        raise SeegaanError(f"phantom size must be an integer >= 16; got {size!r}")
    p = _as_params(params)
    return _display(density(p, size=int(size)), p, noise=noise)


def _display(d: np.ndarray, p: PhantomParams, *, noise: bool) -> np.ndarray:
    """Density -> displayed image: the manufacturer's curve, noise, clipping, the marker."""
    gamma, dyn = DISPLAY[p.manufacturer]
    v = np.clip(d / FULL_SCALE, 0.0, 1.0) ** gamma * dyn
    img = -1.0 + 2.0 * v
    if noise and p.noise > 0:
        img = img + np.random.default_rng(p.noise_seed).normal(0.0, p.noise, img.shape)
    img = np.clip(img, -1.0, 1.0)
    img = np.maximum(img, 2.0 * _marker(d.shape[0], p) - 1.0)  # the marker saturates at +1
    return img.astype(np.float32)


# -------------------------------------------------------------------------------------- truth maps
def _reference(**changes) -> PhantomParams:
    return PhantomParams(**{**REFERENCE, **changes})


def _check_feature(feature: str) -> str:
    if feature not in FEATURES:
        raise SeegaanError(f"unknown phantom feature {feature!r}; use one of {', '.join(FEATURES)}")
    return feature


def _coerce_value(feature: str, value):
    if feature == "ahf":
        if isinstance(value, str):
            if value.strip().lower() in ("true", "1", "yes", "ahf+"):
                return True
            if value.strip().lower() in ("false", "0", "no", "ahf-"):
                return False
            raise SeegaanError(f"ahf must be True or False; got {value!r}")
        return bool(value)
    if feature in NUMERIC_FEATURES:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise SeegaanError(f"{feature} must be a number; got {value!r}") from None
    return str(value)


def effect_map(feature: str, a, b, *, size: int = 256, reference: Mapping | None = None) -> np.ndarray:
    """Direct ground-truth effect of ``feature``: ``render(feature=b) - render(feature=a)``.

    Every other clinical variable is at :data:`REFERENCE` (or ``reference``), every nuisance at its mean
    and there is no noise. Returns float32 (size, size).
    """
    feature = _check_feature(feature)
    base = {**REFERENCE, **(reference or {})}
    lo = render(_reference(**{**base, feature: _coerce_value(feature, a)}), size=size, noise=False)
    hi = render(_reference(**{**base, feature: _coerce_value(feature, b)}), size=size, noise=False)
    return (hi.astype(np.float64) - lo).astype(np.float32)


def effect_mask(effect: np.ndarray, *, fraction: float = MASK_FRACTION) -> np.ndarray:
    """The true region: ``|effect| > fraction * max |effect|`` (bool)."""
    mag = np.abs(np.asarray(effect, dtype=np.float64))
    top = mag.max()
    return mag > fraction * top if top > 0 else np.zeros(mag.shape, dtype=bool)


def score_map(significant, mask) -> dict:
    """Compare a significance map with a true region.

    Parameters
    ----------
    significant, mask : array-like of bool, same shape
        Significant pixels (e.g. of a sequence's last step) and the true region.

    Returns
    -------
    dict
        ``dice`` (2|S∩T| / (|S|+|T|)), ``sensitivity`` (|S∩T| / |T|), ``outside`` (fraction of the
        significant pixels outside the true region; 0 when none is significant) and the counts.
    """
    sig, true = np.asarray(significant, dtype=bool), np.asarray(mask, dtype=bool)
    if sig.shape != true.shape:
        raise SeegaanError(f"significance map {sig.shape} and truth mask {true.shape} differ in shape; "
                           "render the truth at the sequence's image size")
    both = int((sig & true).sum())
    n_sig, n_true = int(sig.sum()), int(true.sum())
    return {"dice": 2.0 * both / (n_sig + n_true) if n_sig + n_true else 1.0,
            "sensitivity": both / n_true if n_true else float("nan"),
            "outside": (n_sig - both) / n_sig if n_sig else 0.0,
            "n_significant": n_sig, "n_true": n_true}


def read_truth(folder: str | os.PathLike, feature: str, *, marginal: bool = False
               ) -> tuple[np.ndarray, np.ndarray]:
    """The (effect, mask) written by :func:`write_phantom` for ``feature`` (direct or marginal)."""
    feature = _check_feature(feature)
    truth = Path(folder) / "truth"
    stem = f"marginal_{feature}" if marginal else f"effect_{feature}"
    mask_name = f"marginal_{feature}_mask" if marginal else f"{feature}_mask"
    paths = truth / f"{stem}.npy", truth / f"{mask_name}.npy"
    for path in paths:
        if not path.exists():
            raise SeegaanError(f"{path} does not exist; is {folder} a phantom folder written by "
                               "`seegaan phantom`" + (" with --marginal" if marginal else "") + "?")
    return np.load(paths[0]), np.load(paths[1])


# -------------------------------------------------------------------------------- joint distribution
# closed-form pieces of the joint distribution (age clipping and rounding ignored in the truth maps)
AGE_MEAN, AGE_SD = 60.0, 14.0
LOG_BNPP_SD = 0.75
MANUFACTURER_P = (0.45, 0.35, 0.20)


def _p_ahf(age):
    return 1.0 / (1.0 + np.exp(-(-0.8 + 0.035 * (age - 60.0))))


def _mu_log_bnpp(ahf, age):
    return 4.9 + 2.0 * ahf + 0.005 * (age - 60.0)


def sample_clinical(n_patients: int, *, seed: int | np.random.Generator | None = 0) -> pd.DataFrame:
    """Draw patients' clinical variables from the phantom's joint distribution.

    age ~ N(60, 14) in [20, 95] (whole years); P(AHF) = logistic(-0.8 + 0.035 (age - 60)) (AHF patients
    are older); log BNPP ~ N(4.9 + 2.0 AHF + 0.005 (age - 60), 0.75); sex 50/50 and manufacturer
    45/35/20 %, independent of the rest and assigned in blocks along (AHF, BNPP) so that each sample is
    balanced on them.
    """
    rng = np.random.default_rng(seed)
    n = int(n_patients)
    age = np.clip(np.round(rng.normal(AGE_MEAN, AGE_SD, n)), 20, 95)
    p_ahf = _p_ahf(age)
    ahf = rng.random(n) < p_ahf
    log_bnpp = rng.normal(_mu_log_bnpp(ahf, age), LOG_BNPP_SD)
    # sex and manufacturer: blocked randomisation along (AHF, BNPP) so that every sample, not only the
    # population, is balanced on them (no chance confounding of the sex or manufacturer contrasts)
    order = np.lexsort((log_bnpp, ahf))
    male = np.zeros(n, dtype=bool)
    for start in range(0, n, 2):
        block = order[start:start + 2]
        male[block] = rng.permutation([True, False])[: len(block)]
    pattern = np.repeat(np.arange(3), (9, 7, 4))  # 45/35/20 % in blocks of 20
    codes = np.empty(n, dtype=int)
    for start in range(0, n, 20):
        block = order[start:start + 20]
        codes[block] = rng.permutation(pattern)[: len(block)]
    manufacturer = np.array(MANUFACTURERS)[codes]
    return pd.DataFrame({"sex": np.where(male, "M", "F"), "age": age, "ahf": ahf,
                         "bnpp": np.round(np.exp(log_bnpp), 1), "manufacturer": manufacturer})


def _hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of E[f(Z)], Z ~ N(0, 1) (probabilists' Gauss-Hermite)."""
    z, w = np.polynomial.hermite_e.hermegauss(int(n))
    return z, w / w.sum()


def _conditional_nodes(feature: str, value, n_nodes: int) -> list[tuple[float, dict]]:
    """Weighted clinical settings (weights sum to 1) of the other variables given ``feature = value``.

    Exact for the discrete variables; Gauss-Hermite quadrature for age and log BNPP.
    """
    z, wz = _hermite(n_nodes)
    nodes: list[tuple[float, dict]] = []
    sexes = [("F", 0.5)] if feature == "sex" and value == "F" else [("M", 0.5)] if feature == "sex" else \
        [("F", 0.5), ("M", 0.5)]
    ages = [(float(value), 1.0)] if feature == "age" else list(zip(AGE_MEAN + AGE_SD * z, wz))
    for sex, w_sex in sexes:
        for age, w_age in ages:
            p1 = float(_p_ahf(age))
            ahfs = [(bool(value), p1 if value else 1 - p1)] if feature == "ahf" else [(False, 1 - p1), (True, p1)]
            for ahf, w_ahf in ahfs:
                mu = _mu_log_bnpp(ahf, age)
                if feature == "bnpp":
                    lik = math.exp(-0.5 * ((math.log(value) - mu) / LOG_BNPP_SD) ** 2)
                    bnpps = [(float(value), lik)]
                else:
                    bnpps = [(float(math.exp(mu + LOG_BNPP_SD * zk)), float(wk)) for zk, wk in zip(z, wz)]
                for bnpp, w_b in bnpps:
                    nodes.append((w_sex * w_age * w_ahf * w_b,
                                  {"sex": sex, "age": float(age), "ahf": ahf, "bnpp": bnpp}))
    total = sum(w for w, _ in nodes)
    if not total > 0:
        raise SeegaanError(f"{feature} = {value!r} has zero probability under the phantom's distribution")
    return [(w / total, c) for w, c in nodes]


def _conditional_mean_image(feature: str, value, *, size: int, n_nodes: int) -> np.ndarray:
    manufacturers = [(value, 1.0)] if feature == "manufacturer" else list(zip(MANUFACTURERS, MANUFACTURER_P))
    out = np.zeros((size, size))
    for w, clinical in _conditional_nodes(feature, value, n_nodes):
        d = density(PhantomParams(**clinical), size=size)
        for manufacturer, w_m in manufacturers:
            out += w * w_m * _display(d, PhantomParams(**clinical, manufacturer=manufacturer), noise=False)
    return out


def marginal_effect_map(feature: str, a, b, *, size: int = 256, n_nodes: int = 7) -> np.ndarray:
    """Marginal ground-truth effect: mean image given ``feature = b`` minus mean image given ``a``.

    The other clinical variables follow their joint distribution given the feature, integrated exactly
    over the discrete ones and by ``n_nodes``-point Gauss-Hermite quadrature over age and log BNPP (age
    clipping and rounding ignored); every nuisance is at its mean. This is what an unadjusted
    comparison of images (class means, regression on the feature alone) estimates; :func:`effect_map`
    is the direct effect. Deterministic. Returns float32 (size, size).
    """
    feature = _check_feature(feature)
    if int(size) != size or size < 16:
        raise SeegaanError(f"phantom size must be an integer >= 16; got {size!r}")
    a, b = _coerce_value(feature, a), _coerce_value(feature, b)
    for v in (a, b):
        _as_params({feature: v})
    hi = _conditional_mean_image(feature, b, size=int(size), n_nodes=n_nodes)
    lo = _conditional_mean_image(feature, a, size=int(size), n_nodes=n_nodes)
    return (hi - lo).astype(np.float32)


def sample_cohort(n_images: int, *, seed: int | np.random.Generator | None = 0
                  ) -> tuple[pd.DataFrame, list[PhantomParams]]:
    """Clinical table and render parameters of a phantom cohort of ``n_images`` images.

    About 20% of patients have two images (same anatomy and clinical values, new nuisance). Returns the
    table (image_id, patient_id, sex, age, ahf, bnpp, manufacturer, view) and one
    :class:`PhantomParams` per row.
    """
    n_images = int(n_images)
    if n_images < 1:
        raise SeegaanError(f"the phantom needs at least one image; got n={n_images}")
    rng = np.random.default_rng(seed)
    n_patients = n_images  # enough; trimmed below
    clinical = sample_clinical(n_patients, seed=rng)
    n_per = np.where(rng.random(n_patients) < 0.2, 2, 1)
    rows, params = [], []
    for i in range(n_patients):
        c = clinical.iloc[i]
        anatomy = {"heart_jitter": float(rng.normal(0, 0.025)),
                   "breast_jitter": float(np.clip(rng.normal(0, 0.06), -0.15, 0.15)),
                   "rib_phase": float(rng.normal(0, 0.02))}
        for k in range(int(n_per[i])):
            if len(rows) == n_images:
                break
            nuisance = {"shift_x": float(np.clip(rng.normal(0, 0.015), -0.05, 0.05)),
                        "shift_y": float(np.clip(rng.normal(0, 0.015), -0.05, 0.05)),
                        "rotation": float(np.clip(rng.normal(0, 0.8), -2.5, 2.5)),
                        "scale": float(np.clip(rng.normal(1, 0.02), 0.94, 1.06)),
                        "inspiration": float(np.clip(rng.normal(1, 0.025), 0.92, 1.08)),
                        "noise": 0.02, "noise_seed": int(rng.integers(2**31 - 1)),
                        "marker_side": int(rng.choice([-1, 1])),
                        "marker_dx": float(rng.uniform(-MARKER_JITTER[0], MARKER_JITTER[0])),
                        "marker_dy": float(rng.uniform(-MARKER_JITTER[1], MARKER_JITTER[1]))}
            params.append(PhantomParams(sex=c.sex, age=float(c.age), ahf=bool(c.ahf), bnpp=float(c.bnpp),
                                        manufacturer=c.manufacturer, **anatomy, **nuisance))
            rows.append({"image_id": f"ph{i:05d}_{k}", "patient_id": f"p{i:05d}", "sex": c.sex,
                         "age": float(c.age), "ahf": bool(c.ahf), "bnpp": float(c.bnpp),
                         "manufacturer": c.manufacturer, "view": "PA"})
        if len(rows) == n_images:
            break
    return pd.DataFrame(rows), params


def truth_contrasts(table: pd.DataFrame) -> dict[str, tuple]:
    """The (a, b) compared by each truth map: 5th/95th percentiles (numeric), level pairs otherwise."""
    out = {}
    for f in FEATURES:
        if f in NUMERIC_FEATURES:
            lo, hi = np.percentile(table[f].to_numpy(dtype=float), [5, 95])
            out[f] = (float(lo), float(hi))
        else:
            out[f] = CATEGORICAL_CONTRAST[f]
    return out


# ------------------------------------------------------------------------------------------- writing
def _to_png(img: np.ndarray, path: Path, bit_depth: int) -> None:
    from PIL import Image

    unit = (np.clip(img, -1, 1) + 1.0) / 2.0
    if bit_depth == 16:
        Image.fromarray(np.round(unit * 65535).astype(np.uint16)).save(path)
    else:
        Image.fromarray(np.round(unit * 255).astype(np.uint8)).save(path)


def _readme(contrasts: dict, *, size: int, n: int, seed, fraction: float) -> str:
    lines = [
        "# Phantom ground truth",
        "",
        f"seegaan {__version__} phantom: {n} images, {size}x{size}, seed {seed}. Images are 16- or 8-bit PNG; "
        "read them scaled to [-1, 1] (per-image min-max is the identity here: the air around the body is "
        "the minimum, the radiopaque 'L' marker the maximum).",
        "",
        "## Effects (direct: that feature alone)",
        "",
        "`effect_<feature>.npy` = render(feature = b) - render(feature = a), float32 in image units "
        "([-1, 1] scale), every other clinical variable at its reference value and every nuisance "
        "(position, rotation, size, inspiration, individual anatomy, noise) at its mean. "
        f"References: {', '.join(f'{k} = {v}' for k, v in REFERENCE.items())}.",
        "",
        "| feature | a | b | effect (b - a) |",
        "|---|---|---|---|",
    ]
    for f in FEATURES:
        a, b = contrasts[f]
        fa = f"{a:.1f}" if isinstance(a, float) else str(a)
        fb = f"{b:.1f}" if isinstance(b, float) else str(b)
        lines.append(f"| {f} | {fa} | {fb} | {EFFECTS[f]} |")
    lines += [
        "",
        "Numeric features compare their 5th and 95th percentiles in this cohort; categorical features "
        "compare the levels named (sex: M - F; ahf: True - False; manufacturer: vendor_b - vendor_a).",
        "",
        "## Marginal effects",
        "",
        "`marginal_<feature>.npy`: mean image given feature = b minus mean image given feature = a, the "
        "other clinical variables following their joint distribution given the feature (exact sums over "
        "sex, AHF and manufacturer, 7-point Gauss-Hermite quadrature over age and log BNPP; age clipping "
        "and rounding ignored), nuisance at its mean. This is what an *unadjusted* global "
        "sequence (class means, or a regression on the feature alone) estimates: AHF patients have higher "
        "BNPP and are older, so the AHF marginal effect includes the heart and shoulder-bone changes. "
        "Score unadjusted sequences against `marginal_*`, covariate-adjusted ones against `effect_*`.",
        "",
        "## Masks",
        "",
        f"`<feature>_mask.npy` (direct) and `marginal_<feature>_mask.npy`: bool, |effect| > {fraction:g} x "
        "max |effect| of that map. The manufacturer effect is global by design (no localised region).",
        "",
        "`marker_free_mask.npy`: bool, True wherever no side marker can be (either upper corner, any jitter, "
        "2 pixels clear): pass it to `seegaan-stats interpolate --mask` to leave the marker out of a test.",
        "",
        "## Joint distribution",
        "",
        "sex 50/50; age ~ N(60, 14) in [20, 95]; P(AHF) = logistic(-0.8 + 0.035 (age - 60)) (AHF patients "
        "are older); log BNPP ~ N(4.9 + 2.0 AHF + 0.005 (age - 60), 0.75) (pg/mL); manufacturer "
        "vendor_a/b/c 45/35/20 %; sex and manufacturer independent of the rest, assigned by blocked "
        "randomisation along (AHF, BNPP) (blocks of 2 and 20 patients) so that every sample is balanced. About 20% of patients have two images (same anatomy and clinical values, new "
        "nuisance). Every image is a frontal PA view. `params.csv` lists every image's nuisance values.",
        "",
        "Reproduce any map with `seegaan.phantom.effect_map(feature, a, b, size=...)` or "
        "`seegaan.phantom.marginal_effect_map(...)`.",
    ]
    return "\n".join(lines) + "\n"


def write_phantom(out: str | os.PathLike, *, n: int = 1200, size: int = 64,
                  seed: int | np.random.Generator | None = 0, bit_depth: int = 16, overwrite: bool = False,
                  marginal: bool = True, progress: Callable[[int], None] | None = None) -> Path:
    """Write a phantom cohort folder, atomically (built under a temporary name, then renamed).

    Layout: ``images/<image_id>.png``, ``clinical.csv`` (image_id, patient_id, sex, age, ahf, bnpp,
    manufacturer, view), ``params.csv`` (every render parameter), ``truth/effect_<f>.npy``,
    ``truth/<f>_mask.npy``, ``truth/marginal_<f>.npy``, ``truth/marginal_<f>_mask.npy``,
    ``truth/marker_free_mask.npy``, ``truth/README.md`` and ``phantom.json`` (settings and the compared values).

    Parameters
    ----------
    out : path-like
        Folder to create (its parent must exist).
    n, size, seed, bit_depth
        Number of images, side in pixels, randomness, PNG depth (8 or 16).
    overwrite : bool
        Replace an existing folder.
    marginal : bool
        Also write the marginal truth maps (a few hundred renders in all).
    progress : callable, optional
        Called with the number of images written since the last call.
    """
    out = Path(out)
    if int(n) != n or n < 1:
        raise SeegaanError(f"--n must be a positive integer; got {n}")
    if int(size) != size or size < 16:
        raise SeegaanError(f"--size must be an integer >= 16; got {size}")
    if bit_depth not in (8, 16):
        raise SeegaanError(f"--bit-depth must be 8 or 16; got {bit_depth}")
    if out.exists() and not overwrite:
        raise SeegaanError(f"{out} already exists; pass --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise SeegaanError(f"{out} exists and is not a folder; choose another --out")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise SeegaanError(f"the folder {parent} does not exist; create it first")
    seed_value = seed if isinstance(seed, (int, np.integer)) else None
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=parent))
    try:
        table, params = sample_cohort(int(n), seed=seed)
        (tmp / "images").mkdir()
        (tmp / "truth").mkdir()
        for row, p in zip(table.itertuples(index=False), params):
            _to_png(render(p, size=int(size)), tmp / "images" / f"{row.image_id}.png", bit_depth)
            if progress is not None:
                progress(1)
        table.to_csv(tmp / "clinical.csv", index=False)
        frame = pd.DataFrame([dataclasses.asdict(p) for p in params])
        frame.insert(0, "image_id", table["image_id"])
        frame.to_csv(tmp / "params.csv", index=False)
        contrasts = truth_contrasts(table)
        for f, (a, b) in contrasts.items():
            eff = effect_map(f, a, b, size=int(size))
            np.save(tmp / "truth" / f"effect_{f}.npy", eff)
            np.save(tmp / "truth" / f"{f}_mask.npy", effect_mask(eff))
            if marginal:
                marg = marginal_effect_map(f, a, b, size=int(size))
                np.save(tmp / "truth" / f"marginal_{f}.npy", marg)
                np.save(tmp / "truth" / f"marginal_{f}_mask.npy", effect_mask(marg))
        np.save(tmp / "truth" / "marker_free_mask.npy", marker_free_mask(int(size)))
        (tmp / "truth" / "README.md").write_text(_readme(contrasts, size=int(size), n=int(n), seed=seed_value,
                                                         fraction=MASK_FRACTION))
        meta = {"seegaan_version": __version__, "n_images": int(n), "size": int(size), "seed": seed_value,
                "bit_depth": bit_depth, "mask_fraction": MASK_FRACTION, "reference": REFERENCE,
                "contrasts": {f: list(v) for f, v in contrasts.items()}, "effects": EFFECTS,
                "n_patients": int(table["patient_id"].nunique())}
        (tmp / "phantom.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
        _replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _replace_folder(tmp: Path, out: Path) -> None:
    """Move ``tmp`` onto ``out``; an existing ``out`` is removed only after the new one is in place."""
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        old.rmdir()
        os.replace(out, old)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
