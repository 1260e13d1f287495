"""``seegaan-stats report`` and ``seegaan-stats animate``: share a sequence as an HTML page or an animation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seegaan.cli._common import user_errors
from seegaan.viz.animation import animate
from seegaan.viz.report import make_report


def report_command(
    results: Annotated[
        list[Path], typer.Argument(help="Sequence files (.nc) from 'interpolate'; several side by side.")
    ],
    out: Annotated[Path | None, typer.Option(help="Report file (.html); default: the first RESULT with .html.")] = None,
    cohort: Annotated[
        Path | None, typer.Option(help="Latent cohort (.nc) or clinical table: add its Table 1 and check its hash.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing report.")] = False,
):
    """Write a self-contained HTML report: figure, animation, parameters, counts, warnings, provenance."""
    with user_errors():
        out = out if out is not None else results[0].with_suffix(".html")
        make_report(list(results), out=out, cohort=cohort, overwrite=overwrite)
        typer.echo(f"wrote {out}")


def animate_command(
    result: Annotated[Path, typer.Argument(help="Sequence file (.nc) from 'interpolate'.")],
    out: Annotated[
        Path | None, typer.Option(help="Animation (.gif, or .mp4 with imageio-ffmpeg); default: RESULT with .gif.")
    ] = None,
    fps: Annotated[float | None, typer.Option(help="Frames per second (default 4).")] = None,
    pingpong: Annotated[bool, typer.Option(help="Play forwards then backwards.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing animation.")] = False,
):
    """Animate a sequence: each step's decoded frame beside its significant differences."""
    with user_errors():
        out = out if out is not None else result.with_suffix(".gif")
        animate(result, out, fps=4 if fps is None else fps, pingpong=pingpong, overwrite=overwrite)
        typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add ``report`` and ``animate`` to the ``seegaan-stats`` app."""
    app.command("report")(report_command)
    app.command("animate")(animate_command)
