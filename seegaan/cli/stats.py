"""``seegaan-stats``: the statistics side. This module only builds the typer app from the command modules.

stats_interpolate (``inspect``, ``interpolate``), stats_table1 (``table1``), stats_explain (``predict``,
``explain``, ``local``), stats_pixel (``pixel-test``), stats_calibrate (``calibrate``), stats_report
(``report``, ``animate``), stats_cnn (``train-cnn``).
"""

from __future__ import annotations

import typer

from seegaan.cli import stats_calibrate as _calibrate
from seegaan.cli import stats_cnn as _cnn
from seegaan.cli import stats_explain as _explain
from seegaan.cli import stats_interpolate as _interpolate
from seegaan.cli import stats_pixel as _pixel
from seegaan.cli import stats_report as _report
from seegaan.cli import stats_table1 as _table1
from seegaan.cli._common import OneLineErrors, version_option

app = typer.Typer(
    rich_markup_mode=None,
    name="seegaan-stats",
    add_completion=False,
    no_args_is_help=True,
    cls=OneLineErrors,
    help="SEE-GAAN statistics: latent cohorts, trajectories and permutation-tested sequences.",
)


@app.callback()
def _root(version: bool = version_option("seegaan-stats")):
    """SEE-GAAN statistics side."""


_interpolate.register(app)
_table1.register(app)
_explain.register(app)
_pixel.register(app)
_calibrate.register(app)
_report.register(app)
_cnn.register(app)


def main():  # console-script entry point
    app()
