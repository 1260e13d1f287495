"""``seegaan``: the model side (train, encode, reconstruct, sample, model info, phantom)."""

from __future__ import annotations

import typer

from seegaan.cli import data_cmds as _data_cmds
from seegaan.cli import model_cmds as _model_cmds
from seegaan.cli._common import OneLineErrors, version_option

app = typer.Typer(
    rich_markup_mode=None,
    name="seegaan",
    add_completion=False,
    no_args_is_help=True,
    cls=OneLineErrors,
    help="SEE-GAAN model side: train the autoencoder, encode cohorts, decode, make phantoms.",
)


@app.callback()
def _root(version: bool = version_option("seegaan")):
    """SEE-GAAN model side."""


# each command module adds its commands to ``app``; torch stays inside the commands that need it
_model_cmds.register(app)
_data_cmds.register(app)


def main():  # console-script entry point
    app()
