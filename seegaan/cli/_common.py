"""Shared pieces of the typer CLIs: one-line errors, clean termination and progress bars.

Every way a command can end badly prints one line on stderr and exits non-zero (:class:`OneLineErrors`):

* a usage error (bad option, missing value, invalid choice): the message and a ``--help`` hint, exit 2;
* a :class:`~seegaan._internal.errors.SeegaanError` (bad input): its message, exit 2;
* Ctrl-C: ``interrupted``, exit 130; SIGTERM/SIGHUP (:func:`seegaan._internal.io.terminate_cleanly`): exit 128 + signal;
* anything else is a bug: ``internal error (TypeName: message)``, exit 1; with ``SEEGAAN_DEBUG=1`` in the
  environment the full traceback is shown instead.

Only typer's public API is used (``typer.Abort``, ``typer.Exit``, ``typer.TyperException``, the base of
the usage errors), so the vendored click inside typer may change without breaking this module.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
import xarray as xr
from typer.core import TyperGroup

from seegaan import demo
from seegaan._internal.choices import cli_enum
from seegaan._internal.errors import SeegaanError, SeegaanWarning
from seegaan._internal.io import Terminated, terminate_cleanly
from seegaan._internal.progress import progress_bar  # noqa: F401  (re-exported for the command modules)
from seegaan._version import __version__
from seegaan.decoder import decoder_device, is_checkpoint
from seegaan.explain.cnn import INPUT_SCALES, load_model
from seegaan.model.allocator import keep_freed_memory

#: Environment variable that shows the full traceback of an internal error.
DEBUG_ENV = "SEEGAAN_DEBUG"


def version_option(program: str):
    """A ``--version`` option (eager) for a typer callback."""

    def callback(value: bool):
        if value:
            typer.echo(f"{program} {__version__}")
            raise typer.Exit()

    return typer.Option(False, "--version", callback=callback, is_eager=True, help="Print the version and exit.")


#: ``--device`` of the seegaan-stats commands that decode (a checkpoint decoder's device)
DeviceOption = Annotated[
    str,
    typer.Option(
        help="cpu, cuda or auto: where a checkpoint decoder decodes (cuda:N for one GPU; auto: cuda when there "
        "is a GPU). A module:callable decoder runs where its own code puts it: cpu only."
    ),
]


#: ``--workers`` / ``--scheduler`` of the seegaan-stats commands whose permutations can run on Dask
WorkersOption = Annotated[
    int | None,
    typer.Option(
        help="Decode the permutations on a local Dask cluster of N single-threaded worker processes (pip "
        "install 'seegaan[distributed]'); the same result as one process."
    ),
]
SchedulerOption = Annotated[
    str | None,
    typer.Option(
        help="Decode the permutations on the workers of a running Dask scheduler, e.g. tcp://host:8786 "
        "(reached within 5 s); the same result as one process."
    ),
]


def decoding_device(decoder, device: str) -> str:
    """``--device`` checked before any work (:func:`seegaan.decoder.decoder_device`: a one-line error for
    cuda without a CUDA GPU, an unknown device, or a device other than cpu for a module:callable decoder),
    and, when a checkpoint decodes on the CPU, glibc told to keep freed blocks (faster repeated decoding; a
    process-wide setting a command may make, as the ``seegaan`` model commands do). Returns the device."""
    device = decoder_device(decoder, device)
    if device == "cpu" and is_checkpoint(decoder):
        keep_freed_memory()
    return device


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one line on stderr and return the Exit to raise."""
    typer.echo(f"error: {_one_line(message)}", err=True)
    return typer.Exit(code)


_INTERRUPTED = "interrupted; no output was written"


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn SeegaanError (and Ctrl-C) into a one-line message and a non-zero exit."""
    try:
        yield
    except SeegaanError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail(_INTERRUPTED, code=130) from None


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def internal_error_line(exc: BaseException) -> str:
    """The one line shown for an unexpected exception (a bug)."""
    detail = _one_line(str(exc))
    if len(detail) > 300:
        detail = detail[:297] + "..."
    shown = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return f"error: internal error ({shown}); rerun with {DEBUG_ENV}=1 for the traceback and report it"


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _is_no_args_help(exc: BaseException) -> bool:
    """Whether ``exc`` is the usage error typer raises to show the help of a command given no arguments."""
    return any(cls.__name__ == "NoArgsIsHelpError" for cls in type(exc).__mro__)


class OneLineErrors(TyperGroup):
    """A typer group whose every failure is one stderr line and a non-zero exit (see the module docstring).

    The command runs inside :func:`seegaan._internal.io.terminate_cleanly`, so SIGTERM/SIGHUP unwind through the
    commands' clean-up (temporary files removed, targets untouched) instead of killing the process.
    """

    def invoke(self, ctx):
        # typer turns Ctrl-C inside a command into a silent exit 130; say it in one line first
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise fail(_INTERRUPTED, code=130) from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            with terminate_cleanly():
                rv = super().main(
                    args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra
                )
        except typer.TyperException as exc:  # usage errors (click's ClickException family)
            if _is_no_args_help(exc):
                typer.echo(exc.format_message(), err=True)
            else:
                ctx = getattr(exc, "ctx", None)
                hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
                typer.echo(f"error: {_one_line(exc.format_message())}{hint}", err=True)
            rv = exc.exit_code
        except typer.Abort:
            typer.echo("error: aborted; no output was written", err=True)
            rv = 1
        except typer.Exit as exc:
            rv = exc.exit_code
        except KeyboardInterrupt:
            typer.echo(f"error: {_INTERRUPTED}", err=True)
            rv = 130
        except Terminated as exc:
            typer.echo(f"error: terminated by {_signal_name(exc.signum)}; no output was written", err=True)
            rv = exc.code
        except SeegaanError as exc:
            typer.echo(f"error: {_one_line(str(exc))}", err=True)
            rv = 2
        except Exception as exc:
            if _debug():
                raise
            typer.echo(internal_error_line(exc), err=True)
            rv = 1
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def default_inputs(cohort: Path | None, decoder: str | None):
    """The bundled demo when neither --cohort nor --decoder is given."""
    if cohort is not None and decoder is not None:
        return cohort, decoder

    if cohort is None and decoder is None:
        typer.echo(
            "note: no --cohort or --decoder given: using the bundled demo (a phantom cohort and its small model)",
            err=True,
        )
        return demo.cohort_path(), demo.decoder_path()
    raise fail("give both --cohort and --decoder, or neither (to use the bundled demo)")


# ---- a CNN given to a command (explain, predict, and --model of interpolate and local) -------------------
MODEL_HELP = (
    "A CNN file of seegaan-stats train-cnn, a TorchScript file, or module:attr naming an nn.Module (instance "
    "or zero-argument factory) or a function; it maps float32 images (B, 1, H, W) to B numbers."
)
SIZE_HELP = "Resize the images to S or H,W (bilinear) before the model."
SCALE_HELP = "Rescale the [-1, 1] images before the model: minus1-1 (none), 0-1 or imagenet (3 channels)."
InputScale = cli_enum("InputScale", INPUT_SCALES)
ALONG_HELP = (
    "A CNN run on every decoded step: its prediction is stored (model_prediction) and shown in the figure. "
    + MODEL_HELP
)


def checked_model(model, input_size, input_scale, cohort_path):
    """The CNN of ``--model`` (or None), loaded and tried on two images of the cohort's size before any work."""
    if model is None:
        return None
    with xr.open_dataset(cohort_path) as ds:
        size = int(ds.attrs.get("image_size", 0) or 0)
    net = load_model(model, input_size=input_size, input_scale=getattr(input_scale, "value", input_scale))
    if size:
        net.check(size, size)
    return net


def echo_warnings(caught) -> None:
    """Each :class:`SeegaanWarning` recorded by ``warnings.catch_warnings(record=True)`` as one stderr line."""
    for w in caught:
        if issubclass(w.category, SeegaanWarning):
            typer.echo(f"warning: {w.message}", err=True)


def default_model(model, cohort, decoder) -> str:
    """``--model``, or the bundled demo CNN when the bundled demo cohort is used (neither --cohort nor --decoder)."""
    if model is not None:
        return model
    if cohort is not None or decoder is not None:
        raise SeegaanError("give --model: the bundled demo CNN goes with the bundled demo cohort only")
    return str(demo.cnn_path())
