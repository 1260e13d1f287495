"""Ground truth of the phantom: direct and marginal effect maps, true regions, and scoring against them.

The ground-truth *direct* effect of a feature (:func:`effect_map`) is ``render(feature=b) -
render(feature=a)`` with every other clinical variable at :data:`REFERENCE` and every nuisance at its
mean. Its *marginal* effect (:func:`marginal_effect_map`) lets the other clinical variables follow their
joint distribution given the feature (what an unadjusted comparison of images estimates).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from seegaan._internal.errors import SeegaanError
from seegaan.phantom.anatomy import (
    FEATURES,
    MANUFACTURERS,
    NUMERIC_FEATURES,
    REFERENCE,
    PhantomParams,
    _as_params,
    _check_size,
    _display,
    density,
    render,
)
from seegaan.phantom.clinical import AGE_MEAN, AGE_SD, LOG_BNPP_SD, MANUFACTURER_P, _mu_log_bnpp, _p_ahf

#: levels compared by the categorical truth maps: effect = render(b) - render(a)
CATEGORICAL_CONTRAST = {"ahf": (False, True), "sex": ("F", "M"), "manufacturer": ("vendor_a", "vendor_b")}
#: fraction of the largest |effect| above which a pixel belongs to the true region
MASK_FRACTION = 0.1


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
        raise SeegaanError(
            f"significance map {sig.shape} and truth mask {true.shape} differ in shape; "
            "render the truth at the sequence's image size"
        )
    both = int((sig & true).sum())
    n_sig, n_true = int(sig.sum()), int(true.sum())
    return {
        "dice": 2.0 * both / (n_sig + n_true) if n_sig + n_true else 1.0,
        "sensitivity": both / n_true if n_true else float("nan"),
        "outside": (n_sig - both) / n_sig if n_sig else 0.0,
        "n_significant": n_sig,
        "n_true": n_true,
    }


def explanation_scores(attribution, region) -> dict:
    """How much of an explanation map lies in a region (e.g. the part of the image a CNN relies on).

    Parameters
    ----------
    attribution : array-like (H, W)
        Any explanation map (attribution, difference image, statistic); its absolute value is scored.
    region : array-like of bool (H, W)
        The region (a truth mask, or :func:`~seegaan.phantom.shortcut_mask`).

    Returns
    -------
    dict
        ``mass`` (sum of |attribution| inside the region / sum over the image), ``dice_top`` (Dice of the
        region with the k pixels of largest |attribution|, k = the region's pixel count, ties broken by
        pixel order; as both sets have k pixels it is the share of the top k inside the region); both nan
        when the map is all zero (it points nowhere), ``chance_mass`` (the region's share of the image: the mass of a
        uniform map, and the expected Dice of k random pixels) and ``k``.
    """
    mag = np.abs(np.asarray(attribution, dtype=np.float64))
    true = np.asarray(region, dtype=bool)
    if mag.shape != true.shape or mag.ndim != 2:
        raise SeegaanError(f"explanation map {mag.shape} and region {true.shape} must be images of the same shape")
    if not np.isfinite(mag).all():
        raise SeegaanError("the explanation map has NaN or inf values")
    k = int(true.sum())
    if k == 0:
        raise SeegaanError("the region is empty")
    total = mag.sum()
    out = {"mass": float("nan"), "dice_top": float("nan"), "chance_mass": k / true.size, "k": k}
    if total > 0:
        top = np.zeros(mag.size, dtype=bool)
        top[np.argsort(-mag.ravel(), kind="stable")[:k]] = True
        out.update(mass=float(mag[true].sum() / total), dice_top=float((top & true.ravel()).sum() / k))
    return out


def read_truth(folder: str | os.PathLike, feature: str, *, marginal: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The (effect, mask) written by :func:`write_phantom` for ``feature`` (direct or marginal)."""
    feature = _check_feature(feature)
    truth = Path(folder) / "truth"
    stem = f"marginal_{feature}" if marginal else f"effect_{feature}"
    mask_name = f"marginal_{feature}_mask" if marginal else f"{feature}_mask"
    paths = truth / f"{stem}.npy", truth / f"{mask_name}.npy"
    for path in paths:
        if not path.exists():
            raise SeegaanError(
                f"{path} does not exist; is {folder} a phantom folder written by "
                "`seegaan phantom`" + (" with --marginal" if marginal else "") + "?"
            )
    return np.load(paths[0]), np.load(paths[1])


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
    sexes = (
        [("F", 0.5)]
        if feature == "sex" and value == "F"
        else [("M", 0.5)]
        if feature == "sex"
        else [("F", 0.5), ("M", 0.5)]
    )
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
                    nodes.append(
                        (w_sex * w_age * w_ahf * w_b, {"sex": sex, "age": float(age), "ahf": ahf, "bnpp": bnpp})
                    )
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
    _check_size(size)
    a, b = _coerce_value(feature, a), _coerce_value(feature, b)
    for v in (a, b):
        _as_params({feature: v})
    hi = _conditional_mean_image(feature, b, size=int(size), n_nodes=n_nodes)
    lo = _conditional_mean_image(feature, a, size=int(size), n_nodes=n_nodes)
    return (hi - lo).astype(np.float32)


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
