"""``seegaan-stats inspect`` and ``interpolate``: cohorts, and interpolate + permutation-test sequences.

Each command parses its options and calls the library: :func:`seegaan.interpolate`,
:func:`seegaan.sequence` and :meth:`seegaan.SequenceResult.save`.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

from seegaan._internal.choices import ALTERNATIVES, CORRECTIONS, METHODS, NULLS, STATISTICS, TRANSFORMS, cli_enum
from seegaan._internal.io import check_output_path
from seegaan._internal.runtime import _check_threads, command_threads
from seegaan.calibration import calibrate as calibrate_test
from seegaan.cli._common import (
    ALONG_HELP,
    SCALE_HELP,
    SIZE_HELP,
    DeviceOption,
    InputScale,
    SchedulerOption,
    WorkersOption,
    checked_model,
    decoding_device,
    default_inputs,
    echo_warnings,
    progress_bar,
    user_errors,
)
from seegaan.data.cohort import cohort_summary, open_cohort
from seegaan.explain.predictions import cnn_along
from seegaan.interpolation import interpolate
from seegaan.sequences import sequence
from seegaan.stats import SeegaanWarning, as_correction, load_mask
from seegaan.stats.distributed import client_from_options
from seegaan.stats.engine import check_run
from seegaan.viz.animation import animate_option_hook, check_animation_path

Method = cli_enum("Method", METHODS)
Transform = cli_enum("Transform", TRANSFORMS)
Correction = cli_enum("Correction", CORRECTIONS)
Alternative = cli_enum("Alternative", ALTERNATIVES)
Statistic = cli_enum("Statistic", STATISTICS)
NullChoice = cli_enum("Null", NULLS)


def inspect_command(cohort: Annotated[Path, typer.Argument(help="Latent cohort (.nc).")]):
    """Summarise a latent cohort: images, patients, and every clinical feature's type, levels or range."""
    with user_errors():
        typer.echo(cohort_summary(open_cohort(cohort)).as_text())


def interpolate_command(
    feature: Annotated[str, typer.Option("--feature", help="Clinical feature to move along.")],
    cohort: Annotated[Path | None, typer.Option(help="Latent cohort (.nc); default: the bundled demo.")] = None,
    decoder: Annotated[
        str | None,
        typer.Option(
            help="Checkpoint path or module:callable mapping float32 (B, D) to (B, H, W); default: the demo model. "
            "module:callable imports that module and runs its code: give only code you trust."
        ),
    ] = None,
    method: Annotated[
        Method, typer.Option(help="Interpolator (auto: class-mean for categories, gam for numbers).")
    ] = Method("auto"),
    levels: Annotated[str | None, typer.Option(help="Class-mean groups 'A,B' (from A to B).")] = None,
    steps: Annotated[int, typer.Option(help="Number of steps K (grid from the 5th to the 95th percentile).")] = 8,
    grid: Annotated[str | None, typer.Option(help="Explicit grid values 'v1,v2,...' in feature units.")] = None,
    transform: Annotated[Transform, typer.Option(help="Fit on log(feature) for skewed lab values.")] = Transform(
        "none"
    ),
    gam_lam: Annotated[
        str, typer.Option(help="GAM smoothing: a positive number or 'auto' (GCV per dimension).")
    ] = "0.6",
    gam_splines: Annotated[int, typer.Option(help="Number of GAM B-splines.")] = 20,
    adjust: Annotated[
        str | None, typer.Option(help="Covariates 'COL,COL' (in the null model; Freedman-Lane under permutation).")
    ] = None,
    perm: Annotated[
        int, typer.Option(help="Null draws B: sign flips or permutations (0 = decode only; 100 reproduces the paper).")
    ] = 1000,
    null: Annotated[
        NullChoice,
        typer.Option(
            "--null",
            help="The null: sign-flip (the weighted null model's residual latents, one random sign per patient; "
            "valid under unequal spread, several images per patient and curved decoders) or permutation (of the "
            "feature's labels; exact when the patients are exchangeable, i.e. equal spread, and then more powerful; "
            "far too liberal when a small group is more variable).",
        ),
    ] = NullChoice("sign-flip"),
    correction: Annotated[
        Correction, typer.Option(help="Multiple-testing correction over pixels x steps.")
    ] = Correction("maxt"),
    statistic: Annotated[
        Statistic,
        typer.Option(
            help="Pixel statistic: the decoded difference (auto = difference; the welch and hc3 statistics of "
            "earlier versions were retired)."
        ),
    ] = Statistic("auto"),
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    tfce_e: Annotated[
        float | None, typer.Option(help="tfce: extent exponent (H = 2; E = 0.5 or 1 for 2-D maps); default 0.5.")
    ] = None,
    tfce_connectivity: Annotated[
        int | None, typer.Option(help="tfce: pixel neighbourhood, 4 (edges) or 8 (edges and corners); default 4.")
    ] = None,
    cluster_threshold: Annotated[
        float | None, typer.Option(help="cluster: cluster-forming threshold on the standardised difference; default 3.")
    ] = None,
    alternative: Annotated[Alternative, typer.Option(help="Direction of the difference tested.")] = Alternative(
        "two-sided"
    ),
    mask: Annotated[
        Path | None,
        typer.Option(help="Test only these pixels: .npy (bool or 0/1) or PNG (nonzero = tested) of the image size."),
    ] = None,
    sd_offset: Annotated[
        str | None,
        typer.Option(
            help="maxt: s0 added to each pixel's permutation SD (z = d / (SD + s0)): a number (image units), "
            "'median' or 'pNN' (that percentile of the SDs); default 0, the plain studentised max-T."
        ),
    ] = None,
    min_change: Annotated[
        float,
        typer.Option(
            help="maxt/maxd: call a pixel significant only where its change exceeds this many image units "
            "([-1, 1] scale; 0.05 = 2.5% of the range); default 0, any change."
        ),
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the permutations (recorded in the output).")] = 0,
    batch_size: Annotated[int, typer.Option(help="Permutations per streamed batch (memory only, not results).")] = 16,
    threads: Annotated[
        int,
        typer.Option(
            help="Threads for torch, Numba and BLAS together (0 = the libraries' defaults, all cores; 1, the "
            "default, is fastest for small models and on shared machines)."
        ),
    ] = 1,
    device: DeviceOption = "cpu",
    out: Annotated[Path | None, typer.Option(help="Output netCDF (default: seegaan-FEATURE.nc).")] = None,
    plot: Annotated[Path | None, typer.Option(help="Figure PNG (default: the --out path with .png).")] = None,
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
    animate: Annotated[
        Path | None,
        typer.Option(
            help="Also write an animation of the sequence and its significant differences (.gif, or .mp4 with "
            "the [report] extra)."
        ),
    ] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Do not write a figure.")] = False,
    calibrate: Annotated[
        int | None,
        typer.Option(
            help="Also check the test on N null cohorts made from these latents (the feature's effect removed, "
            "spread and patients kept; 99 draws each) and store its family-wise error and verdict in the output "
            "(seegaan-stats calibrate; about a minute on one CPU core for N = 100 on the demo).",
            show_default=False,
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help=ALONG_HELP)] = None,
    input_size: Annotated[str | None, typer.Option(help="--model: " + SIZE_HELP)] = None,
    input_scale: Annotated[InputScale, typer.Option(help="--model: " + SCALE_HELP)] = InputScale("minus1-1"),
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
):
    """Trajectory along FEATURE, decoded, with permutation-tested pixel differences (netCDF + figure)."""
    with user_errors():
        _check_threads(threads)
        out = out if out is not None else Path(f"seegaan-{feature}.nc")
        png = None if no_plot else (plot or out.with_suffix(".png"))
        cohort, decoder = default_inputs(cohort, decoder)
        inputs = [cohort, mask, decoder if Path(str(decoder)).is_file() else None]
        # every output is checked before any work: not an input, the right suffix, not each other
        check_output_path(out, overwrite=overwrite, inputs=inputs, suffixes=".nc")
        if png is not None:
            check_output_path(png, overwrite=overwrite, inputs=inputs, suffixes=(".png", ".pdf", ".svg"), others=[out])
        if animate is not None:
            check_animation_path(animate, overwrite=overwrite, inputs=inputs)  # .gif/.mp4: never --out/--plot
        check_run(n_perm=perm, alpha=alpha, batch_size=batch_size, seed=seed)  # before any work
        roi = load_mask(mask) if mask is not None else None  # a bad mask fails before the fit
        options = as_correction(
            correction.value,
            sd_offset=sd_offset,
            min_change=min_change,
            tfce_e=tfce_e,
            tfce_connectivity=tfce_connectivity,
            cluster_threshold=cluster_threshold,
        )
        checkpoint = Path(str(decoder)).is_file()
        device = decoding_device(decoder, device)  # before any work: e.g. cuda without a GPU
        net = checked_model(model, input_size, input_scale, cohort)  # tried on two images before any work
        # a cluster is reached (or refused) before any work; its workers load the decoder themselves
        with client_from_options(workers, scheduler) as client, command_threads(threads, torch=checkpoint):
            result = _interpolate_and_test(
                cohort,
                decoder,
                feature=feature,
                method=method.value,
                levels=levels,
                steps=steps,
                grid=grid,
                transform=transform.value,
                gam_lam=gam_lam,
                gam_splines=gam_splines,
                adjust=adjust,
                perm=perm,
                options=options,
                statistic=statistic.value,
                alpha=alpha,
                alternative=alternative.value,
                seed=seed,
                batch_size=batch_size,
                mask=roi,
                client=client,
                null=null.value,
                device=device,
            )
        if calibrate is not None:
            with command_threads(threads, torch=checkpoint):
                result = calibrated(
                    result,
                    decoder,
                    n_cohorts=calibrate,
                    seed=seed,
                    null=null.value,
                    correction=options,
                    alpha=alpha,
                    alternative=alternative.value,
                    mask=roi,
                    batch_size=batch_size,
                    device=device,
                )
        if net is not None:
            with command_threads(threads, torch=True):
                result = cnn_along(result, net)
        result.save(out, png, overwrite=overwrite)
        if animate is not None:
            animate_option_hook(result, animate, overwrite=overwrite)
        typer.echo(result.summary().as_text())
        typer.echo(
            f"wrote {out}"
            + (f" and {png}" if png is not None else "")
            + (f" and {animate}" if animate is not None else "")
        )


def _interpolate_and_test(
    cohort,
    decoder,
    *,
    feature,
    method,
    levels,
    steps,
    grid,
    transform,
    gam_lam,
    gam_splines,
    adjust,
    perm,
    options,
    statistic,
    alpha,
    alternative,
    seed,
    batch_size,
    mask,
    client=None,
    null="sign-flip",
    device="cpu",
):
    """Fit the trajectory, decode and test it; notes and warnings go to stderr as single lines."""
    interp = interpolate(
        open_cohort(cohort),
        feature=feature,
        method=method,
        levels=levels,
        steps=steps,
        grid=grid,
        transform=transform,
        gam_lam=gam_lam,
        gam_splines=gam_splines,
        adjust=adjust,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SeegaanWarning)
        with progress_bar(f"permutations ({feature})", None) as advance:
            # the spec: sequence() loads it on the device (Dask workers load it themselves, on the same device)
            result = sequence(
                interp,
                str(decoder),
                n_perm=perm,
                correction=options,
                statistic=statistic,
                alpha=alpha,
                alternative=alternative,
                seed=seed,
                batch_size=batch_size,
                mask=mask,
                progress=advance,
                client=client,
                null=null,
                device=device,
                command_line=" ".join(["seegaan-stats", *sys.argv[1:]]),
            )
    # notes after the test: an error in the test's own checks stays the only line on stderr
    for note in interp.notes:
        typer.echo(f"note: {note}", err=True)
    if interp.n_missing:
        typer.echo(
            f"note: {interp.n_missing} image(s) without {feature}"
            f"{' or a covariate' if interp.covariates else ''} were left out",
            err=True,
        )
    echo_warnings(caught)
    return result


def register(app: typer.Typer) -> None:
    """Add ``inspect`` and ``interpolate`` to the ``seegaan-stats`` app."""
    app.command("inspect")(inspect_command)
    app.command("interpolate")(interpolate_command)


def calibrated(result, decoder, *, n_cohorts: int, seed: int, **test_options):
    """``result`` with :func:`seegaan.calibration.calibrate` attached; the verdict goes to stderr as one line."""
    with progress_bar(f"calibration ({n_cohorts} null cohorts)", None) as advance:
        cal = calibrate_test(
            result.interpolation, str(decoder), n_cohorts=n_cohorts, seed=seed, progress=advance, **test_options
        )
    typer.echo(f"{'warning' if cal.verdict == 'liberal' else 'note'}: calibration: {cal.line()}", err=True)
    return cal.attach(result)
