"""The ``ds.seegaan`` accessor and :func:`open_sequence`.

Importing this module registers the ``seegaan`` accessor on :class:`xarray.Dataset` (``import seegaan``
alone does not). The accessor only delegates to the free functions and stores nothing::

    ds = seegaan.open_sequence("sex.nc")
    ds.seegaan.summary()           # a Summary (text and HTML)
    ds.seegaan.plot()              # the figure of plot_sequence
    ds.seegaan.report("sex.html")  # make_report
    ds.seegaan.animate("sex.gif")  # animate
"""

from __future__ import annotations

import os

import xarray as xr

from seegaan._internal.summary import Summary
from seegaan.viz.animation import animate
from seegaan.viz.datasets import plottable, read_sequence, sequence_summary, validate_sequence
from seegaan.viz.figures import plot_sequence
from seegaan.viz.report import make_report

__all__ = ["open_sequence", "SequenceAccessor"]


def open_sequence(path: str | os.PathLike) -> xr.Dataset:
    """Read a sequence netCDF file fully into memory and check that it is one.

    Parameters
    ----------
    path : str or Path
        A file written by ``seegaan-stats interpolate`` (or :meth:`SequenceResult.save`).

    Returns
    -------
    xarray.Dataset
        With the ``seegaan`` accessor available.

    Raises
    ------
    SeegaanError
        When the file is missing, unreadable or not a sequence dataset.
    """
    return read_sequence(path)


@xr.register_dataset_accessor("seegaan")
class SequenceAccessor:
    """``ds.seegaan``: delegates to :func:`~seegaan.viz.figures.plot_sequence`, :func:`sequence_summary`,
    :func:`~seegaan.viz.report.make_report` and :func:`~seegaan.viz.animation.animate`; stores nothing."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    def plot(self, path=None, **kwargs):
        """The sequence figure (see :func:`seegaan.viz.figures.plot_sequence`)."""
        return plot_sequence(plottable(validate_sequence(self._ds)), path=path, **kwargs)

    def summary(self) -> Summary:
        """:func:`sequence_summary` of the dataset."""
        return sequence_summary(self._ds)

    def report(self, out, **kwargs):
        """An HTML report (see :func:`seegaan.viz.report.make_report`)."""
        return make_report(self._ds, out=out, **kwargs)

    def animate(self, out, **kwargs):
        """A GIF or MP4 of the sequence (see :func:`seegaan.viz.animation.animate`)."""
        return animate(self._ds, out, **kwargs)
