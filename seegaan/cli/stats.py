"""``seegaan-stats``: the statistics side (inspect cohorts, interpolate + permutation-test sequences)."""

from __future__ import annotations

import enum
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from seegaan.cli._common import OneLineErrors, fail, progress_bar, user_errors, version_option

app = typer.Typer(name="seegaan-stats", add_completion=False, no_args_is_help=True, cls=OneLineErrors,
                  help="SEE-GAAN statistics: latent cohorts, trajectories and permutation-tested sequences.")


class Method(str, enum.Enum):
    auto = "auto"
    class_mean = "class-mean"
    linear = "linear"
    gam = "gam"


class Transform(str, enum.Enum):
    none = "none"
    log = "log"


class Correction(str, enum.Enum):
    maxt = "maxt"
    maxd = "maxd"
    tfce = "tfce"
    cluster = "cluster"
    none = "none"
    fdr_bh = "fdr_bh"
    fdr_by = "fdr_by"
    bonferroni = "bonferroni"
    holm = "holm"


class Alternative(str, enum.Enum):
    two_sided = "two-sided"
    greater = "greater"
    less = "less"


@app.callback()
def _root(version: bool = version_option("seegaan-stats")):
    """SEE-GAAN statistics side."""


@app.command()
def inspect(cohort: Annotated[Path, typer.Argument(help="Latent cohort (.nc).")]):
    """Summarise a latent cohort: images, patients, and every clinical feature's type, levels or range."""
    with user_errors():
        from seegaan.cohort import cohort_summary, open_cohort

        typer.echo(cohort_summary(open_cohort(cohort)).as_text())


def _default_inputs(cohort: Optional[Path], decoder: Optional[str]):
    """The bundled demo when neither --cohort nor --decoder is given."""
    if cohort is not None and decoder is not None:
        return cohort, decoder
    from seegaan import demo

    if cohort is None and decoder is None:
        return demo.cohort_path(), demo.decoder_path()
    raise fail("give both --cohort and --decoder, or neither (to use the bundled demo)")


@app.command()
def interpolate(
    feature: Annotated[str, typer.Option("--feature", help="Clinical feature to move along.")],
    cohort: Annotated[Optional[Path], typer.Option(help="Latent cohort (.nc); default: the bundled demo.")] = None,
    decoder: Annotated[Optional[str], typer.Option(
        help="Checkpoint path or module:callable mapping float32 (B, D) to (B, H, W); default: the demo model.")] = None,
    method: Annotated[Method, typer.Option(help="Interpolator (auto: class-mean for categories, gam for numbers).")] = Method.auto,
    levels: Annotated[Optional[str], typer.Option(help="Class-mean groups 'A,B' (from A to B).")] = None,
    steps: Annotated[int, typer.Option(help="Number of steps K (grid from the 5th to the 95th percentile).")] = 8,
    grid: Annotated[Optional[str], typer.Option(help="Explicit grid values 'v1,v2,...' in feature units.")] = None,
    transform: Annotated[Transform, typer.Option(help="Fit on log(feature) for skewed lab values.")] = Transform.none,
    gam_lam: Annotated[str, typer.Option(help="GAM smoothing: a positive number or 'auto' (GCV per dimension).")] = "0.6",
    gam_splines: Annotated[int, typer.Option(help="Number of GAM B-splines.")] = 20,
    adjust: Annotated[Optional[str], typer.Option(help="Covariates 'COL,COL' (Freedman-Lane under permutation).")] = None,
    perm: Annotated[int, typer.Option(help="Permutations B (0 = decode only; 100 reproduces the paper).")] = 1000,
    correction: Annotated[Correction, typer.Option(help="Multiple-testing correction over pixels x steps.")] = Correction.maxt,
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    tfce_e: Annotated[float, typer.Option(help="TFCE extent exponent (H = 2; E = 0.5 or 1 for 2-D maps).")] = 0.5,
    cluster_threshold: Annotated[float, typer.Option(
        help="Cluster-forming threshold on the standardised difference for --correction cluster.")] = 3.0,
    alternative: Annotated[Alternative, typer.Option(help="Direction of the difference tested.")] = Alternative.two_sided,
    mask: Annotated[Optional[Path], typer.Option(
        help="Test only these pixels: .npy (bool or 0/1) or PNG (nonzero = tested) of the image size.")] = None,
    sd_offset: Annotated[Optional[str], typer.Option(
        help="maxt: s0 added to each pixel's permutation SD (z = d / (SD + s0)): a number (image units), "
             "'median' or 'pNN' (that percentile of the SDs); default 0, the plain studentised max-T.")] = None,
    min_change: Annotated[float, typer.Option(
        help="maxt/maxd: call a pixel significant only where its change exceeds this many image units "
             "([-1, 1] scale; 0.05 = 2.5% of the range); default 0, any change.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the permutations (recorded in the output).")] = 0,
    batch_size: Annotated[int, typer.Option(help="Permutations per streamed batch (memory only, not results).")] = 16,
    threads: Annotated[int, typer.Option(
        help="torch threads for decoding a checkpoint (0 = torch's default; 1 is fastest for small models).")] = 1,
    out: Annotated[Optional[Path], typer.Option(help="Output netCDF (default: seegaan-FEATURE.nc).")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Figure PNG (default: the --out path with .png).")] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Do not write a figure.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
):
    """Trajectory along FEATURE, decoded, with permutation-tested pixel differences (netCDF + figure)."""
    with user_errors():
        run_interpolate(feature=feature, cohort=cohort, decoder=decoder, method=method.value, levels=levels,
                        steps=steps, grid=grid, transform=transform.value, gam_lam=gam_lam,
                        gam_splines=gam_splines, adjust=adjust, perm=perm, correction=correction.value,
                        alpha=alpha, tfce_e=tfce_e, cluster_threshold=cluster_threshold,
                        alternative=alternative.value, seed=seed, batch_size=batch_size, threads=threads, out=out,
                        plot=None if no_plot else (plot or "default"), overwrite=overwrite, mask=mask,
                        sd_offset=sd_offset, min_change=min_change)


def run_interpolate(*, feature, cohort, decoder, method, levels, steps, grid, transform, gam_lam, gam_splines,
                    adjust, perm, correction, alpha, alternative, tfce_e=0.5, cluster_threshold=3.0, threads=1, seed,
                    batch_size, out, plot, overwrite, mask=None, sd_offset=None,
                    min_change=0.0):
    """What ``seegaan-stats interpolate`` does, as a function (the CLI only parses options)."""
    import contextlib

    from seegaan._errors import SeegaanError
    from seegaan._io import atomic_path, check_output_path
    from seegaan.cohort import open_cohort
    from seegaan.interpolation import interpolate as fit
    from seegaan.sequences import SeegaanWarning, load_mask, sequence

    if perm < 0:
        raise SeegaanError(f"--perm must be 0 or more (got {perm})")
    if threads < 0:
        raise SeegaanError(f"--threads must be 0 (torch's default) or more (got {threads})")
    if steps < 2 and grid is None:
        raise SeegaanError(f"--steps must be at least 2 (got {steps})")
    out = Path(out) if out is not None else Path(f"seegaan-{feature}.nc")
    plot_path = None if plot is None else (out.with_suffix(".png") if plot == "default" else Path(plot))
    check_output_path(out, overwrite=overwrite)
    if plot_path is not None:
        check_output_path(plot_path, overwrite=overwrite)
    cohort, decoder = _default_inputs(cohort, decoder)
    roi = load_mask(mask) if mask is not None else None
    grid_values = None
    if grid:
        try:
            grid_values = [float(v) for v in grid.split(",")]
        except ValueError:
            raise SeegaanError(f"--grid must be comma-separated numbers, not {grid!r}") from None
    lam = "auto" if str(gam_lam).strip().lower() == "auto" else gam_lam
    if lam != "auto":
        try:
            lam = float(lam)
        except ValueError:
            raise SeegaanError(f"--gam-lam must be a positive number or 'auto', not {gam_lam!r}") from None
    ds = open_cohort(cohort)
    interp = fit(ds, feature=feature, method=method, levels=levels, steps=steps, grid=grid_values,
                 transform=transform, gam_lam=lam, gam_splines=gam_splines, adjust=adjust)
    for note in interp.notes:
        typer.echo(f"note: {note}", err=True)
    if interp.n_missing:
        typer.echo(f"note: {interp.n_missing} image(s) without {feature}"
                   f"{' or a covariate' if interp.covariates else ''} were left out", err=True)
    from seegaan.decoder import load_decoder

    if threads and Path(str(decoder)).is_file():
        import torch

        torch.set_num_threads(threads)
    dec = load_decoder(decoder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SeegaanWarning)
        with progress_bar(f"permutations ({feature})", None) as advance:
            result = sequence(interp, dec, n_perm=perm, correction=correction, alpha=alpha,
                              tfce_e=tfce_e, cluster_threshold=cluster_threshold, alternative=alternative, seed=seed,
                              batch_size=batch_size, mask=roi, sd_offset=sd_offset,
                              min_change=min_change, progress=advance,
                              command_line=" ".join(["seegaan-stats", *sys.argv[1:]]))
    for w in caught:
        if issubclass(w.category, SeegaanWarning):
            typer.echo(f"warning: {w.message}", err=True)
    dataset = result.to_dataset()
    with atomic_path(out, overwrite=overwrite) as tmp_nc:
        dataset.to_netcdf(tmp_nc, engine="netcdf4")
        if plot_path is not None:
            result.plot(plot_path)
    typer.echo(result.summary().as_text())
    typer.echo(f"wrote {out}" + (f" and {plot_path}" if plot_path is not None else ""))
    return result


from seegaan.cli import stats_table1 as _table1  # noqa: E402

_table1.register(app)


def main():  # console-script entry point
    app()
