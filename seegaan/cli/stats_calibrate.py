"""``seegaan-stats calibrate``: does the test keep its family-wise error on this cohort and decoder?

The command takes the trajectory and test options of ``seegaan-stats interpolate`` (their declarations are
reused, as ``pixel-test`` does) and :func:`seegaan.calibration.calibrate`'s own: ``--cohorts`` null cohorts
made from the cohort's latents, ``--perm`` draws each. It prints the family-wise error with its exact 95%
interval and a verdict, and writes them as JSON (``--out``).
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Annotated

import typer

from seegaan._internal.errors import SeegaanWarning
from seegaan._internal.io import check_output_path
from seegaan._internal.runtime import _check_threads, command_threads
from seegaan.calibration import calibrate
from seegaan.cli._common import decoding_device, default_inputs, progress_bar, user_errors
from seegaan.cli.stats_pixel import statistics_options, with_options
from seegaan.data.cohort import open_cohort
from seegaan.interpolation import interpolate
from seegaan.stats.correction import as_correction
from seegaan.stats.mask import load_mask

#: the options of ``interpolate`` that ``calibrate`` shares (the figure and output options are its own)
CALIBRATE_OPTIONS = (
    "feature",
    "cohort",
    "decoder",
    "method",
    "levels",
    "steps",
    "grid",
    "transform",
    "gam_lam",
    "gam_splines",
    "adjust",
    "perm",
    "null",
    "correction",
    "alpha",
    "tfce_e",
    "tfce_connectivity",
    "cluster_threshold",
    "alternative",
    "mask",
    "sd_offset",
    "min_change",
    "seed",
    "batch_size",
    "threads",
    "device",
    "overwrite",
)


def calibrate_command(
    cohorts: Annotated[int, typer.Option(help="Null cohorts made from the cohort's own latents.")] = 100,
    out: Annotated[
        Path | None, typer.Option(help="The result as JSON (default: seegaan-calibration-FEATURE.json).")
    ] = None,
    **options,
):
    """Check the test on null cohorts made from these latents (the feature's effect removed, each group's spread,
    the patients and the covariates kept): its family-wise error, with an exact 95% interval and a verdict."""
    o = options
    with user_errors():
        _check_threads(o["threads"])
        feature = o["feature"]
        out = out if out is not None else Path(f"seegaan-calibration-{feature}.json")
        cohort, decoder = default_inputs(o["cohort"], o["decoder"])
        inputs = [cohort, o["mask"], decoder if Path(str(decoder)).is_file() else None]
        check_output_path(out, overwrite=o["overwrite"], inputs=inputs, suffixes=".json")
        roi = load_mask(o["mask"]) if o["mask"] is not None else None
        correction = as_correction(
            o["correction"].value,
            sd_offset=o["sd_offset"],
            min_change=o["min_change"],
            tfce_e=o["tfce_e"],
            tfce_connectivity=o["tfce_connectivity"],
            cluster_threshold=o["cluster_threshold"],
        )
        device = decoding_device(decoder, o["device"])
        interp = interpolate(
            open_cohort(cohort),
            feature=feature,
            method=o["method"].value,
            levels=o["levels"],
            steps=o["steps"],
            grid=o["grid"],
            transform=o["transform"].value,
            gam_lam=o["gam_lam"],
            gam_splines=o["gam_splines"],
            adjust=o["adjust"],
        )
        with command_threads(o["threads"], torch=Path(str(decoder)).is_file()), warnings.catch_warnings():
            warnings.simplefilter("ignore", SeegaanWarning)
            with progress_bar(f"calibration ({cohorts} null cohorts)", None) as advance:
                result = calibrate(
                    interp,
                    str(decoder),
                    n_cohorts=cohorts,
                    n_perm=o["perm"],
                    seed=o["seed"],
                    progress=advance,
                    null=o["null"].value,
                    correction=correction,
                    alpha=o["alpha"],
                    alternative=o["alternative"].value,
                    mask=roi,
                    batch_size=o["batch_size"],
                    device=device,
                )
        result.save(out, overwrite=o["overwrite"], inputs=inputs)
        typer.echo(result.summary().as_text())
        typer.echo(("warning: " if result.verdict == "liberal" else "") + result.line())
        typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add ``calibrate`` to the ``seegaan-stats`` app."""
    app.command("calibrate")(calibrate_command)


def _calibrate_options() -> list[inspect.Parameter]:
    """interpolate's options, ``--perm`` defaulting to 99 draws per null cohort."""
    params = statistics_options(CALIBRATE_OPTIONS)
    out = []
    for p in params:
        if p.name == "perm":
            annotation = Annotated[int, typer.Option(help="Null draws per null cohort (99: smallest p 0.01).")]
            p = p.replace(default=99, annotation=annotation)
        out.append(p)
    return out


with_options(calibrate_command, _calibrate_options())
