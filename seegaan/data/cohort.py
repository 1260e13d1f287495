"""Latent cohorts: one latent ``w`` per image plus the clinical table, as an xarray Dataset.

Schema
------
- variable ``w`` (dims ``image``, ``latent``), float32, finite;
- coordinates on ``image``: ``image_id`` (str, unique), ``patient_id`` (str), ``split``
  (``train``/``val``/``test``, or ``""`` when no split was assigned: a cohort of images the model was not
  trained on has none) and one coordinate per clinical feature: numeric (float, missing = NaN),
  boolean (bool; a boolean column with missing values is stored as the strings ``"True"``/``"False"``
  with ``""`` for missing) or string categories (missing = ``""``). A column whose name netCDF cannot
  keep (spaces, ``/``) is stored as a sanitised name ("heart rate" -> ``heart_rate``) with the table's
  name in the coordinate's attrs ``original_name`` (and the Dataset's attrs ``renamed_columns``);
- attrs ``seegaan_version``, ``model`` (checkpoint identity), ``image_size`` (0 = unknown), ``created``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from seegaan._internal.choices import SPLITS
from seegaan._internal.errors import SeegaanError
from seegaan._internal.io import read_netcdf
from seegaan._internal.summary import Summary
from seegaan._version import __version__
from seegaan.data.tables import RESERVED, feature_names
from seegaan.formats import add_cf_attrs, save_netcdf

FeatureKind = Literal["numeric", "boolean", "categorical"]


def _column_to_coord(name: str, series: pd.Series) -> np.ndarray:
    """Convert one clinical column to the array stored in the cohort."""
    s = series.reset_index(drop=True)
    if pd.api.types.is_bool_dtype(s) and not s.isna().any():
        return s.to_numpy(dtype=bool)
    non_missing = s.dropna()
    if len(non_missing) and non_missing.map(lambda v: isinstance(v, (bool, np.bool_))).all():
        return np.array(["" if pd.isna(v) else str(bool(v)) for v in s], dtype=object)
    if pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.array(["" if pd.isna(v) else str(v) for v in s], dtype=object)


def create_cohort(
    w, table: pd.DataFrame, *, model: str = "", image_size: int | None = None, attrs: dict | None = None
) -> xr.Dataset:
    """Build a latent cohort from latents and a clinical table.

    Parameters
    ----------
    w : array-like, shape (n_images, n_latent)
        One latent per image, in the row order of ``table``.
    table : pandas.DataFrame
        One row per image with columns ``image_id`` and ``patient_id`` (``patient_id`` defaults to the
        image id when absent), optionally ``split``; every other column becomes a clinical feature.
    model : str
        Identity of the encoder/checkpoint that produced ``w`` (path and content hash).
    image_size : int, optional
        Side length of the images the latents encode (0 when unknown).
    attrs : dict, optional
        Extra attributes (str/int/float values).

    Returns
    -------
    xarray.Dataset
        The validated cohort.
    """
    w = np.asarray(w)
    if w.ndim != 2:
        raise SeegaanError(f"latents must be a 2-D array (images, latent); got shape {w.shape}")
    if not isinstance(table, pd.DataFrame):
        raise SeegaanError("table must be a pandas DataFrame with one row per image")
    if len(table) != w.shape[0]:
        raise SeegaanError(
            f"table has {len(table)} rows but there are {w.shape[0]} latents; give one row per image in the same order"
        )
    if "image_id" not in table.columns:
        raise SeegaanError(f"table has no image_id column (columns: {', '.join(map(str, table.columns))})")
    table = table.reset_index(drop=True)
    image_id = table["image_id"].astype(str).to_numpy(dtype=object)
    if "patient_id" in table.columns:
        patient_id = np.array(["" if pd.isna(v) else str(v) for v in table["patient_id"]], dtype=object)
        patient_id = np.where(patient_id == "", image_id, patient_id).astype(object)
    else:
        patient_id = image_id.copy()
    if "split" in table.columns:
        split = np.array(["" if pd.isna(v) else str(v) for v in table["split"]], dtype=object)
    else:
        split = np.full(len(table), "", dtype=object)  # not assigned: only a table or the caller says
    coords = {"image_id": ("image", image_id), "patient_id": ("image", patient_id), "split": ("image", split)}
    names = feature_names([c for c in table.columns if c not in RESERVED])
    renamed = {col: name for col, name in names.items() if col != name}
    for col in table.columns:
        if col in RESERVED:
            continue
        name = names[str(col)]
        attrs_ = {"original_name": str(col)} if str(col) in renamed else {}
        coords[name] = ("image", _column_to_coord(name, table[col]), attrs_)
    ds = xr.Dataset({"w": (("image", "latent"), w.astype(np.float32, copy=False))}, coords=coords)
    ds.attrs = {
        "seegaan_version": __version__,
        "model": str(model),
        "image_size": int(image_size or 0),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if renamed:
        ds.attrs["renamed_columns"] = "; ".join(f"{col!r} -> {name}" for col, name in renamed.items())
    for key, value in (attrs or {}).items():
        ds.attrs[str(key)] = value

    ds = add_cf_attrs(ds, "cohort")
    validate_cohort(ds)
    return ds


def validate_cohort(ds, *, source: str = "cohort") -> xr.Dataset:
    """Check that ``ds`` is a latent cohort; raise :class:`SeegaanError` naming what is wrong."""
    if not isinstance(ds, xr.Dataset):
        raise SeegaanError(f"{source} is not an xarray Dataset")
    if "w" not in ds.data_vars:
        raise SeegaanError(
            f"{source} is not a latent cohort: it has no variable 'w' "
            "(make one with `seegaan encode` or seegaan.create_cohort)"
        )
    if ds["w"].dims != ("image", "latent"):
        raise SeegaanError(f"{source}: 'w' must have dims ('image', 'latent'), not {ds['w'].dims}")
    if ds.sizes["image"] < 1 or ds.sizes["latent"] < 1:
        raise SeegaanError(f"{source} is empty (sizes {dict(ds.sizes)})")
    if not np.issubdtype(ds["w"].dtype, np.floating):
        raise SeegaanError(f"{source}: 'w' must be floating point, not {ds['w'].dtype}")
    w = ds["w"].values
    if not np.isfinite(w).all():
        bad = int((~np.isfinite(w)).any(axis=1).sum())
        raise SeegaanError(
            f"{source}: {bad} latent(s) contain NaN or inf; re-encode those images or drop them from the cohort"
        )
    for name in RESERVED:
        if name not in ds.coords or ds.coords[name].dims != ("image",):
            raise SeegaanError(f"{source} has no coordinate {name!r} on dim 'image'")
    ids = pd.Index(ds["image_id"].values)
    if not ids.is_unique:
        dup = ids[ids.duplicated()][0]
        raise SeegaanError(f"{source}: image_id values must be unique; {dup!r} appears more than once")
    bad_split = sorted(set(map(str, np.unique(ds["split"].values))) - set(SPLITS) - {""})
    if bad_split:
        raise SeegaanError(
            f"{source}: split must be one of {'/'.join(SPLITS)} or empty (not assigned); found {bad_split[:3]}"
        )
    return ds


def save_cohort(ds: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a cohort to netCDF (netCDF4 engine) atomically; returns the path."""
    validate_cohort(ds)
    path = Path(path)
    save_netcdf(ds, path, overwrite=overwrite)
    return path


def open_cohort(path: str | os.PathLike) -> xr.Dataset:
    """Read a latent cohort written by :func:`save_cohort` fully into memory and validate it."""
    ds = read_netcdf(path, what="cohort")
    return validate_cohort(ds, source=str(path))


def clinical_features(ds: xr.Dataset) -> list[str]:
    """Names of the clinical feature coordinates on dim ``image``."""
    return [str(c) for c in ds.coords if ds.coords[c].dims == ("image",) and c not in RESERVED]


def feature_kind(values: np.ndarray) -> FeatureKind:
    """numeric, boolean or categorical, from a stored coordinate array."""
    if values.dtype == bool:
        return "boolean"
    if np.issubdtype(values.dtype, np.number):
        return "numeric"
    levels = set(map(str, values)) - {""}
    return "boolean" if levels and levels <= {"True", "False"} else "categorical"


def feature_missing(values: np.ndarray) -> np.ndarray:
    """Boolean mask of missing entries (NaN for numbers, "" for strings)."""
    if values.dtype == bool:
        return np.zeros(values.shape, bool)
    if np.issubdtype(values.dtype, np.number):
        return ~np.isfinite(values.astype(float))
    return np.array([str(v) == "" or v is None for v in values], dtype=bool)


def get_feature(ds: xr.Dataset, name: str) -> np.ndarray:
    """The values of clinical feature ``name``; a one-line error lists the features available."""
    if name not in clinical_features(ds):
        available = ", ".join(clinical_features(ds)) or "none"
        raise SeegaanError(f"feature {name!r} is not in the cohort; available features: {available}")
    return np.asarray(ds.coords[name].values)


def cohort_hash(ds: xr.Dataset) -> str:
    """sha256 of the latents, image ids and patient ids (identity of a cohort's content)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(ds["w"].values).tobytes())
    for name in ("image_id", "patient_id"):
        h.update("\x1f".join(map(str, ds[name].values)).encode())
    return "sha256:" + h.hexdigest()


def cohort_summary(ds: xr.Dataset) -> Summary:
    """An R-style summary: images, patients, latent size, and per feature its type, levels or range."""
    validate_cohort(ds)
    splits = pd.Series(ds["split"].values).value_counts()
    lines = [
        ("images", str(ds.sizes["image"])),
        ("patients", str(len(np.unique(ds["patient_id"].values)))),
        ("latent size", str(ds.sizes["latent"])),
        (
            "splits",
            ", ".join(f"{s} {int(splits.get(s, 0))}" for s in SPLITS)
            + (f", not assigned {int(splits[''])}" if "" in splits.index else ""),
        ),
        ("model", str(ds.attrs.get("model", "")) or "unknown"),
        ("image size", str(ds.attrs.get("image_size", 0) or "unknown")),
        ("created", str(ds.attrs.get("created", ""))),
        ("seegaan version", str(ds.attrs.get("seegaan_version", ""))),
    ]
    rows = []
    for name in clinical_features(ds):
        values = np.asarray(ds.coords[name].values)
        kind = feature_kind(values)
        missing = feature_missing(values)
        present = values[~missing]
        if kind == "numeric":
            v = present.astype(float)
            desc = (
                f"min {np.min(v):.4g}  median {np.median(v):.4g}  max {np.max(v):.4g}  mean {np.mean(v):.4g}"
                if v.size
                else "all missing"
            )
        else:
            counts = pd.Series(list(map(str, present))).value_counts()
            shown = ", ".join(f"{k} ({n})" for k, n in counts.head(6).items())
            more = f", ... {len(counts) - 6} more" if len(counts) > 6 else ""
            desc = f"{len(counts)} levels: {shown}{more}" if len(counts) else "all missing"
        rows.append((name, kind, desc, str(int(missing.sum()))))
    return Summary(
        title="Latent cohort",
        lines=tuple(lines),
        tables=(("Clinical features", ("feature", "type", "levels / range", "missing"), tuple(rows)),),
    )
