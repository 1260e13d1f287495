"""``seegaan-stats predict``, ``explain`` and ``local``: a CNN's predictions over a cohort, a
counterfactual (with attribution maps) for one image, and one image's permutation-tested local sequence.

Each command parses its options and calls :func:`seegaan.explain.predictions.predict`, :func:`seegaan.explain.explain`
or :func:`seegaan.explain.local.local_sequence`.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from seegaan import demo
from seegaan._internal.choices import ALTERNATIVES, CORRECTIONS, NULLS, STATISTICS, TRANSFORMS, cli_enum
from seegaan._internal.errors import SeegaanError
from seegaan._internal.io import check_output_path
from seegaan._internal.runtime import command_threads
from seegaan.cli._common import (
    ALONG_HELP,
    DeviceOption,
    InputScale,
    SchedulerOption,
    WorkersOption,
    checked_model,
    decoding_device,
    default_model,
    echo_warnings,
    progress_bar,
    user_errors,
)
from seegaan.cli._common import MODEL_HELP as _MODEL_HELP
from seegaan.cli._common import SCALE_HELP as _SCALE_HELP
from seegaan.cli._common import SIZE_HELP as _SIZE_HELP
from seegaan.cli._common import default_inputs as _default_inputs
from seegaan.data.cohort import open_cohort, save_cohort
from seegaan.explain.attribution import check_methods
from seegaan.explain.cnn import load_model
from seegaan.explain.counterfactual import _check_direction, _check_tol, explain, parse_lambda_range
from seegaan.explain.directions import DIRECTIONS
from seegaan.explain.local import local_sequence, parse_lambdas
from seegaan.explain.predictions import check_feature_name, cnn_along, predict
from seegaan.stats import SeegaanWarning
from seegaan.stats.distributed import client_from_options

On = cli_enum("On", ("reconstruction",))
LocalMethod = cli_enum("LocalMethod", ("auto", "linear", "gam"))
Correction = cli_enum("Correction", CORRECTIONS)
Alternative = cli_enum("Alternative", ALTERNATIVES)
Statistic = cli_enum("Statistic", STATISTICS)
NullChoice = cli_enum("Null", NULLS)
Transform = cli_enum("Transform", TRANSFORMS)
DirectionChoice = cli_enum("Direction", DIRECTIONS)

Threads = Annotated[
    int,
    typer.Option(
        help="Threads for torch, Numba and BLAS together (0 = the libraries' defaults, all cores; 1, the "
        "default, is fastest for small models and on shared machines)."
    ),
]


def _inputs(cohort: Path | None, decoder: str | None, *, decoder_needed: bool = True):
    """The bundled demo when neither --cohort nor --decoder is given (as ``seegaan-stats interpolate``)."""
    if not decoder_needed:
        return (demo.cohort_path() if cohort is None else cohort), None
    return _default_inputs(cohort, decoder)


def _existing(*paths) -> list:
    return [p for p in paths if p is not None and Path(str(p)).is_file()]


def predict_command(
    model: Annotated[str, typer.Option(help=_MODEL_HELP)],
    name: Annotated[str, typer.Option(help="Name of the new numeric feature holding the predictions.")],
    out: Annotated[Path, typer.Option(help="Output cohort (.nc) with the new feature.")],
    cohort: Annotated[Path | None, typer.Option(help="Latent cohort (.nc); default: the bundled demo.")] = None,
    decoder: Annotated[
        str | None,
        typer.Option(help="Checkpoint or module:callable, for --on reconstruction; default: the demo model."),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(help="Folder of the cohort's radiographs, read by image_id (instead of reconstructions)."),
    ] = None,
    on: Annotated[
        On | None, typer.Option(help="Run the CNN on the reconstructions G(w) (the default without --images).")
    ] = None,
    input_size: Annotated[str | None, typer.Option(help=_SIZE_HELP)] = None,
    input_scale: Annotated[InputScale, typer.Option(help=_SCALE_HELP)] = InputScale("minus1-1"),
    both: Annotated[
        bool,
        typer.Option(
            help="With --images: also run the CNN on the reconstructions (NAME_reconstruction) and report the gap."
        ),
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Images per model call (memory only).")] = 32,
    threads: Threads = 1,
    device: DeviceOption = "cpu",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
):
    """Add a CNN's predictions for every cohort image as a numeric feature (on images or reconstructions)."""
    with user_errors():
        if images is not None and on is not None:
            raise SeegaanError("give either --images or --on reconstruction, not both")
        if both and images is None:
            raise SeegaanError("--both compares the images with their reconstructions: give --images")
        cohort, decoder = _inputs(cohort, decoder, decoder_needed=images is None or both)
        check_output_path(out, overwrite=overwrite, inputs=_existing(cohort, decoder, model), suffixes=".nc")
        if images is None or both:
            device = decoding_device(decoder, device)  # before any work: e.g. cuda without a GPU
        elif device != "cpu":
            raise SeegaanError(
                "--device is where the decoder runs; predictions on --images decode nothing: drop --device"
            )
        ds = open_cohort(cohort)
        check_feature_name(ds, name)
        if both:
            check_feature_name(ds, f"{name}_reconstruction")
        with command_threads(threads):
            net = load_model(model, input_size=input_size, input_scale=input_scale.value)
            with progress_bar(f"predict {name}", ds.sizes["image"]) as advance:
                result = predict(
                    ds,
                    net,
                    name=name,
                    images=images,
                    decoder=None if images is not None else decoder,
                    batch_size=batch_size,
                    progress=advance,
                    device="cpu" if images is not None else device,
                )
            if both:
                with progress_bar(f"predict {name} on the reconstructions", ds.sizes["image"]) as advance:
                    result = predict(
                        result,
                        net,
                        name=f"{name}_reconstruction",
                        decoder=decoder,
                        batch_size=batch_size,
                        progress=advance,
                        device=device,
                    )
        save_cohort(result, out, overwrite=overwrite)
        values = result[name].values
        typer.echo(
            f"{name}: min {np.min(values):.4g}  median {np.median(values):.4g}  max {np.max(values):.4g} "
            f"over {values.size} images"
        )
        if both:
            gap = np.abs(result[f"{name}_reconstruction"].values - values)
            typer.echo(
                f"|{name} on G(w) - on the image|: mean {gap.mean():.4g}  median {np.median(gap):.4g}  "
                f"90th percentile {np.quantile(gap, 0.9):.4g}  max {gap.max():.4g}"
            )
        typer.echo(f"wrote {out}")


def explain_command(
    image: Annotated[str, typer.Option("--image", help="image_id of the image to explain.")],
    target: Annotated[float, typer.Option(help="The prediction wanted (in the model's output units).")],
    out: Annotated[Path, typer.Option(help="Output netCDF (.nc).")],
    model: Annotated[
        str | None,
        typer.Option(help=_MODEL_HELP + " Default with the bundled demo: its CNN of log NT-proBNP."),
    ] = None,
    feature: Annotated[
        str | None,
        typer.Option(
            help="Feature defining the direction (class: own level -> other; numeric: split at the target); "
            "default: the model's predictions over the cohort."
        ),
    ] = None,
    levels: Annotated[str | None, typer.Option(help="Class feature: CURRENT,DESIRED levels.")] = None,
    tol: Annotated[float, typer.Option(help="Accept |prediction - target| <= tol.")] = 0.01,
    lambda_range: Annotated[str, typer.Option(help="λ interval searched, A:B with A < B.")] = "0:3",
    n_scan: Annotated[int, typer.Option(help="λ values scanned for a sign change.")] = 25,
    attributions: Annotated[
        str | None, typer.Option(help="Attribution maps of the reconstruction: any of vg,gradcam,ig (needs captum).")
    ] = None,
    layer: Annotated[str | None, typer.Option(help="Grad-CAM layer name (default: the last Conv2d).")] = None,
    cohort: Annotated[Path | None, typer.Option(help="Latent cohort (.nc); default: the bundled demo.")] = None,
    decoder: Annotated[
        str | None,
        typer.Option(
            help="Checkpoint path or module:callable mapping float32 (B, D) to (B, H, W); default: the demo model."
        ),
    ] = None,
    input_size: Annotated[str | None, typer.Option(help=_SIZE_HELP)] = None,
    input_scale: Annotated[InputScale, typer.Option(help=_SCALE_HELP)] = InputScale("minus1-1"),
    plot: Annotated[Path | None, typer.Option(help="Also write the panel figure (PNG).")] = None,
    direction: Annotated[
        DirectionChoice,
        typer.Option(
            help="mean: towards the images with the desired answer (the paper's; what goes with the prediction). "
            "gradient: along the CNN's gradient through G; minimal: the smallest image change reaching the "
            "target (what the CNN uses)."
        ),
    ] = DirectionChoice("mean"),
    adjust: Annotated[
        str | None, typer.Option(help="--direction mean: covariates held fixed, A,B (the adjusted group difference).")
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(
            help="Folder of the cohort's radiographs: the CNN also reads the original image, and a gap between "
            "its answers on the image and on G(w_E) is reported (a warning when it matters)."
        ),
    ] = None,
    proximity: Annotated[
        float, typer.Option(help="--direction minimal: weight of the mean squared pixel change vs the squared error.")
    ] = 1.0,
    threads: Threads = 1,
    device: DeviceOption = "cpu",
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
):
    """Move one image along a latent direction until the CNN predicts TARGET (counterfactual)."""
    with user_errors():
        model = default_model(model, cohort, decoder)
        cohort, decoder = _inputs(cohort, decoder)
        inputs = [*_existing(cohort, decoder, model), images]  # the images folder: no figure written into it
        check_output_path(out, overwrite=overwrite, inputs=inputs, suffixes=".nc", others=[plot])
        if plot is not None:
            check_output_path(plot, overwrite=overwrite, inputs=inputs, suffixes=".png", others=[out])
        _check_tol(tol)
        span = parse_lambda_range(lambda_range)
        _check_direction(
            direction.value, feature=feature, levels=levels, adjust=adjust, lo=span[0], proximity=proximity
        )
        methods = check_methods(attributions or ())
        device = decoding_device(decoder, device)  # before any work: e.g. cuda without a GPU
        with command_threads(threads), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SeegaanWarning)
            net = load_model(model, input_size=input_size, input_scale=input_scale.value)
            with progress_bar("explain", None) as advance:
                result = explain(
                    open_cohort(cohort),
                    decoder,
                    net,
                    image_id=image,
                    target=target,
                    feature=feature,
                    levels=levels,
                    tol=tol,
                    lambda_range=span,
                    n_scan=n_scan,
                    attributions=methods,
                    layer=layer,
                    progress=advance,
                    device=device,
                    direction=direction.value,
                    adjust=adjust,
                    proximity=proximity,
                    images=images,
                    command_line=" ".join(["seegaan-stats", *sys.argv[1:]]),
                )
        echo_warnings(caught)
        result.save(out, plot, overwrite=overwrite, inputs=inputs)
        typer.echo(result.summary().as_text())
        typer.echo(f"wrote {out}" + (f" and {plot}" if plot is not None else ""))


def local_command(
    image: Annotated[str, typer.Option("--image", help="image_id of the image to move.")],
    feature: Annotated[str, typer.Option(help="Class feature (local direction) or numeric one (global trajectory).")],
    out: Annotated[Path, typer.Option(help="Output netCDF (.nc).")],
    levels: Annotated[
        str | None,
        typer.Option(help="Class feature: CURRENT,DESIRED levels (default: the image's own level and the other one)."),
    ] = None,
    lambdas: Annotated[
        str | None,
        typer.Option(
            help="Class feature: λ values, A:B:N (N values from A to B, 0 <= A < B) or v1,v2,...; default 0:1:5."
        ),
    ] = None,
    values: Annotated[
        str | None,
        typer.Option(help="Numeric feature: target values v1,v2,... (default: 5 from the 5th to the 95th percentile)."),
    ] = None,
    method: Annotated[
        LocalMethod, typer.Option(help="Numeric feature: the global trajectory (auto = gam).")
    ] = LocalMethod("auto"),
    transform: Annotated[Transform, typer.Option(help="Numeric feature: fit on log(feature).")] = Transform("none"),
    gam_lam: Annotated[str, typer.Option(help="GAM smoothing: a positive number or 'auto'.")] = "0.6",
    perm: Annotated[int, typer.Option(help="Null draws B: sign flips or permutations (0 = decode only).")] = 1000,
    null: Annotated[
        NullChoice,
        typer.Option(
            "--null",
            help="The null of the other images (the image itself is left out): sign-flip (their weighted null "
            "model's residual latents, one random sign per patient) or permutation (of their labels; exact when "
            "the patients are exchangeable).",
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
    alternative: Annotated[Alternative, typer.Option(help="Direction of the difference tested.")] = Alternative(
        "two-sided"
    ),
    images: Annotated[
        Path | None, typer.Option(help="Folder of the cohort's radiographs: the original image is shown in the figure.")
    ] = None,
    cohort: Annotated[Path | None, typer.Option(help="Latent cohort (.nc); default: the bundled demo.")] = None,
    decoder: Annotated[
        str | None,
        typer.Option(
            help="Checkpoint path or module:callable mapping float32 (B, D) to (B, H, W); default: the demo model."
        ),
    ] = None,
    adjust: Annotated[
        str | None, typer.Option(help="Covariates held fixed, A,B (the adjusted direction; Freedman-Lane design).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the permutations (recorded in the output).")] = 0,
    batch_size: Annotated[int, typer.Option(help="Permutations per streamed batch (memory only, not results).")] = 16,
    threads: Threads = 1,
    device: DeviceOption = "cpu",
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
    plot: Annotated[Path | None, typer.Option(help="Figure PNG (default: the --out path with .png).")] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Do not write a figure.")] = False,
    model: Annotated[str | None, typer.Option(help=ALONG_HELP)] = None,
    input_size: Annotated[str | None, typer.Option(help="--model: " + _SIZE_HELP)] = None,
    input_scale: Annotated[InputScale, typer.Option(help="--model: " + _SCALE_HELP)] = InputScale("minus1-1"),
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
):
    """Move one image along FEATURE (local sequence) and permutation-test every pixel of its change."""
    with user_errors():
        cohort, decoder = _inputs(cohort, decoder)
        inputs = [*_existing(cohort, decoder), images]  # the images folder: no figure written into it
        png = None if no_plot else (plot or out.with_suffix(".png"))
        check_output_path(out, overwrite=overwrite, inputs=inputs, suffixes=".nc", others=[png])
        if png is not None:
            check_output_path(png, overwrite=overwrite, inputs=inputs, suffixes=".png", others=[out])
        if lambdas is not None:
            parse_lambdas(lambdas)
        device = decoding_device(decoder, device)  # before any work: e.g. cuda without a GPU
        net = checked_model(model, input_size, input_scale, cohort)  # tried on two images before any work
        # a cluster is reached (or refused) before any work; its workers load the decoder themselves
        with (
            client_from_options(workers, scheduler) as client,
            command_threads(threads),
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always", SeegaanWarning)
            with progress_bar(f"permutations ({feature}, {image})", None) as advance:
                result = local_sequence(
                    open_cohort(cohort),
                    decoder,
                    image_id=image,
                    feature=feature,
                    levels=levels,
                    lambdas=lambdas,
                    values=values,
                    method=method.value,
                    transform=transform.value,
                    gam_lam=gam_lam,
                    n_perm=perm,
                    correction=correction.value,
                    statistic=statistic.value,
                    null=null.value,
                    alpha=alpha,
                    alternative=alternative.value,
                    seed=seed,
                    batch_size=batch_size,
                    images=images,
                    progress=advance,
                    device=device,
                    client=client,
                    adjust=adjust,
                    command_line=" ".join(["seegaan-stats", *sys.argv[1:]]),
                )
        echo_warnings(caught)
        if net is not None:
            with command_threads(threads):
                result = cnn_along(result, net)
        result.save(out, png, overwrite=overwrite, inputs=inputs)
        typer.echo(result.summary().as_text())
        typer.echo(f"wrote {out}" + (f" and {png}" if png is not None else ""))


def register(app: typer.Typer) -> None:
    """Add ``predict``, ``explain`` and ``local`` to the ``seegaan-stats`` app."""
    app.command("predict")(predict_command)
    app.command("explain")(explain_command)
    app.command("local")(local_command)
