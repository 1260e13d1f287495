"""Table 1 of a cohort: clinical features per split (or any grouping) with tests across the groups.

Numeric features: mean ± SD per group and overall; Student's t-test for two groups, one-way ANOVA for
more (the same test: F = t² with two groups). Categorical features (strings, booleans, and numeric columns
holding only 0/1): n (%) per level, percentages of the non-missing values of the group; Pearson's
chi-squared test of the levels x groups table (no continuity correction). Missing values are counted per
group and left out of the statistics. Rows whose group is missing are left out (and counted).
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from seegaan._internal.choices import SPLITS
from seegaan._internal.errors import SeegaanError
from seegaan.data.cohort import open_cohort
from seegaan.data.tables import read_table
from seegaan.formats import save_csv

#: categorical features with more levels than this are left out unless named in ``features``
MAX_LEVELS = 20
_ID_COLUMNS = ("image_id", "patient_id", "path", "file", "filename")
#: the columns of Table 1 besides one per group; a group may not take one of these names
_FIXED_COLUMNS = ("feature", "level", "kind", "overall", "missing", "test_name", "statistic", "p_value")


def _as_frame(data) -> pd.DataFrame:
    """A DataFrame from a table, an ImageSet, a latent cohort (Dataset) or a file path."""
    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True)
    if hasattr(data, "table") and isinstance(data.table, pd.DataFrame):
        return data.table.reset_index(drop=True)
    if isinstance(data, xr.Dataset):
        if "image" not in data.dims:
            raise SeegaanError("the Dataset has no 'image' dimension; is it a latent cohort?")
        cols = {str(name): np.asarray(coord.values) for name, coord in data.coords.items() if coord.dims == ("image",)}
        return pd.DataFrame(cols)
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if path.suffix.lower() in (".nc", ".nc4", ".netcdf"):
            return _as_frame(open_cohort(path))

        return read_table(path, str_columns=("image_id", "patient_id"))
    raise SeegaanError(f"table1 needs a table, a latent cohort or a file path; got {type(data).__name__}")


def _is_missing(series: pd.Series) -> pd.Series:
    miss = series.isna()
    if series.dtype == object or pd.api.types.is_string_dtype(series):
        miss |= series.map(lambda v: isinstance(v, str) and v.strip() == "")
    return miss


def _kind(series: pd.Series) -> str:
    values = series[~_is_missing(series)]
    if pd.api.types.is_bool_dtype(series):
        return "categorical"
    if pd.api.types.is_numeric_dtype(series):
        uniq = set(np.unique(values.to_numpy(dtype=float))) if len(values) else set()
        return "categorical" if uniq and uniq <= {0.0, 1.0} else "numeric"
    return "categorical"


def _fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


@dataclass(frozen=True)
class Table1Result:
    """Table 1: ``frame`` has one row per numeric feature or categorical level.

    Columns of ``frame``: ``feature``, ``level`` ("" for numeric), ``kind``, one column per group and
    ``overall`` (formatted "mean ± SD" or "n (pct%)"), ``missing`` (per group "a/b/c", then overall),
    ``test_name``, ``statistic`` and ``p_value`` (on the feature's first row).
    """

    frame: pd.DataFrame
    by: str
    groups: tuple[str, ...]
    counts: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def as_text(self) -> str:
        # the headers are the frame's column names, which never repeat (a group named "test" is a split)
        cols = ["feature", *self.groups, "overall", "p_value", "test_name", "missing"]
        rows = [
            [
                "n (images)",
                *[str(self.counts["images"][g]) for g in self.groups],
                str(self.counts["images"]["overall"]),
                "",
                "",
                "",
            ]
        ]
        if "patients" in self.counts:
            rows.append(
                [
                    "n (patients)",
                    *[str(self.counts["patients"][g]) for g in self.groups],
                    str(self.counts["patients"]["overall"]),
                    "",
                    "",
                    "",
                ]
            )
        for _, r in self.frame.iterrows():
            name = r["feature"] if not r["level"] else f"  {r['feature']} = {r['level']}"
            rows.append(
                [name, *[r[g] for g in self.groups], r["overall"], _fmt_p(r["p_value"]), r["test_name"], r["missing"]]
            )
        widths = [max(len(str(x[i])) for x in [cols, *rows]) for i in range(len(cols))]
        title = f"Table 1 by {self.by}"
        lines = [
            title,
            "=" * len(title),
            "  ".join(c.ljust(w) for c, w in zip(cols, widths)),
            "  ".join("-" * w for w in widths),
        ]
        lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.as_text()

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.as_text())}</pre>"

    def to_csv(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write ``frame`` (plus the group sizes as first rows) as CSV, atomically."""
        head = pd.DataFrame(
            [
                {
                    "feature": "n_images",
                    "level": "",
                    "kind": "count",
                    **{g: str(self.counts["images"][g]) for g in (*self.groups, "overall")},
                }
            ]
        )
        frame = pd.concat([head, self.frame], ignore_index=True)
        return save_csv(frame, path, overwrite=overwrite)


def _numeric_rows(name: str, values: pd.Series, group: pd.Series, groups: Sequence[str]) -> list[dict]:
    x = pd.to_numeric(values, errors="coerce")
    miss = x.isna()
    row = {"feature": name, "level": "", "kind": "numeric"}
    samples = []
    for g in groups:
        v = x[(group == g) & ~miss].to_numpy(dtype=float)
        samples.append(v)
        row[g] = f"{v.mean():.1f} ± {v.std(ddof=1):.1f}" if len(v) > 1 else (f"{v[0]:.1f}" if len(v) else "")
    allv = x[~miss].to_numpy(dtype=float)
    row["overall"] = f"{allv.mean():.1f} ± {allv.std(ddof=1):.1f}" if len(allv) > 1 else ""
    row["missing"] = "/".join(str(int((miss & (group == g)).sum())) for g in groups) + f" ({int(miss.sum())})"
    usable = [s for s in samples if len(s) >= 2]
    stat, p, test = np.nan, np.nan, ""
    if len(usable) == 2 and len(usable) == len(samples):
        res = stats.ttest_ind(*usable)
        stat, p, test = float(res.statistic), float(res.pvalue), "t-test"
    elif len(usable) > 2 and len(usable) == len(samples):
        res = stats.f_oneway(*usable)
        stat, p, test = float(res.statistic), float(res.pvalue), "ANOVA"
    row.update(test_name=test, statistic=stat, p_value=p)
    return [row]


def _categorical_rows(name: str, values: pd.Series, group: pd.Series, groups: Sequence[str]) -> list[dict]:
    miss = _is_missing(values)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        labels = values.map(lambda v: "" if pd.isna(v) else f"{v:g}")
    else:
        labels = values.map(lambda v: "" if pd.isna(v) else str(v))
    levels = sorted(set(labels[~miss]))
    table = np.array([[int(((labels == lev) & (group == g) & ~miss).sum()) for g in groups] for lev in levels])
    totals = table.sum(axis=0)
    rows = []
    for i, lev in enumerate(levels):
        row = {"feature": name, "level": lev, "kind": "categorical"}
        for j, g in enumerate(groups):
            row[g] = f"{table[i, j]} ({100.0 * table[i, j] / totals[j]:.1f}%)" if totals[j] else "0"
        n_all = int(table[i].sum())
        row["overall"] = f"{n_all} ({100.0 * n_all / max(table.sum(), 1):.1f}%)"
        row.update(missing="", test_name="", statistic=np.nan, p_value=np.nan)
        rows.append(row)
    if rows:
        rows[0]["missing"] = "/".join(str(int((miss & (group == g)).sum())) for g in groups) + f" ({int(miss.sum())})"
        keep = table.sum(axis=1) > 0
        sub = table[keep][:, totals > 0]
        if sub.shape[0] >= 2 and sub.shape[1] >= 2:
            res = stats.chi2_contingency(sub, correction=False)
            rows[0].update(test_name="chi-squared", statistic=float(res.statistic), p_value=float(res.pvalue))
    return rows


def table1(table_or_cohort, *, by: str = "split", features: Sequence[str] | None = None) -> Table1Result:
    """The paper's Table 1: clinical features per group with tests across groups.

    Parameters
    ----------
    table_or_cohort : DataFrame, ImageSet, xarray.Dataset or path
        A clinical table (one row per image), an :class:`~seegaan.data.ImageSet`, a latent cohort
        (coordinates on dim ``image``), or a file (``.nc`` cohort, CSV/TSV/Parquet table).
    by : str
        Grouping column (``split`` by default: train/val/test in that order; others sorted).
    features : sequence of str, optional
        Features to describe; default every column except ids, the grouping and categorical columns
        with more than 20 levels (those are listed in the notes).

    Returns
    -------
    Table1Result
    """
    frame = _as_frame(table_or_cohort)
    if by not in frame.columns:
        raise SeegaanError(
            f"no column '{by}' to group by (columns: {', '.join(map(str, frame.columns))}); pass --by COLUMN"
        )
    notes = []
    if by == "split" and _is_missing(frame[by]).all():  # a cohort of images the model was not trained on
        frame = frame.assign(split="all")
        notes.append(
            "no split assigned (the images were not the model's training set): one group; "
            "group by a clinical column with --by COLUMN"
        )
    group_miss = _is_missing(frame[by])
    group = frame[by].map(lambda v: "" if pd.isna(v) else str(v))
    present = sorted(set(group[~group_miss]))
    groups = [g for g in SPLITS if g in present] + [g for g in present if g not in SPLITS]
    if not groups:
        raise SeegaanError(f"the column '{by}' has no values to group by")
    clash = set(groups) & set(_FIXED_COLUMNS)
    if clash:
        raise SeegaanError(
            f"the column '{by}' has the value(s) {sorted(clash)}, which Table 1 uses as column names; rename them"
        )
    if group_miss.any():
        notes.append(f"{int(group_miss.sum())} rows without a value of '{by}' left out")
        frame, group = frame.loc[~group_miss].reset_index(drop=True), group[~group_miss].reset_index(drop=True)
    if features is None:
        chosen = []
        for col in frame.columns:
            if col == by or col in _ID_COLUMNS or col == "split":
                continue
            s = frame[col]
            if _kind(s) == "categorical" and s[~_is_missing(s)].nunique() > MAX_LEVELS:
                notes.append(f"'{col}' left out: {s.nunique()} levels (name it in features to include it)")
                continue
            chosen.append(col)
    else:
        chosen = list(features)
        missing = [f for f in chosen if f not in frame.columns]
        if missing:
            raise SeegaanError(f"unknown feature(s) {missing}; columns are {', '.join(map(str, frame.columns))}")
    rows: list[dict] = []
    for col in chosen:
        s = frame[col]
        rows += (_numeric_rows if _kind(s) == "numeric" else _categorical_rows)(col, s, group, groups)
    columns = ["feature", "level", "kind", *groups, "overall", "missing", "test_name", "statistic", "p_value"]
    out = pd.DataFrame(rows, columns=columns)
    counts = {"images": {**{g: int((group == g).sum()) for g in groups}, "overall": int(len(frame))}}
    if "patient_id" in frame.columns:
        counts["patients"] = {
            **{g: int(frame.loc[group == g, "patient_id"].nunique()) for g in groups},
            "overall": int(frame["patient_id"].nunique()),
        }
    if len(groups) < 2:
        notes.append("only one group: no tests")
    return Table1Result(frame=out, by=by, groups=tuple(groups), counts=counts, notes=tuple(notes))
