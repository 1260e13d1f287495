"""The paper's Fig. 6 in batch: true/false positives and negatives of a CNN, each explained.

:func:`select_cases` labels every image TP/FP/FN/TN from its truth and the CNN's decision (prediction above
``threshold``) and draws one image per case, at random with a seed, from the held-out images (the cohort's
``val`` and ``test`` splits) by default. :func:`explain_cases` explains each one as the paper does:

TP, TN (the CNN is right)
    a local sequence along the truth feature (:func:`seegaan.explain.local.local_sequence`), with the CNN's
    prediction under every frame (:func:`seegaan.explain.predictions.cnn_along`): what changes in this image
    when the feature changes, and whether the CNN follows;
FP, FN (the CNN is wrong)
    a counterfactual (:func:`seegaan.explain.counterfactual.explain`) solved to the *truth*: the truth value
    itself for a numeric truth (on the CNN's scale, ``truth_transform``), or ``threshold ∓ margin`` (one
    ``margin`` past the decision threshold, on the truth's side) for a class truth: what would the image
    have to look like for the CNN to be right;

and every case gets the vanilla-gradient, Grad-CAM and integrated-gradients maps of its reconstruction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from seegaan._internal.errors import SeegaanError
from seegaan.data.cohort import feature_kind, feature_missing, get_feature, validate_cohort
from seegaan.explain.attribution import attributions as attribute
from seegaan.explain.cnn import load_model

__all__ = ["CASES", "select_cases", "CaseSelection"]

CASES = ("TP", "FP", "FN", "TN")
#: the splits a case is drawn from by default
HELD_OUT = ("val", "test")


@dataclass(frozen=True)
class CaseSelection:
    """Every image's case and the chosen image per case.

    Attributes
    ----------
    table : pandas.DataFrame
        ``image_id``, ``split``, ``truth`` (the truth on the CNN's scale or 0/1), ``truth_positive``,
        ``prediction``, ``case`` for every image with a truth value.
    chosen : dict of case -> image_id or None
        None when no eligible image falls in the case.
    attrs : dict
        How the cases were made (threshold, truth, splits, seed).
    """

    table: pd.DataFrame
    chosen: dict
    attrs: dict = field(default_factory=dict)

    def counts(self) -> dict:
        return {case: int((self.table["case"] == case).sum()) for case in CASES}


def positive_level(values: np.ndarray, column: str, positive: str | None) -> str:
    """The level of a two-class column that counts as positive: ``positive``, or True, or the last level."""
    levels = sorted(set(map(str, values)))
    if positive is None:
        if len(levels) != 2:
            raise SeegaanError(f"{column!r} has levels {', '.join(levels)}; name the positive one with --positive")
        positive = "True" if "True" in levels else levels[-1]
    if positive not in levels:
        raise SeegaanError(f"--positive {positive!r} is not a level of {column!r} ({', '.join(levels)})")
    return positive


def _truth(cohort: xr.Dataset, truth: str, transform: str, positive: str | None, threshold: float):
    """(values on the CNN's scale or NaN, positive bool, ok) of the truth feature."""
    values = get_feature(cohort, truth)
    ok = ~feature_missing(values)
    kind = feature_kind(values[ok]) if ok.any() else "numeric"
    if kind == "numeric" and np.unique(values[ok]).size > 2:
        v = values.astype(np.float64)
        if transform == "log":
            ok &= np.where(ok, v > 0, False)
            v = np.log(np.where(ok, v, 1.0))
        elif transform != "none":
            raise SeegaanError(f"unknown truth transform {transform!r}; use none or log")
        return v, v > threshold, ok, "numeric"
    if transform != "none":
        raise SeegaanError(f"--truth-transform applies to a numeric truth; {truth!r} is a class feature")
    positive = positive_level(values[ok], truth, positive)
    pos = values.astype(str) == positive
    return pos.astype(np.float64), pos, ok, "class"


def select_cases(
    cohort: xr.Dataset,
    predictions: np.ndarray,
    *,
    truth: str,
    threshold: float,
    truth_transform: str = "none",
    positive: str | None = None,
    splits=HELD_OUT,
    seed: int = 0,
) -> CaseSelection:
    """TP/FP/FN/TN of every image and one image per case (module docstring).

    ``predictions`` (n_images,) are the CNN's answers (on the images or their reconstructions); the CNN says
    positive when its prediction is above ``threshold``. A numeric truth is positive above ``threshold``
    too, after ``truth_transform`` (``"log"`` when the CNN predicts the log of the feature); a class truth is
    positive at level ``positive``. ``splits``: the ``split`` values a case is drawn from (None: all images).
    """
    validate_cohort(cohort)
    predictions = np.asarray(predictions, np.float64)
    if predictions.shape != (cohort.sizes["image"],):
        raise SeegaanError(f"give one prediction per cohort image ({cohort.sizes['image']}), not {predictions.shape}")
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        raise SeegaanError(f"--threshold must be a number, not {threshold!r}") from None
    values, pos, ok, kind = _truth(cohort, truth, truth_transform, positive, threshold)
    decided = predictions > threshold
    split = cohort["split"].values.astype(str) if "split" in cohort.coords or "split" in cohort else None
    if splits is not None and split is None:
        raise SeegaanError("the cohort has no split: pass splits=None (--all-images) to draw from every image")
    table = pd.DataFrame(
        {
            "image_id": cohort["image_id"].values.astype(str),
            "split": split if split is not None else "",
            "truth": values,
            "truth_positive": pos,
            "prediction": predictions,
            "case": np.where(decided, np.where(pos, "TP", "FP"), np.where(pos, "FN", "TN")),
        }
    )[ok].reset_index(drop=True)
    eligible = np.ones(len(table), bool) if splits is None else table["split"].isin(list(splits)).to_numpy()
    rng = np.random.default_rng(seed)
    chosen = {}
    for case in CASES:
        idx = np.flatnonzero((table["case"] == case).to_numpy() & eligible)
        chosen[case] = None if idx.size == 0 else str(table["image_id"].iloc[int(rng.choice(idx))])
    attrs = {
        "truth": truth,
        "truth_kind": kind,
        "truth_transform": truth_transform,
        "positive": "" if positive is None else str(positive),
        "threshold": threshold,
        "splits": "all" if splits is None else ",".join(splits),
        "seed": int(seed),
    }
    return CaseSelection(table=table, chosen=chosen, attrs=attrs)


def case_target(selection: CaseSelection, image_id: str, margin: float) -> float:
    """The counterfactual target of a FP/FN image: its truth (numeric) or one margin past the threshold."""
    row = selection.table.loc[selection.table["image_id"] == image_id].iloc[0]
    if selection.attrs["truth_kind"] == "numeric":
        return float(row["truth"])
    t = float(selection.attrs["threshold"])
    return t + margin if bool(row["truth_positive"]) else t - margin


def case_attributions(model, reconstruction: np.ndarray, layer=None) -> dict:
    """VG, Grad-CAM and IG of one reconstruction (H, W)."""
    model = load_model(model)
    return {
        k: v[0] for k, v in attribute(model, reconstruction[None], methods=("vg", "gradcam", "ig"), layer=layer).items()
    }
