"""The sequence-dataset helpers every view shares: validation, step values and labels, per-step counts,
warnings and the summary. It imports none of the views (figures, animation, report, accessor).

A *sequence dataset* has dims ``step``, ``y`` and ``x``, the variables ``image`` and ``difference`` on
(step, y, x), and a step coordinate: ``feature_value`` (global sequences) or ``lambda`` (local ones).
"""

from __future__ import annotations

import os

import numpy as np
import xarray as xr

from seegaan._internal.errors import SeegaanError
from seegaan._internal.io import read_netcdf
from seegaan._internal.memory import check_steps_memory
from seegaan._internal.summary import Summary

__all__ = [
    "validate_sequence",
    "as_sequence_dataset",
    "sequence_summary",
    "step_values",
    "step_label",
    "plottable",
    "significant_per_step",
    "attr_warnings",
    "read_sequence",
]

_IMAGE_VARS = ("image", "difference")
_STEP_COORDS = ("lambda", "feature_value")  # what a step's value is called, first match wins


def validate_sequence(ds: xr.Dataset, *, source: str = "the dataset") -> xr.Dataset:
    """Check that ``ds`` is a sequence dataset; return it unchanged.

    Raises
    ------
    SeegaanError
        One line naming what is missing.
    """
    if not isinstance(ds, xr.Dataset):
        raise SeegaanError(
            f"{source} is a {type(ds).__name__}, not a sequence dataset; "
            "give a sequence netCDF file (seegaan-stats interpolate --out)"
        )
    missing = [d for d in ("step", "y", "x") if d not in ds.dims]
    if missing:
        hint = " (it looks like a latent cohort)" if "image" in ds.dims else ""
        raise SeegaanError(
            f"{source} is not a sequence dataset{hint}: it has no {', '.join(missing)} "
            "dimension; give the output of seegaan-stats interpolate"
        )
    for name in _IMAGE_VARS:
        if name not in ds.data_vars or ds[name].dims != ("step", "y", "x"):
            raise SeegaanError(
                f"{source} is not a sequence dataset: no '{name}' variable on (step, y, x); "
                "give the output of seegaan-stats interpolate"
            )
    if not any(c in ds.coords and ds[c].dims == ("step",) for c in _STEP_COORDS):
        raise SeegaanError(
            f"{source} is not a sequence dataset: no 'feature_value' or 'lambda' coordinate "
            "on step; give the output of seegaan-stats interpolate"
        )
    if ds.sizes["step"] < 1 or ds.sizes["y"] < 1 or ds.sizes["x"] < 1:
        raise SeegaanError(f"{source} has no images (a dimension of size 0); give a sequence with steps")
    # sizes come from the file, not its (compressed) bytes: 2 x 12000 x 12000 zeros are 2.3 MB on disk
    check_steps_memory(
        ds.sizes["step"], max(ds.sizes["y"], ds.sizes["x"]), f"{source} (its step, y, x sizes)", what="holds"
    )
    for name in ("significant", "p_value", "p_adjusted", "significant_difference"):
        if name in ds.data_vars and ds[name].dims != ("step", "y", "x"):
            raise SeegaanError(
                f"{source} is not a valid sequence: '{name}' has dims {ds[name].dims}, not (step, y, x); "
                "give the output of seegaan-stats interpolate"
            )
    if not np.isfinite(ds["image"].values).any():
        raise SeegaanError(f"{source} has no finite pixel in 'image' (all NaN or inf); give another sequence")
    return ds


def as_sequence_dataset(obj) -> xr.Dataset:
    """A sequence dataset from a path, a Dataset or a result with ``to_dataset()`` (validated)."""
    if isinstance(obj, (str, os.PathLike)):
        return read_sequence(obj)
    if not isinstance(obj, xr.Dataset) and callable(getattr(obj, "to_dataset", None)):
        obj = obj.to_dataset()
    return validate_sequence(obj)


def step_values(ds: xr.Dataset) -> tuple[str, np.ndarray]:
    """The name (``"λ"`` or the feature) and the values (step,) that label a sequence's steps."""
    if "lambda" in ds.coords:
        return "λ", np.asarray(ds["lambda"].values, dtype=float)
    return str(ds.attrs.get("feature", "") or "value"), np.asarray(ds["feature_value"].values, dtype=float)


def step_label(ds: xr.Dataset, k: int) -> str:
    """The text that names step ``k``: ``"F → M: 0.43"``, ``"age = 61.5"`` or ``"λ = 0.5"``."""
    name, values = step_values(ds)
    levels = str(ds.attrs.get("levels", "") or "")
    if "lambda" not in ds.coords and levels.count(",") == 1:
        a, b = levels.split(",")
        return f"{a} → {b}: {values[k]:.2f}"
    return f"{name} = {values[k]:.4g}"


def plottable(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with a ``feature_value`` step coordinate (a local sequence's λ) for :func:`plot_sequence`."""
    if "feature_value" in ds.coords:
        return ds
    return ds.assign_coords(feature_value=("step", step_values(ds)[1]))


def significant_per_step(ds: xr.Dataset) -> np.ndarray | None:
    """Significant pixels per step (step,), or None for an untested sequence."""
    if "significant" not in ds:
        return None
    return np.asarray(ds["significant"].values, bool).reshape(ds.sizes["step"], -1).sum(axis=1)


def attr_warnings(attrs: dict) -> list[str]:
    """The warnings recorded in a dataset's attrs (``warnings``, ``warning``, ``warning_*``; newline-separated)."""
    out = []
    for key in sorted(attrs):
        if key in ("warnings", "warning") or key.startswith("warning_"):
            value = attrs[key]
            items = value.split("\n") if isinstance(value, str) else [str(v) for v in np.atleast_1d(value)]
            out += [w.strip() for w in items if w.strip()]
    return out


def _fmt(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value)


def sequence_summary(ds: xr.Dataset) -> Summary:
    """A :class:`~seegaan._internal.summary.Summary` of a sequence dataset, from its arrays and attrs.

    Parameters
    ----------
    ds : xarray.Dataset
        A sequence dataset (global or local).

    Returns
    -------
    Summary
        Lines for the feature, steps, image size, permutations, correction and its parameters, the
        significant pixels (in all and per step), seed, decoder and recorded warnings, as far as present.
    """
    validate_sequence(ds)
    a = ds.attrs
    K, H, W = ds.sizes["step"], ds.sizes["y"], ds.sizes["x"]
    lines = []
    if "feature" in a:
        lines.append(("feature", f"{a['feature']} ({a['method']})" if a.get("method") else str(a["feature"])))
    if "image_id" in a:
        lines.append(("image", str(a["image_id"])))
    lines += [("steps", str(K)), ("image size", f"{H}x{W}")]
    if "n_perm" in a:
        scheme = f" ({a['permutation_scheme']})" if a.get("permutation_scheme") else ""
        lines.append(("permutations", f"{a['n_perm']}{scheme}"))
    per_step = significant_per_step(ds)
    if per_step is not None:
        if "correction" in a:
            lines.append(("correction", f"{a['correction']} at alpha {_fmt(a.get('alpha', ''))}"))
        if "statistic" in a:
            lines.append(("statistic", str(a["statistic"])))
        if a.get("null_model"):
            lines.append(("null model", str(a["null_model"])))
        if "calibration_verdict" in a:
            lines.append(
                (
                    "calibration",
                    f"family-wise error {float(a['calibration_fwer']):.3f} [{a.get('calibration_interval', '')}] on "
                    f"{a.get('calibration_n', '')} null cohorts: {a['calibration_verdict']}",
                )
            )
        if "sd_offset" in a:
            how = "plain studentised max-T" if str(a["sd_offset"]) == "0" else str(a["sd_offset"])
            lines.append(("SD offset s0", f"{_fmt(a.get('sd_offset_value', a['sd_offset']))} ({how})"))
        if "mask_pixels" in a:
            lines.append(("mask", f"{a['mask_pixels']} of {H * W} pixels tested"))
        if float(a.get("min_change", 0) or 0) > 0:
            lines.append(("minimum change", f"{float(a['min_change']):g} image units"))
        for key in sorted(k for k in a if k.startswith(("tfce_", "cluster_"))):
            lines.append((key, _fmt(a[key])))
        if "alternative" in a:
            lines.append(("alternative", str(a["alternative"])))
        if "smallest_p" in a:
            lines.append(("smallest attainable p", _fmt(a["smallest_p"])))
        tested = (K - 1) * (int(a["mask_pixels"]) if "mask_pixels" in a else H * W)
        total = int(per_step.sum())
        share = f" ({100 * total / tested:.2f}%)" if tested else ""
        lines.append(("significant pixels", f"{total} of {tested}{share}"))
        lines.append(("significant per step", ", ".join(str(int(s)) for s in per_step)))
    else:
        lines.append(("test", "none (differences untested)"))
    for key in ("seed", "decoder"):
        if key in a:
            lines.append((key, str(a[key])))
    lines += [(f"warning {i + 1}", w) for i, w in enumerate(attr_warnings(a))]
    kind = "local " if "lambda" in ds.coords else ""
    return Summary(title=f"SEE-GAAN {kind}sequence", lines=tuple(lines))


def read_sequence(path: str | os.PathLike) -> xr.Dataset:
    """Read a sequence netCDF file fully into memory and check that it is one.

    Parameters
    ----------
    path : str or Path
        A file written by ``seegaan-stats interpolate`` (or :meth:`SequenceResult.save`).

    Returns
    -------
    xarray.Dataset
        A validated sequence dataset (:func:`seegaan.open_sequence` also registers the ``ds.seegaan``
        accessor).

    Raises
    ------
    SeegaanError
        When the file is missing, unreadable or not a sequence dataset.
    """
    ds = read_netcdf(path, what="sequence")
    return validate_sequence(ds, source=str(path))
