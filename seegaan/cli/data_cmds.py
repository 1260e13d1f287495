"""Commands of ``seegaan`` for data: ``phantom`` (a synthetic cohort with known truth), ``check-data``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seegaan._internal.errors import SeegaanError
from seegaan._internal.io import check_output_path
from seegaan._internal.progress import progress_bar
from seegaan.cli._common import user_errors
from seegaan.data import DEFAULT_SIZE, load_dataset
from seegaan.phantom import write_phantom


def phantom_command(
    out: Annotated[Path, typer.Option("--out", help="Folder to create (images/, clinical.csv, truth/).")],
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = 1200,
    size: Annotated[int, typer.Option("--size", help="Image side in pixels (>= 16).")] = 64,
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same seed gives the same bits.")] = 0,
    bit_depth: Annotated[int, typer.Option("--bit-depth", help="PNG bit depth, 8 or 16.")] = 16,
    marginal: Annotated[
        bool, typer.Option("--marginal/--no-marginal", help="Also write the marginal truth maps.")
    ] = True,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace an existing phantom folder (one this command wrote, or an empty one); "
            "any other folder is refused.",
        ),
    ] = False,
):
    """Write a phantom cohort: chest radiographs driven by sex, age, AHF, BNPP and manufacturer, with
    the ground-truth effect map of every feature (see truth/README.md in the output)."""
    with user_errors():
        with progress_bar("phantom images", n) as progress:
            write_phantom(
                out,
                n=n,
                size=size,
                seed=seed,
                bit_depth=bit_depth,
                overwrite=overwrite,
                marginal=marginal,
                progress=progress,
            )
        typer.echo(f"wrote {n} phantom images, clinical.csv and truth maps to {out}")


def check_data_command(
    images: Annotated[Path, typer.Argument(help="Image folder (searched recursively) or a table of paths.")],
    table: Annotated[Path | None, typer.Option("--table", help="Clinical table (CSV/TSV/Parquet).")] = None,
    id_column: Annotated[str, typer.Option("--id-column", help="Image-id column of the table.")] = "image_id",
    path_column: Annotated[str | None, typer.Option("--path-column", help="Join on this path column instead.")] = None,
    view: Annotated[str | None, typer.Option("--view", help="Keep these views, e.g. PA,AP.")] = None,
    size: Annotated[int, typer.Option("--size", help="Model image size.")] = DEFAULT_SIZE,
    read: Annotated[bool, typer.Option("--read", help="Decode every image now (finds truncated files).")] = False,
    skipped: Annotated[Path | None, typer.Option("--skipped", help="Write the skipped files here (CSV).")] = None,
    text_column: Annotated[
        list[str] | None,
        typer.Option(
            "--text-column",
            help="Keep this clinical column as text (categories) even if nearly all its "
            "cells are numbers; repeat for several.",
        ),
    ] = None,
    pseudonymize: Annotated[
        bool,
        typer.Option(
            "--pseudonymize",
            help="Replace image and patient ids by salted hashes (HMAC-SHA256; the salt "
            "from --salt or SEEGAAN_ID_SALT is never stored).",
        ),
    ] = False,
    salt: Annotated[
        str | None,
        typer.Option(
            "--salt",
            envvar="SEEGAAN_ID_SALT",
            show_envvar=True,
            show_default=False,
            help="Secret salt of --pseudonymize (>= 8 characters; prefer the environment variable).",
        ),
    ] = None,
    id_map: Annotated[
        Path | None,
        typer.Option(
            "--id-map",
            help="With --pseudonymize: write the original -> pseudonym ids here (CSV); keep it apart from the data.",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing --skipped/--id-map files.")] = False,
):
    """Check a cohort before training: what was found, joined, filtered and skipped, the missing values
    per clinical column, and the splits."""
    with user_errors():
        inputs = [images, table]
        if skipped is not None:
            check_output_path(skipped, overwrite=overwrite, inputs=inputs, suffixes=(".csv", ".tsv"), others=[id_map])
        if id_map is not None:
            if not pseudonymize:
                raise SeegaanError("--id-map needs --pseudonymize (without it the ids are the originals)")
            check_output_path(id_map, overwrite=overwrite, inputs=inputs, suffixes=(".csv", ".tsv"), others=[skipped])
        if pseudonymize and not salt:
            raise SeegaanError(
                "--pseudonymize needs a salt: set SEEGAAN_ID_SALT (or pass --salt) to a long random secret"
            )
        views = [v.strip() for v in view.split(",") if v.strip()] if view else None
        data = load_dataset(
            images,
            table,
            size=size,
            view=views,
            id_column=id_column,
            path_column=path_column,
            text_columns=text_column or (),
            pseudonymize=salt if pseudonymize else None,
        )
        if read:
            with progress_bar("reading images", len(data)) as progress:
                for ids, _ in data.batches(64):
                    progress(len(ids))
        typer.echo(data.report())
        if skipped is not None and data.write_skipped(skipped, overwrite=overwrite) is not None:
            typer.echo(f"wrote the list of {len(data.skipped)} skipped files to {skipped}", err=True)
        if id_map is not None:
            data.write_id_map(id_map, overwrite=overwrite)
            typer.echo(f"wrote the id mapping to {id_map}; keep it apart from the data", err=True)


def register(app: typer.Typer) -> None:
    """Add ``phantom`` and ``check-data`` to the ``seegaan`` app."""
    app.command("phantom")(phantom_command)
    app.command("check-data")(check_data_command)
