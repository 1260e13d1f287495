"""Progress reporting shared by the library and the CLIs.

Long functions take ``progress: Progress | None``, a callable ``progress(n, total=None)``: called with
``total=`` (work units) to set or reset the length, and with ``n`` units just done. The library never
prints; :func:`progress_bar` makes such a callable that draws a rich bar on stderr (silent when stderr
is not a terminal).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress


class Progress(Protocol):
    def __call__(self, n: int = 1, total: int | None = None) -> None: ...


def no_progress(n: int = 1, total: int | None = None) -> None:
    """A progress callable that does nothing."""


@contextlib.contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Callable[..., None]]:
    """A rich progress bar on stderr; yields ``progress(n=1, total=None)``.

    Silent when stderr is not a terminal.
    """
    console = Console(stderr=True)
    bar = RichProgress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not sys.stderr.isatty(),
    )
    with bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1, total: int | None = None) -> None:
            if total is not None:
                bar.update(task, total=total)
            bar.advance(task, n)

        yield advance
