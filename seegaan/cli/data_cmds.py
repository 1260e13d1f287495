"""Commands of ``seegaan`` for data: ``phantom`` (a synthetic chest-radiograph cohort with known truth)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seegaan.cli._common import progress_bar, user_errors


def phantom_command(
    out: Annotated[Path, typer.Option("--out", help="Folder to create (images/, clinical.csv, truth/).")],
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = 1200,
    size: Annotated[int, typer.Option("--size", help="Image side in pixels (>= 16).")] = 64,
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same seed gives the same bits.")] = 0,
    bit_depth: Annotated[int, typer.Option("--bit-depth", help="PNG bit depth, 8 or 16.")] = 16,
    marginal: Annotated[bool, typer.Option("--marginal/--no-marginal",
                                           help="Also write the marginal truth maps.")] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing folder.")] = False,
):
    """Write a phantom cohort: chest radiographs driven by sex, age, AHF, BNPP and manufacturer, with
    the ground-truth effect map of every feature (see truth/README.md in the output)."""
    with user_errors():
        from seegaan.phantom import write_phantom

        with progress_bar("phantom images", n) as advance:
            write_phantom(out, n=n, size=size, seed=seed, bit_depth=bit_depth, overwrite=overwrite,
                          marginal=marginal, progress=advance)
        typer.echo(f"wrote {n} phantom images, clinical.csv and truth maps to {out}")


def register(app: typer.Typer) -> None:
    """Add ``phantom`` to the ``seegaan`` app."""
    app.command("phantom")(phantom_command)
