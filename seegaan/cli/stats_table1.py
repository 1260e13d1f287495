"""``seegaan-stats table1``: the cohort's Table 1 (per split by default) as text and CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seegaan._internal.io import check_output_path
from seegaan.cli._common import user_errors
from seegaan.data.tableone import table1


def table1_command(
    source: Annotated[Path, typer.Argument(help="Latent cohort (.nc) or clinical table (.csv/.tsv/.parquet).")],
    by: Annotated[str, typer.Option("--by", help="Column to group by (train/val/test split by default).")] = "split",
    features: Annotated[
        str | None, typer.Option("--features", help="Comma-separated features (default: every clinical column).")
    ] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write the table as CSV here.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing CSV.")] = False,
):
    """Print Table 1: mean ± SD or n (%) per group and overall, t-test/ANOVA or chi-squared p-values."""
    with user_errors():
        if csv is not None:  # before reading the cohort
            check_output_path(csv, overwrite=overwrite, inputs=[source], suffixes=(".csv",))
        chosen = [f.strip() for f in features.split(",") if f.strip()] if features else None
        result = table1(str(source), by=by, features=chosen)
        if csv is not None:
            result.to_csv(csv, overwrite=overwrite)
        typer.echo(result.as_text())
        if csv is not None:
            typer.echo(f"wrote {csv}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``table1`` to the ``seegaan-stats`` app."""
    app.command("table1")(table1_command)
