"""The one home of seegaan's output formats: netCDF with CF attributes, PNG figures, GIF/MP4 and HTML.

Every writer here is atomic: the file is written to a temporary file beside its target and renamed into
place only when complete (:func:`seegaan._internal.io.atomic_path`), so a failure, Ctrl-C or kill leaves no
partial file; an existing file is refused unless ``overwrite``, and an output never replaces one of
``inputs``. The ``write_*`` functions write to a path they are given (a temporary one inside an atomic
block that holds several files); the ``save_*`` functions are the atomic ones.

netCDF: :func:`add_cf_attrs` (CF-1.10 metadata: ``long_name`` and ``units`` everywhere) is applied by the
dataset builders just before writing. Units follow UDUNITS: ``"1"`` for
dimensionless quantities (images in [-1, 1], p-values, latents, indices, fractions). A variable that
already has ``units`` keeps them (a writer that knows a clinical feature's units records them); any
other gets ``"1"``, meaning dimensionless or not recorded.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from PIL import Image

from seegaan._internal.errors import SeegaanError
from seegaan._internal.io import atomic_path
from seegaan._version import __version__

__all__ = [
    "add_cf_attrs",
    "CONVENTIONS",
    "write_netcdf",
    "save_netcdf",
    "write_png",
    "save_figure",
    "save_array_png",
    "save_csv",
    "save_text",
    "save_bytes",
    "gif_bytes",
    "write_mp4",
    "ffmpeg_exe",
]

CONVENTIONS = "CF-1.10"

#: long names of the variables and coordinates of a sequence dataset
_SEQUENCE = {
    "w": "latent vector of each step of the trajectory",
    "image": "decoded image (intensity scaled to [-1, 1])",
    "difference": "decoded image minus the image at step 0",
    "p_value": "uncorrected permutation p-value of the difference",
    "p_adjusted": "p-value adjusted for multiple testing over pixels and steps",
    "significant": "pixel significant after correction (1) or not (0)",
    "significant_difference": "difference where significant, 0 elsewhere",
    "reconstruction": "decoded reconstruction of the edited image",
    "step": "step index along the trajectory",
    "lambda": "strength of the local edit (lambda) at each step",
}
#: long names of a latent cohort's variables and coordinates (others are clinical features)
_COHORT = {
    "w": "latent vector of each image",
    "image_id": "image identifier",
    "patient_id": "patient identifier",
    "split": "data split (train, val or test)",
}


def _long_name(name: str, ds: xr.Dataset, kind: str) -> str:
    if kind == "sequence":
        if name == "feature_value":
            levels = str(ds.attrs.get("levels", "") or "")
            if levels.count(",") == 1:
                a, b = levels.split(",")
                return f"fraction of the way from {a} to {b}"
            return f"value of {ds.attrs.get('feature', 'the feature')} at each step"
        return _SEQUENCE.get(name, name.replace("_", " "))
    return _COHORT.get(name, f"clinical feature {name}")


def add_cf_attrs(
    ds: xr.Dataset, kind: Literal["sequence", "cohort"] = "sequence", *, units: dict[str, str] | None = None
) -> xr.Dataset:
    """Return a copy of ``ds`` with CF ``long_name`` and ``units`` on every data variable and coordinate.

    Parameters
    ----------
    ds : xarray.Dataset
        A sequence dataset (dims step, y, x) or a latent cohort (dim image).
    kind : {"sequence", "cohort"}
        Which names to use.
    units : dict, optional
        Units by variable name (e.g. ``{"age": "year"}``); they win over anything else.

    Returns
    -------
    xarray.Dataset
        A shallow copy (the arrays are shared, the attrs are new) with ``Conventions = "CF-1.10"`` and,
        when missing, ``title`` and ``source``. ``ds`` itself is not changed.
    """
    if kind not in ("sequence", "cohort"):
        raise ValueError(f"kind must be 'sequence' or 'cohort', not {kind!r}")

    out = ds.copy(deep=False)
    units = dict(units or {})
    for name in (*out.data_vars, *out.coords):
        var = out[name]
        attrs = dict(var.attrs)
        attrs["long_name"] = _long_name(str(name), out, kind)
        if name in units:
            attrs["units"] = units[name]
        elif kind == "sequence" and name == "feature_value" and str(out.attrs.get("levels", "") or ""):
            attrs["units"] = "1"  # a fraction from the first level to the second
        else:
            attrs.setdefault("units", "1")
        if var.dtype == bool:
            attrs.update(flag_values=np.array([0, 1], np.int8), flag_meanings="false true")
        out[name].attrs = attrs
    feature = out.attrs.get("feature")
    title = (
        (f"SEE-GAAN sequence along {feature}" if feature else "SEE-GAAN sequence")
        if kind == "sequence"
        else "SEE-GAAN latent cohort"
    )
    out.attrs = {**out.attrs, "Conventions": CONVENTIONS}
    out.attrs.setdefault("title", title)
    out.attrs.setdefault("source", f"seegaan {out.attrs.get('seegaan_version', __version__)}")
    return out


# --------------------------------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------------------------------
def write_netcdf(ds: xr.Dataset, path: str | os.PathLike) -> None:
    """Write ``ds`` to ``path`` with the netCDF4 engine (not atomic: give a temporary path)."""
    ds.to_netcdf(path, engine="netcdf4")


def save_netcdf(ds: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False, **check) -> Path:
    """Write ``ds`` to netCDF atomically; extra keywords (``inputs=``, ``suffixes=``) go to the path check."""
    with atomic_path(path, overwrite=overwrite, **check) as tmp:
        write_netcdf(ds, tmp)
    return Path(path)


def write_png(fig, path: str | os.PathLike, *, dpi: int = 150) -> None:
    """Render a ``matplotlib.figure.Figure`` to PNG with the Agg canvas: no pyplot, no global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: matplotlib (heavy)

    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=dpi, format="png")


#: what a figure may be called (``save_figure``'s default check: a figure never lands on a .nc, .pt, ...)
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 150, overwrite: bool = False, **check) -> None:
    """Write a ``matplotlib.figure.Figure`` as PNG atomically (:func:`write_png`).

    An existing file is refused unless ``overwrite``; the name must end in one of :data:`FIGURE_SUFFIXES`
    unless ``suffixes=`` says otherwise. Extra keywords (``inputs=``, ``suffixes=``) go to
    :func:`seegaan._internal.io.atomic_path`.
    """
    check.setdefault("suffixes", FIGURE_SUFFIXES)
    with atomic_path(path, overwrite=overwrite, **check) as tmp:
        write_png(fig, tmp, dpi=dpi)


def save_array_png(array: np.ndarray, path: str | os.PathLike, *, overwrite: bool = False, **check) -> Path:
    """Write a uint8 array (H, W) or (H, W, 3) as a PNG atomically."""
    with atomic_path(path, overwrite=overwrite, **check) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
    return Path(path)


def save_csv(frame: pd.DataFrame, path: str | os.PathLike, *, overwrite: bool = False, **check) -> Path:
    """Write a table as CSV (no index) atomically."""
    with atomic_path(path, overwrite=overwrite, **check) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)


def save_text(text: str, path: str | os.PathLike, *, overwrite: bool = False, **check) -> Path:
    """Write UTF-8 text (an HTML page) atomically."""
    with atomic_path(path, overwrite=overwrite, **check) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def save_bytes(payload: bytes, path: str | os.PathLike, *, overwrite: bool = False, **check) -> Path:
    """Write bytes (a GIF) atomically."""
    with atomic_path(path, overwrite=overwrite, **check) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


def gif_bytes(frames: list[np.ndarray], *, fps: float = 4) -> bytes:
    """RGB frames (H, W, 3) uint8 as an endlessly looping GIF, in memory."""
    pictures = [Image.fromarray(f, "RGB") for f in frames]
    buf = io.BytesIO()
    pictures[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=pictures[1:],
        loop=0,
        duration=int(round(1000 / fps)),
        optimize=False,
    )
    return buf.getvalue()


def ffmpeg_exe() -> str:
    """The ffmpeg binary of imageio-ffmpeg; SeegaanError (one line) when it is not there."""
    try:
        import imageio_ffmpeg  # deferred: an optional extra (seegaan[report])
    except ImportError:
        raise SeegaanError(
            "writing MP4 needs imageio-ffmpeg: pip install 'seegaan[report]' (or write a .gif)"
        ) from None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        raise SeegaanError(
            "imageio-ffmpeg found no ffmpeg binary: reinstall it with its binary wheel "
            "(pip install --force-reinstall seegaan[report]) or set IMAGEIO_FFMPEG_EXE"
        ) from None


def write_mp4(frames: list[np.ndarray], path: str | os.PathLike, fps: float) -> None:
    """RGB frames as an H.264 MP4 (imageio-ffmpeg), padded to whole macro blocks (not atomic)."""
    ffmpeg_exe()
    import imageio_ffmpeg  # deferred: an optional extra (seegaan[report])

    h, w = frames[0].shape[:2]
    H, W = -(-h // 16) * 16, -(-w // 16) * 16  # whole macro blocks: no rescaling by ffmpeg
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (W, H),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        macro_block_size=16,
        quality=8,
        output_params=["-f", "mp4"],
        ffmpeg_log_level="error",
    )
    writer.send(None)
    try:
        for f in frames:
            padded = np.full((H, W, 3), 255, np.uint8)
            padded[:h, :w] = f
            writer.send(np.ascontiguousarray(padded))
    finally:
        writer.close()
