"""The phantom's anatomy: render parameters, the density map and its display.

Every image is the display of a *density* map (the sum of smooth anatomical shapes, larger = more
attenuating = brighter) defined in resolution-free coordinates ``x`` (image left -> right) and ``y`` (top
-> bottom), both in [-1, 1], so the phantom renders at any size. :data:`EFFECTS` says how each clinical
variable changes the anatomy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from seegaan._internal.errors import SeegaanError

FEATURES = ("bnpp", "ahf", "sex", "age", "manufacturer")
MANUFACTURERS = ("vendor_a", "vendor_b", "vendor_c")
SEXES = ("F", "M")
#: (gamma, dynamic range) of the display curve of each manufacturer
DISPLAY = {"vendor_a": (1.0, 1.0), "vendor_b": (0.75, 0.92), "vendor_c": (1.35, 0.97)}
#: values of the other clinical variables while one feature's direct effect is computed
REFERENCE = {"sex": "F", "age": 60.0, "ahf": False, "bnpp": 300.0, "manufacturer": "vendor_a"}
NUMERIC_FEATURES = ("bnpp", "age")
LOG_BNPP_CENTER = math.log(300.0)
#: density shown as full white (no tissue of a plausible patient reaches it, so effects are not clipped)
FULL_SCALE = 1.1
#: the smallest image side a phantom renders at
MIN_SIZE = 16

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
    #: added to the heart's density (0.20 + 0.035 log(BNPP/300)): a factor co-localised with its size
    #: (``heart_jitter``), for the explanation benchmark
    heart_density: float = 0.0
    breast_jitter: float = 0.0
    rib_phase: float = 0.0
    # nuisance: acquisition
    noise: float = 0.0
    noise_seed: int = 0
    marker_side: int = 1
    marker_dx: float = 0.0
    marker_dy: float = 0.0
    # nuisance an experiment may tie to a label: a burned-in square token (0 = absent, 1 = full white)
    token: float = 0.0

    def replace(self, **changes) -> PhantomParams:
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
    if not (np.isfinite(p.token) and 0.0 <= p.token <= 1.0):
        raise SeegaanError(f"token must be a number in [0, 1] (0 = no token); got {p.token!r}")
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


def _pixel_centres(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Image coordinates (u: columns, v: rows, both in [-1, 1]) of every pixel centre."""
    t = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    return np.meshgrid(t, t)


def _grid(size: int, p: PhantomParams) -> tuple[np.ndarray, np.ndarray]:
    """Anatomical coordinates of every pixel centre (inverse of the nuisance similarity transform)."""
    u, v = _pixel_centres(size)
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
    u, v = _pixel_centres(size)
    cx = MARKER_CENTER[0] * (1 if p.marker_side >= 0 else -1) + p.marker_dx
    cy = MARKER_CENTER[1] + p.marker_dy
    stem = (np.abs(u - (cx - 0.035)) < 0.022) & (np.abs(v - cy) < MARKER_HALF[1])
    foot = (np.abs(u - cx) < MARKER_HALF[0]) & (np.abs(v - (cy + 0.055)) < 0.02)
    return (stem | foot).astype(np.float64)


def marker_free_mask(size: int, margin: int = 2) -> np.ndarray:
    """bool (size, size): True wherever no side marker can be in a phantom cohort (either upper corner, any
    jitter), ``margin`` pixels kept clear around it. Give it to ``--mask`` (API ``mask=``) to leave the
    marker out of a test: its null changes are the largest in the image."""
    u, v = _pixel_centres(size)
    pad = 2.0 * margin / size
    half_u = MARKER_HALF[0] + MARKER_JITTER[0] + pad
    half_v = MARKER_HALF[1] + MARKER_JITTER[1] + pad
    near = (np.abs(np.abs(u) - MARKER_CENTER[0]) <= half_u) & (np.abs(v - MARKER_CENTER[1]) <= half_v)
    return ~near


#: the shortcut token's centre (u, v) in image coordinates (lower image-left corner, below the effusions and
#: away from every clinical effect) and its half side; fixed, not moved by the anatomy or jittered
TOKEN_CENTER = (-0.875, 0.875)
TOKEN_HALF = 0.07


def shortcut_mask(size: int) -> np.ndarray:
    """bool (size, size): the pixels of the burned-in token (``PhantomParams.token``), the same on every
    image. A token of level t > 0 sets these pixels to at least ``2 t - 1`` (t = 1: full white, like the
    marker); with the default t = 0 no pixel changes, so images are bit-identical to token-free ones."""
    _check_size(size)
    u, v = _pixel_centres(int(size))
    return (np.abs(u - TOKEN_CENTER[0]) < TOKEN_HALF) & (np.abs(v - TOKEN_CENTER[1]) < TOKEN_HALF)


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
    d += (0.20 + 0.035 * log_b + p.heart_density) * _ellipse(
        x, y, 0.06 + 0.12 * (s - 1.0), 0.40 + 0.05 * (s - 1.0), 0.28 * s, 0.21 * s, edge=0.06, angle=-15.0
    )
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
    _check_size(size)
    p = _as_params(params)
    return _display(density(p, size=int(size)), p, noise=noise)


def _display(d: np.ndarray, p: PhantomParams, *, noise: bool) -> np.ndarray:
    """Density -> displayed image: the manufacturer's curve, noise, clipping, the marker, the token."""
    gamma, dyn = DISPLAY[p.manufacturer]
    v = np.clip(d / FULL_SCALE, 0.0, 1.0) ** gamma * dyn
    img = -1.0 + 2.0 * v
    if noise and p.noise > 0:
        img = img + np.random.default_rng(p.noise_seed).normal(0.0, p.noise, img.shape)
    img = np.clip(img, -1.0, 1.0)
    img = np.maximum(img, 2.0 * _marker(d.shape[0], p) - 1.0)  # the marker saturates at +1
    if p.token > 0:
        mask = shortcut_mask(d.shape[0])
        img[mask] = np.maximum(img[mask], 2.0 * p.token - 1.0)
    return img.astype(np.float32)


def _check_size(size) -> None:
    if int(size) != size or size < MIN_SIZE:
        raise SeegaanError(f"phantom size must be an integer >= {MIN_SIZE}; got {size!r}")
