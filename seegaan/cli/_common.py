"""Shared pieces of the typer CLIs: one-line errors and progress bars."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

import typer

from seegaan._errors import SeegaanError
from seegaan._progress import progress_bar  # noqa: F401  (re-exported for the command modules)


def version_option(program: str):
    """A ``--version`` option (eager) for a typer callback."""
    from seegaan._version import __version__

    def callback(value: bool):
        if value:
            typer.echo(f"{program} {__version__}")
            raise typer.Exit()

    return typer.Option(False, "--version", callback=callback, is_eager=True, help="Print the version and exit.")


def fail(message: str, code: int = 2) -> "typer.Exit":
    """Print one line on stderr and return the Exit to raise."""
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    return typer.Exit(code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn SeegaanError (and Ctrl-C) into a one-line message and a non-zero exit."""
    try:
        yield
    except SeegaanError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail("interrupted; no output was written", code=130) from None


def _click():
    """The click module typer uses (typer >= 0.25 vendors it as ``typer._click``)."""
    import typer.core as core

    return getattr(core, "_click", None) or __import__("click")


from typer.core import TyperGroup  # noqa: E402


class OneLineErrors(TyperGroup):
    """A typer group whose usage errors (bad option, missing value, invalid choice) are one stderr line."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        click = _click()
        exc_mod = click.exceptions
        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                              standalone_mode=False, **extra)
        except exc_mod.NoArgsIsHelpError as exc:
            typer.echo(exc.format_message(), err=True)
            rv = exc.exit_code
        except exc_mod.ClickException as exc:
            hint = ""
            ctx = getattr(exc, "ctx", None)
            if ctx is not None:
                hint = f" (see '{ctx.command_path} --help')"
            typer.echo(f"error: {' '.join(exc.format_message().split())}{hint}", err=True)
            rv = exc.exit_code
        except exc_mod.Abort:
            typer.echo("error: aborted; no output was written", err=True)
            rv = 1
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)
