"""``seegaan-stats pixel-test``: the model-free baseline -- the permutation test on the resized images.

The command takes the image-reading options of ``seegaan encode`` and every statistics option of
``seegaan-stats interpolate``; the latter are not redeclared here but taken from ``interpolate``'s own
declarations (:func:`statistics_options`), so the two commands cannot drift apart. It calls
:func:`seegaan.pixeltest.pixel_test` and, with ``--compare``, :func:`seegaan.pixeltest.compare_maps`.
"""

import dataclasses
import inspect
import sys
import typing
import warnings
from pathlib import Path
from typing import Annotated

import typer
import xarray as xr

from seegaan._internal.errors import SeegaanError
from seegaan._internal.io import check_output_path
from seegaan._internal.runtime import command_threads
from seegaan.cli._common import echo_warnings, progress_bar, user_errors
from seegaan.cli.model_cmds import Pseudonymize, Salt, TextColumns, _salt, _views
from seegaan.cli.stats_interpolate import interpolate_command
from seegaan.pixeltest import COMPARE_KEYS, compare_maps, pixel_test
from seegaan.stats import SeegaanWarning, as_correction

#: The options of ``seegaan-stats interpolate`` that ``pixel-test`` shares, in its order (not --cohort,
#: --decoder, --out or --animate).
STATISTICS_OPTIONS = (
    "feature",
    "method",
    "levels",
    "steps",
    "grid",
    "transform",
    "gam_lam",
    "gam_splines",
    "adjust",
    "perm",
    "correction",
    "statistic",
    "null",
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
    "plot",
    "no_plot",
    "overwrite",
)


def statistics_options(names=STATISTICS_OPTIONS, command=None) -> list[inspect.Parameter]:
    """The typer parameters ``names`` of ``command`` (default: ``seegaan-stats interpolate``), as
    keyword-only :class:`inspect.Parameter` objects with evaluated ``Annotated`` types, for
    :func:`with_options`."""
    command = interpolate_command if command is None else command
    hints = typing.get_type_hints(command, include_extras=True)
    params = inspect.signature(command).parameters
    return [params[n].replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[n]) for n in names]


def with_options(func, extra: list[inspect.Parameter]):
    """``func`` (taking ``**options``) with its own parameters followed by ``extra`` as its signature,
    which typer reads as the command's options."""
    own = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in inspect.signature(func, eval_str=True).parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    params = own + list(extra)
    func.__signature__ = inspect.Signature(params)
    func.__annotations__ = {p.name: p.annotation for p in params}
    return func


def pixel_test_command(
    images: Annotated[Path, typer.Option(help="Folder of radiographs or a table listing them.")],
    table: Annotated[Path | None, typer.Option(help="Clinical table joined on image_id.")] = None,
    view: Annotated[str | None, typer.Option(help="Keep these views, e.g. PA,AP.")] = None,
    size: Annotated[int, typer.Option(help="Resize the images to SIZE x SIZE (bicubic) before the test.")] = 64,
    text_column: TextColumns = None,
    pseudonymize: Pseudonymize = False,
    salt: Salt = None,
    compare: Annotated[
        Path | None,
        typer.Option(
            help="A decoded sequence (.nc) of the same feature: print and store the correlation of the last "
            "step's differences, the Dice of the significant pixels and their sign agreement."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output netCDF (default: seegaan-pixel-FEATURE.nc).")] = None,
    **options,
):
    """Model-free baseline: the permutation test of interpolate run on the resized images themselves
    (pixels as latents, the identity as decoder)."""
    with user_errors():
        feature = options["feature"]
        out = out if out is not None else Path(f"seegaan-pixel-{feature}.nc")
        png = None if options["no_plot"] else (options["plot"] or out.with_suffix(".png"))
        overwrite = options["overwrite"]
        _check_outputs(out, png, overwrite=overwrite, inputs=[images, table, options["mask"], compare])
        decoded = _open_compare(compare) if compare is not None else None
        key = _salt(pseudonymize, salt)
        result = _pixel_test(
            images,
            table,
            size=size,
            view=_views(view),
            text_columns=text_column or (),
            pseudonymize=key,
            options=options,
        )
        lines = ()
        if decoded is not None:
            result, lines = _with_comparison(result, decoded, compare)
        result.save(out, png, overwrite=overwrite)
        summary = result.summary()
        typer.echo(
            type(summary)(
                summary.title.replace("sequence", "pixel test (model-free baseline)"), summary.lines + lines
            ).as_text()
        )
        typer.echo(f"wrote {out}" + (f" and {png}" if png is not None else ""))


def _check_outputs(out, png, *, overwrite, inputs):
    """Every output checked before any work: not an input, the right suffix, not each other."""
    inputs = [p for p in inputs if p is not None]
    check_output_path(out, overwrite=overwrite, inputs=inputs, suffixes=".nc")
    if png is not None:
        check_output_path(png, overwrite=overwrite, inputs=inputs, suffixes=(".png", ".pdf", ".svg"), others=[out])


def _open_compare(path: Path):
    """The decoded sequence of ``--compare``, read into memory (a one-line error when it is not one)."""

    try:
        with xr.open_dataset(path) as ds:
            ds = ds.load()
    except (OSError, ValueError) as exc:
        raise SeegaanError(
            f"--compare {path}: cannot read it as a netCDF sequence "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    if "difference" not in ds:
        raise SeegaanError(
            f"--compare {path} is not a sequence (no 'difference'); give a file written by seegaan-stats interpolate"
        )
    return ds


def _pixel_test(images, table, *, size, view, text_columns, pseudonymize, options):
    """Run :func:`seegaan.pixeltest.pixel_test` with the command's options under ``--threads``."""

    o = options
    correction = as_correction(
        o["correction"].value,
        sd_offset=o["sd_offset"],
        min_change=o["min_change"],
        tfce_e=o["tfce_e"],
        tfce_connectivity=o["tfce_connectivity"],
        cluster_threshold=o["cluster_threshold"],
    )
    with command_threads(o["threads"]), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SeegaanWarning)
        with progress_bar(f"permutations (pixels, {o['feature']})", None) as advance:
            result = pixel_test(
                images,
                table,
                feature=o["feature"],
                size=size,
                view=view,
                text_columns=text_columns,
                pseudonymize=pseudonymize,
                method=o["method"].value,
                levels=o["levels"],
                steps=o["steps"],
                grid=o["grid"],
                transform=o["transform"].value,
                gam_lam=o["gam_lam"],
                gam_splines=o["gam_splines"],
                adjust=o["adjust"],
                log=lambda m: typer.echo(m, err=True),
                n_perm=o["perm"],
                correction=correction,
                statistic=o["statistic"].value,
                null=o["null"].value,
                alpha=o["alpha"],
                alternative=o["alternative"].value,
                seed=o["seed"],
                batch_size=o["batch_size"],
                mask=o["mask"],
                progress=advance,
                command_line=" ".join(["seegaan-stats", *sys.argv[1:]]),
            )
    echo_warnings(caught)
    return result


def _with_comparison(result, decoded, path: Path):
    """The result with ``compare_*`` attrs, and the summary lines that show them."""

    comp = compare_maps(decoded, result.to_dataset())
    attrs = {**result.attrs, "compare_with": Path(path).name, **{f"compare_{k}": float(comp[k]) for k in COMPARE_KEYS}}
    h, w = comp["size"]
    lines = (
        ("compared with", f"{Path(path).name} (last step, at {h}x{w})"),
        ("correlation", f"{comp['correlation']:.3f} (Pearson, difference maps)"),
        (
            "Dice",
            f"{comp['dice']:.3f} (significant pixels: decoded {comp['n_significant'][0]}, "
            f"pixel test {comp['n_significant'][1]}, both {comp['n_both']})",
        ),
        ("sign agreement", f"{comp['sign_agreement']:.3f} (among pixels significant in both)"),
    )
    return dataclasses.replace(result, attrs=attrs), lines


def register(app: typer.Typer) -> None:
    """Add ``pixel-test`` to the ``seegaan-stats`` app."""
    app.command("pixel-test")(pixel_test_command)


with_options(pixel_test_command, [p for p in statistics_options() if p.name != "out"])
