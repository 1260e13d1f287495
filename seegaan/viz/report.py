"""Self-contained HTML reports of sequences: figure, animation, parameters, counts, warnings, provenance.

One page per call, for one sequence or several side by side. Everything is inside the file: figures and
animations as base64 ``data:`` URIs, inline CSS, no scripts, and a Content-Security-Policy that forbids
the browser to fetch anything, so the page can be mailed or archived and opens the same offline.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import os
import re
from importlib import metadata
from pathlib import Path

import numpy as np
import xarray as xr
from PIL import Image

from seegaan._internal.errors import SeegaanError
from seegaan._internal.io import check_output_path
from seegaan._version import __version__
from seegaan.data.cohort import cohort_hash, open_cohort
from seegaan.data.tableone import _fmt_p, table1
from seegaan.formats import gif_bytes, save_text, write_png
from seegaan.viz.animation import render_frames
from seegaan.viz.datasets import as_sequence_dataset, attr_warnings, plottable, significant_per_step, step_label
from seegaan.viz.figures import plot_sequence

__all__ = ["make_report", "render_report"]

SUFFIXES = (".html", ".htm")
_MAX_STEPS_SHOWN = 10  # the figure shows at most this many evenly chosen steps

#: parameters shown first and how they are labelled; any other attr follows under its own name
_PARAMETERS = (
    ("feature", "feature"),
    ("method", "method"),
    ("levels", "levels"),
    ("image_id", "image"),
    ("grid", "grid"),
    ("transform", "transform"),
    ("covariates", "covariates"),
    ("gam_lam", "GAM λ"),
    ("gam_splines", "GAM splines"),
    ("n_images", "images"),
    ("n_missing", "images left out"),
    ("n_perm", "null draws"),
    ("null", "null"),
    ("null_model", "null model"),
    ("permutation_scheme", "scheme"),
    ("correction", "correction"),
    ("alpha", "α"),
    ("alternative", "alternative"),
    ("statistic", "statistic"),
    ("sd_offset", "s0 (SD offset)"),
    ("sd_offset_value", "s0 value"),
    ("min_change", "minimum change"),
    ("calibration_fwer", "calibration: family-wise error on null cohorts of these latents"),
    ("calibration_interval", "calibration: exact 95% interval"),
    ("calibration_n", "calibration: null cohorts"),
    ("calibration_verdict", "calibration: verdict"),
    ("mask_pixels", "mask: pixels tested"),
    ("mask_sha256", "mask sha256"),
    ("tfce_H", "TFCE H"),
    ("tfce_E", "TFCE E"),
    ("tfce_dh", "TFCE dh"),
    ("cluster_threshold", "cluster threshold"),
    ("connectivity", "connectivity"),
    ("smallest_p", "smallest attainable p"),
)
#: attrs shown in the reproducibility block instead
_PROVENANCE = (
    "command_line",
    "seed",
    "seegaan_version",
    "torch_version",
    "numpy_version",
    "cohort_hash",
    "cohort_model",
    "decoder",
    "created",
)

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;background:#f2f3f5;
color:#1d2430;font-size:14px}
main{padding:16px 20px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:17px;margin:8px 0}h3{font-size:14px;margin:14px 0 6px}
.sub{color:#5b6472;margin:0 0 12px}
.grid{display:grid;gap:18px;align-items:start}
.sequence{min-width:0}
img.plot{display:block;max-width:100%;height:auto;margin:12px 0}
table{border-collapse:collapse;background:#fff;margin:4px 0 8px;font-size:13px}
th,td{border:1px solid #d5d9e0;padding:3px 7px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#e8ebf0;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,monospace;font-size:12px;word-break:break-all}
ul.warnings{background:#fff4e0;border:1px solid #e7b45a;padding:6px 6px 6px 26px;margin:4px 0}
#hide-figures:target ~ main img.plot{visibility:hidden}
"""
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    if isinstance(value, np.ndarray):
        return ", ".join(_fmt(v) for v in value.ravel())
    return str(value)


def _data_uri(mime: str, payload: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def _table(header, rows, *, numeric=()) -> str:
    """An escaped HTML table; columns in ``numeric`` are right-aligned."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{_esc(c)}</td>' if i in numeric else f"<td>{_esc(c)}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _version(package: str) -> str:
    """The installed version of ``package`` (read from its metadata; the package is not imported)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


# ------------------------------------------------------------------------------------------ blocks


def _figure_png(ds: xr.Dataset) -> bytes:
    fig = plot_sequence(plottable(ds), max_steps=_MAX_STEPS_SHOWN)
    buf = io.BytesIO()
    write_png(fig, buf, dpi=100)
    return buf.getvalue()


def _parameter_rows(attrs: dict) -> list[tuple[str, str, str]]:
    warning_keys = {k for k in attrs if attr_warnings({k: attrs[k]}) or k in ("warnings", "warning")}
    rows = [(label, key, _fmt(attrs[key])) for key, label in _PARAMETERS if key in attrs]
    known = {k for k, _ in _PARAMETERS} | set(_PROVENANCE) | warning_keys
    rows += [(key.replace("_", " "), key, _fmt(attrs[key])) for key in sorted(attrs) if key not in known]
    return rows


def _step_rows(ds: xr.Dataset) -> tuple[list[str], list[tuple]]:
    K = ds.sizes["step"]
    per_step = significant_per_step(ds)
    change = np.abs(np.asarray(ds["difference"].values, float)).reshape(K, -1).max(axis=1)
    if per_step is None:
        return (["step", "value", "max |Δ|"], [(k, step_label(ds, k), f"{change[k]:.3g}") for k in range(K)])
    tested = int(ds.attrs["mask_pixels"]) if "mask_pixels" in ds.attrs else ds.sizes["y"] * ds.sizes["x"]
    rows = [
        (
            k,
            step_label(ds, k),
            int(per_step[k]),
            "" if k == 0 else f"{100 * per_step[k] / tested:.2f}",
            f"{change[k]:.3g}",
        )
        for k in range(K)
    ]
    return ["step", "value", "significant pixels", "% of tested", "max |Δ|"], rows


def _report_warnings(ds: xr.Dataset, cohort_hash: str | None) -> list[str]:
    out = attr_warnings(ds.attrs)
    per_step = significant_per_step(ds)
    if per_step is None:
        out.append("no permutation test: the differences shown are untested")
    elif int(per_step.sum()) == 0:
        out.append("no pixel is significant at this α")
    if "calibration_verdict" not in ds.attrs and per_step is not None:
        out.append("not calibrated on these latents (seegaan-stats calibrate, or interpolate --calibrate N)")
    recorded = ds.attrs.get("cohort_hash")
    if cohort_hash is not None and recorded and recorded != cohort_hash:
        out.append(
            f"the cohort given for Table 1 ({cohort_hash}) is not the one this sequence was computed from ({recorded})"
        )
    return out


def _provenance_rows(attrs: dict) -> list[tuple[str, str]]:
    rows = [
        ("command line", attrs.get("command_line", "") or "(not recorded)"),
        ("seed", attrs.get("seed", "(not recorded)")),
        ("seegaan version", attrs.get("seegaan_version", "(not recorded)")),
    ]
    for pkg in ("torch", "numpy"):
        key = f"{pkg}_version"
        rows.append(
            (
                f"{pkg} version",
                attrs[key]
                if key in attrs
                else f"{_version(pkg)} (this environment at report time; not recorded in the file)",
            )
        )
    for key, label in (("cohort_hash", "cohort hash"), ("cohort_model", "cohort encoded with")):
        if key in attrs:
            rows.append((label, attrs[key]))
    if "decoder" in attrs:
        rows.append(("decoder", attrs["decoder"]))
        sha = re.search(r"sha256:([0-9a-f]{64})", str(attrs["decoder"]))
        if sha:
            rows.append(("decoder sha256", sha.group(1)))
    if "created" in attrs:
        rows.append(("created", attrs["created"]))
    return [(k, _fmt(v)) for k, v in rows]


def _sequence_section(ds: xr.Dataset, name: str, cohort_hash: str | None) -> str:
    a = ds.attrs
    title = str(a.get("feature", "") or name)
    if a.get("image_id"):
        title += f" — image {a['image_id']}"
    if a.get("levels"):
        title += f" ({str(a['levels']).replace(',', ' → ')})"
    parts = [f'<section class="sequence"><h2>{_esc(title)}</h2><p class="sub mono">{_esc(name)}</p>']
    parts.append(
        f'<img class="plot figure" alt="sequence figure of {_esc(title)}" '
        f'src="{_data_uri("image/png", _figure_png(ds))}">'
    )
    parts.append(
        f'<img class="plot animation" alt="animation of {_esc(title)}" '
        f'src="{_data_uri("image/gif", gif_bytes(render_frames(ds)))}">'
    )
    if "reconstruction" in ds and ds["reconstruction"].dims == ("y", "x"):
        rec = np.clip((np.asarray(ds["reconstruction"].values, float) + 1) / 2, 0, 1)
        buf = io.BytesIO()
        Image.fromarray((rec * 255).round().astype(np.uint8), "L").save(buf, format="PNG")
        parts.append(
            '<h3>Reconstruction</h3><img class="plot reconstruction" alt="reconstruction" '
            f'style="width:{max(192, 3 * ds.sizes["x"])}px;image-rendering:pixelated" '
            f'src="{_data_uri("image/png", buf.getvalue())}">'
        )
    warns = _report_warnings(ds, cohort_hash)
    parts.append(
        "<h3>Warnings</h3>"
        + (
            '<ul class="warnings">' + "".join(f"<li>{_esc(w)}</li>" for w in warns) + "</ul>"
            if warns
            else "<p>none</p>"
        )
    )
    parts.append("<h3>Parameters</h3>" + _table(("parameter", "attribute", "value"), _parameter_rows(a)))
    header, rows = _step_rows(ds)
    parts.append("<h3>Significant pixels per step</h3>" + _table(header, rows, numeric=(0, 2, 3, 4)))
    parts.append("<h3>Reproducibility</h3>" + _table(("", "value"), _provenance_rows(a)))
    parts.append("</section>")
    return "".join(parts)


def _table1_section(result) -> str:
    groups = list(result.groups)
    header = ["feature", *groups, "overall", "p", "test", "missing"]
    rows = [
        ["n (images)", *[result.counts["images"][g] for g in groups], result.counts["images"]["overall"], "", "", ""]
    ]
    if "patients" in result.counts:
        rows.append(
            [
                "n (patients)",
                *[result.counts["patients"][g] for g in groups],
                result.counts["patients"]["overall"],
                "",
                "",
                "",
            ]
        )
    for _, r in result.frame.iterrows():
        label = r["feature"] if not r["level"] else f"{r['feature']} = {r['level']}"
        rows.append([label, *[r[g] for g in groups], r["overall"], _fmt_p(r["p_value"]), r["test_name"], r["missing"]])
    notes = "".join(f'<p class="sub">note: {_esc(n)}</p>' for n in result.notes)
    return (
        f'<section class="cohort"><h2>Cohort: Table 1 by {_esc(result.by)}</h2>{_table(header, rows)}{notes}</section>'
    )


# ------------------------------------------------------------------------------------------- public


def _load_cohort(cohort):
    """``(Table1Result, cohort hash or None)`` of a cohort path, Dataset or table."""
    data = cohort
    digest = None
    if isinstance(cohort, (str, os.PathLike)) and Path(cohort).suffix.lower() in (".nc", ".nc4", ".netcdf"):
        data = open_cohort(cohort)
    if isinstance(data, xr.Dataset):
        if "w" in data and "image_id" in data and "patient_id" in data:
            digest = cohort_hash(data)
    elif isinstance(cohort, (str, os.PathLike)) and not Path(cohort).is_file():
        raise SeegaanError(f"cohort file {cohort} does not exist; give the latent cohort (.nc) or its table")
    return table1(data), digest


def render_report(datasets, *, names=None, table1=None, cohort_hash: str | None = None) -> str:
    """The HTML text of a report of sequence datasets (see :func:`make_report`).

    Parameters
    ----------
    datasets : list of xarray.Dataset
        Validated sequence datasets, shown side by side (up to three per row).
    names : list of str, optional
        Where each came from (file names), shown under its title.
    table1 : Table1Result, optional
        The cohort's Table 1.
    cohort_hash : str, optional
        The cohort's hash, compared with each sequence's ``cohort_hash``.
    """
    names = list(names) if names is not None else [f"sequence {i + 1}" for i in range(len(datasets))]
    features = ", ".join(dict.fromkeys(str(ds.attrs.get("feature", "") or n) for ds, n in zip(datasets, names)))
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    cols = min(len(datasets), 3)
    sections = "".join(_sequence_section(ds, n, cohort_hash) for ds, n in zip(datasets, names))
    cohort = _table1_section(table1) if table1 is not None else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>SEE-GAAN report: {_esc(features)}</title><style>{_CSS}</style></head><body>"
        '<div id="hide-figures"></div><main>'
        f"<h1>SEE-GAAN report: {_esc(features)}</h1>"
        f'<p class="sub">written {_esc(now)} by seegaan {_esc(__version__)}; '
        f"{len(datasets)} sequence{'s' if len(datasets) != 1 else ''}</p>"
        f'<div class="grid" style="grid-template-columns:repeat({cols},minmax(0,1fr))">{sections}</div>'
        f"{cohort}</main></body></html>\n"
    )


def make_report(paths_or_datasets, *, out: str | os.PathLike, cohort=None, overwrite: bool = False) -> Path:
    """Write a self-contained HTML report of one or more sequences.

    For each sequence: the figure (:func:`~seegaan.viz.figures.plot_sequence`), the animation (GIF), the
    parameters recorded in its attrs (feature, method, grid, permutations and scheme, correction, α,
    statistic, s0, minimum change, mask, ...), the significant pixels per step, its warnings, and a
    reproducibility block (command line, seed, versions, cohort hash, decoder and its sha256). Local
    sequences (a ``lambda`` step coordinate) also show their ``reconstruction``. Several sequences are shown
    side by side. All text is escaped; images are embedded as ``data:`` URIs; nothing is fetched.

    Parameters
    ----------
    paths_or_datasets : path, xarray.Dataset, SequenceResult, or a list of them
        The sequences.
    out : str or Path
        The ``.html`` file, written atomically; it may not be one of the inputs.
    cohort : path, xarray.Dataset or DataFrame, optional
        The latent cohort (or its clinical table): its Table 1 is added, and a cohort whose hash differs
        from a sequence's ``cohort_hash`` is flagged. A sequence records only the hash, so the cohort is
        shown only when given.
    overwrite : bool
        Replace an existing ``out``.

    Returns
    -------
    Path
        ``out``.
    """
    items = list(paths_or_datasets) if isinstance(paths_or_datasets, (list, tuple)) else [paths_or_datasets]
    if not items:
        raise SeegaanError("make_report needs at least one sequence")
    inputs = [p for p in (*items, cohort) if isinstance(p, (str, os.PathLike))]
    out = check_output_path(out, overwrite=overwrite, inputs=inputs, suffixes=SUFFIXES)
    datasets = [as_sequence_dataset(item) for item in items]
    names = [str(item) if isinstance(item, (str, os.PathLike)) else f"sequence {i + 1}" for i, item in enumerate(items)]
    t1, digest = _load_cohort(cohort) if cohort is not None else (None, None)
    text = render_report(datasets, names=names, table1=t1, cohort_hash=digest)
    save_text(text, out, overwrite=overwrite, inputs=inputs, suffixes=SUFFIXES)
    return out
