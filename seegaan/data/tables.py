"""Clinical tables (CSV, TSV, Parquet) and patient-level train/val/test splits."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from seegaan._internal.choices import SPLITS
from seegaan._internal.errors import SeegaanError

#: the columns every image table leads with (also the reserved coordinates of a latent cohort)
RESERVED = ("image_id", "patient_id", "split")
TABLE_EXTENSIONS = (".csv", ".tsv", ".txt", ".parquet", ".pq")
#: columns tried, in order, for the file paths of a table that lists images
PATH_COLUMN_GUESSES = ("path", "file", "filename", "file_path", "image_path")


def is_table_file(path: str | os.PathLike) -> bool:
    """True when ``path`` names a CSV/TSV/Parquet file (by extension)."""
    return Path(path).suffix.lower() in TABLE_EXTENSIONS


def read_table(
    path: str | os.PathLike, *, str_columns: Sequence[str] = (), text_columns: Sequence[str] = ()
) -> pd.DataFrame:
    """Read a clinical table from CSV, TSV or Parquet.

    Parameters
    ----------
    path : path-like
        ``.csv``, ``.tsv``/``.txt`` (tab separated) or ``.parquet``/``.pq``.
    str_columns : sequence of str
        Columns read as strings (identifiers keep their leading zeros).
    text_columns : sequence of str
        Clinical columns kept as text (categories) even when nearly all their cells are numbers.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    SeegaanError
        Also when a column is numeric except for a few cells (``">90"``, ``"n/a"``): such a column is
        not guessed to be categorical; see :func:`check_numeric_columns`.
    """
    path = Path(path)
    if not path.exists():
        raise SeegaanError(f"{path}: no such table file")
    if path.is_dir():
        raise SeegaanError(f"{path}: is a folder; give a CSV or Parquet table file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            try:
                frame = pd.read_parquet(path)
            except ImportError as exc:
                raise SeegaanError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from exc
        elif suffix in (".csv", ".tsv", ".txt"):
            sep = "," if suffix == ".csv" else "\t"
            frame = pd.read_csv(path, sep=sep, dtype={c: str for c in str_columns}, keep_default_na=True)
        else:
            raise SeegaanError(f"{path}: unknown table format '{suffix}'; use .csv, .tsv or .parquet")
    except SeegaanError:
        raise
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SeegaanError(f"{path}: cannot read the table ({' '.join(str(exc).split())[:160]})") from None
    frame.columns = [str(c) for c in frame.columns]
    for col in str_columns:
        if col in frame.columns:
            frame[col] = frame[col].map(lambda v: v if pd.isna(v) else str(v))
    check_numeric_columns(
        frame,
        source=str(path),
        skip=[*str_columns, *text_columns],
        id_column=next((c for c in str_columns if c in frame.columns), None),
    )
    return frame


#: at most this fraction of a column's non-missing cells (and at least one) may be text for the column
#: to count as "numeric except for a few cells" (with at least 3 cells, or 1 when the column is that small)
NUMERIC_TYPO_FRACTION = 0.1
_NUMERIC_TYPO_MIN = 3


def check_numeric_columns(
    frame: pd.DataFrame, *, source: str, skip: Sequence[str] = (), id_column: str | None = None
) -> None:
    """Refuse a text column whose cells are numbers except for a few (at most
    ``max(3, 10%)`` of its non-missing cells, and fewer than its numbers).

    Such a column would silently become a categorical feature (``age`` with one ``">90"``); the error
    names the column, the first offending cells with their rows, and what to do.
    """
    skip = set(skip) | set(RESERVED) | set(PATH_COLUMN_GUESSES)
    for col in frame.columns:
        if col in skip or not (pd.api.types.is_object_dtype(frame[col]) or pd.api.types.is_string_dtype(frame[col])):
            continue
        values = frame[col]
        present = values[values.notna() & (values.astype(str).str.strip() != "")]
        if present.empty:
            continue
        numbers = pd.to_numeric(present.map(lambda v: str(v).strip()), errors="coerce")
        bad = present[numbers.isna()]
        n_num = len(present) - len(bad)
        if (
            len(bad) == 0
            or len(bad) >= n_num
            or len(bad) > max(_NUMERIC_TYPO_MIN, NUMERIC_TYPO_FRACTION * len(present))
        ):
            continue
        where = []
        for idx, value in bad.head(3).items():
            row = f"row {int(idx) + 1}" if isinstance(idx, (int, np.integer)) else f"row {idx}"
            if id_column is not None and id_column in frame.columns and pd.notna(frame.at[idx, id_column]):
                row += f" ({id_column} {frame.at[idx, id_column]})"
            where.append(f"{str(value)!r} at {row}")
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise SeegaanError(
            f"{source}: column {col!r} is numeric except for {len(bad)} cell(s): "
            f"{', '.join(where)}{more}; fix those cells or blank them (missing), or keep the "
            f"column as text with text_columns=[{col!r}] (--text-column {col!r})"
        )


#: names a clinical column cannot take in a cohort (the Dataset's variable and dims)
RESERVED_FEATURE_NAMES = ("w", "image", "latent")
_UNSAFE_NAME = re.compile(r"[\s/\x00-\x1f\x7f]+")


def feature_name(column) -> str:
    """The cohort coordinate name of a clinical column: whitespace, ``/`` and control characters
    (which netCDF/xarray cannot keep in a coordinate name) become ``_`` ("heart rate" -> ``heart_rate``,
    "BMI/kg" -> ``BMI_kg``); other names are unchanged."""
    name = str(column)
    if not _UNSAFE_NAME.search(name):
        return name
    return _UNSAFE_NAME.sub("_", name).strip("_") or "_"


def feature_names(columns: Sequence, *, source: str = "the clinical table") -> dict[str, str]:
    """``{column: coordinate name}`` for the clinical columns of a cohort (see :func:`feature_name`).

    Raises SeegaanError when two columns sanitise to the same name or a column takes a reserved name.
    """
    out: dict[str, str] = {}
    taken: dict[str, str] = {}
    for col in columns:
        col = str(col)
        if col in RESERVED:
            continue
        name = feature_name(col)
        if name in RESERVED_FEATURE_NAMES or name in RESERVED:
            raise SeegaanError(
                f"{source}: clinical column {col!r} would be named {name!r} in the cohort, "
                f"which is reserved ({', '.join(RESERVED + RESERVED_FEATURE_NAMES)}); "
                "rename the column"
            )
        if name in taken:
            raise SeegaanError(
                f"{source}: columns {taken[name]!r} and {col!r} both become {name!r} in the "
                "cohort (spaces and '/' turn into '_'); rename one of them"
            )
        taken[name] = col
        out[col] = name
    return out


def require_column(frame: pd.DataFrame, column: str, *, source: str, option: str) -> None:
    """Raise a one-line error when ``column`` is missing from ``frame``."""
    if column not in frame.columns:
        cols = ", ".join(map(str, frame.columns[:20])) + (" ..." if len(frame.columns) > 20 else "")
        raise SeegaanError(f"{source} has no column '{column}' (columns: {cols}); name the right one with {option}")


def _strata(values: pd.Series, n_bins: int = 5) -> pd.Series:
    """Turn a stratification column into string strata (numeric with many values -> quantile bins)."""
    if (
        pd.api.types.is_numeric_dtype(values)
        and not pd.api.types.is_bool_dtype(values)
        and values.nunique(dropna=True) > 10
    ):
        binned = pd.qcut(values, q=n_bins, duplicates="drop")
        return binned.astype(str).where(values.notna(), "<missing>")
    return values.map(lambda v: "<missing>" if pd.isna(v) else str(v))


def check_fractions(split: Sequence[float]) -> tuple[float, float, float]:
    """Validate (train, val, test) fractions."""
    try:
        fractions = tuple(float(f) for f in split)
    except (TypeError, ValueError):
        raise SeegaanError(f"split must be three fractions (train, val, test); got {split!r}") from None
    if len(fractions) != 3 or any(not np.isfinite(f) or f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise SeegaanError(f"split must be three non-negative fractions (train, val, test) summing to 1; got {split!r}")
    return fractions  # type: ignore[return-value]


def patient_splits(
    patient_id: Sequence,
    *,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    stratify: Sequence | None = None,
    seed: int | np.random.Generator | None = 0,
) -> np.ndarray:
    """Assign each image to train/val/test so that all images of a patient share one split.

    Parameters
    ----------
    patient_id : sequence, length n_images
        Patient of each image.
    split : (train, val, test)
        Fractions of *patients* in each split.
    stratify : sequence, length n_images, optional
        Values to stratify on (each patient takes the value of its first image); numeric columns with
        more than 10 distinct values are cut into quintiles, missing values form their own stratum.
    seed : int, Generator or None
        Randomness; the same seed gives the same splits.

    Returns
    -------
    numpy.ndarray of str, length n_images
    """
    fractions = check_fractions(split)
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed < 0:
        raise SeegaanError(f"the split seed must be a non-negative integer; got {seed}")
    rng = np.random.default_rng(seed)
    pid = pd.Series([str(p) for p in patient_id])
    patients = pd.Index(pid.unique()).sort_values()
    if stratify is None:
        patient_stratum = pd.Series("all", index=patients)
    else:
        values = pd.Series(list(stratify)) if not isinstance(stratify, pd.Series) else stratify.reset_index(drop=True)
        strata = _strata(values)
        patient_stratum = strata.groupby(pid.values).first().reindex(patients)
    assignment: dict[str, str] = {}
    cum = np.cumsum(fractions)
    for stratum in sorted(patient_stratum.unique()):
        members = np.asarray(patient_stratum.index[patient_stratum.values == stratum])
        order = members[rng.permutation(len(members))]
        bounds = np.rint(cum * len(order)).astype(int)
        start = 0
        for name, stop in zip(SPLITS, bounds):
            for p in order[start:stop]:
                assignment[p] = name
            start = stop
    return np.array([assignment[p] for p in pid], dtype=object)


def check_split_column(values: pd.Series, *, source: str) -> pd.Series:
    """Validate an existing split column (train/val/test; 'validation' accepted as 'val')."""
    norm = values.map(lambda v: "" if pd.isna(v) else str(v).strip().lower())
    norm = norm.replace({"validation": "val", "valid": "val", "training": "train"})
    bad = sorted(set(norm) - set(SPLITS))
    if bad:
        raise SeegaanError(
            f"{source}: the split column has values {bad[:5]} besides train/val/test; fix "
            "them or drop the column to let seegaan make splits"
        )
    return norm
