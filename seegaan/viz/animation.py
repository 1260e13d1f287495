"""Animations of sequences: each step's decoded frame beside its significant differences, as GIF or MP4.

A GIF is written with Pillow; an MP4 through ``imageio-ffmpeg`` (which ships its own ffmpeg binary; the
``report`` extra: ``pip install 'seegaan[report]'``). The colours are the figures' (gray frames in [-1, 1],
differences in ``Spectral_r`` with symmetric limits over a faded frame).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from seegaan._internal.errors import SeegaanError
from seegaan._internal.io import atomic_path, check_output_path
from seegaan.formats import ffmpeg_exe, gif_bytes, save_bytes, write_mp4
from seegaan.viz.datasets import as_sequence_dataset, step_label, validate_sequence

__all__ = ["animate", "render_frames", "check_animation_path", "animate_option_hook"]

SUFFIXES = (".gif", ".mp4")
_PANEL_MIN = 256  # small images are enlarged (whole pixels) to at least this many pixels per panel
_BAND = 26  # text band above the panels, in pixels
_GAP = 8
_MAX_FPS = 50.0  # a GIF stores delays in 1/100 s


def _font(size: int):
    """DejaVu Sans from matplotlib's data (it has λ, Δ and →), else Pillow's default font."""
    try:
        import matplotlib  # deferred: matplotlib (heavy, figures only)

        return ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf"), size)
    except (ImportError, OSError):
        return ImageFont.load_default()


def render_frames(ds, *, pingpong: bool = False) -> list[np.ndarray]:
    """The frames of an animation: the decoded image (left) and its significant difference (right).

    Parameters
    ----------
    ds : xarray.Dataset
        A sequence dataset (global or local).
    pingpong : bool
        Play forwards then backwards (steps 0..K-1, K-2..1): ``2K - 2`` frames instead of ``K``.

    Returns
    -------
    list of ndarray, uint8, shape (height, width, 3)
        One RGB frame per step, each labelled with its feature value (or λ).
    """
    from matplotlib import colormaps  # deferred: matplotlib (heavy, figures only)

    validate_sequence(ds)
    images = np.asarray(ds["image"].values, dtype=np.float64)
    K, H, W = images.shape
    tested = "significant_difference" in ds
    diff = np.asarray(ds["significant_difference" if tested else "difference"].values, dtype=np.float64)
    lim = float(np.nanmax(np.abs(ds["difference"].values))) or 1.0
    gray = np.clip((images + 1.0) / 2.0, 0.0, 1.0)
    faded = 0.65 + 0.35 * gray  # the figure's frame drawn at alpha 0.35 on white
    colour = colormaps["Spectral_r"](np.clip((diff / lim + 1.0) / 2.0, 0.0, 1.0))[..., :3]
    shown = (diff != 0)[..., None] if tested else np.ones_like(diff, bool)[..., None]
    right = np.where(shown, colour, faded[..., None])
    left = np.repeat(gray[..., None], 3, axis=-1)
    scale = max(1, math.ceil(_PANEL_MIN / max(H, W)))
    ph, pw = H * scale, W * scale
    font = _font(13)
    what = "significant Δ" if tested else "Δ (untested)"
    frames = []
    for k in range(K):
        canvas = Image.new("RGB", (2 * pw + _GAP, ph + _BAND), "white")
        for j, panel in enumerate((left[k], right[k])):
            arr = np.kron((panel * 255).round().astype(np.uint8), np.ones((scale, scale, 1), np.uint8))
            canvas.paste(Image.fromarray(arr, "RGB"), (j * (pw + _GAP), _BAND))
        draw = ImageDraw.Draw(canvas)
        draw.text((4, 5), step_label(ds, k), fill="black", font=font)
        count = f": {int(np.count_nonzero(diff[k]))} px" if tested else ""
        draw.text((pw + _GAP + 4, 5), f"{what}{count} (±{lim:.2g})", fill="black", font=font)
        frames.append(np.asarray(canvas))
    if pingpong and K > 2:
        frames = frames + frames[-2:0:-1]
    return frames


def _check_fps(fps: float) -> float:
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and 0 < fps <= _MAX_FPS):
        raise SeegaanError(f"--fps must be a number above 0 and at most {_MAX_FPS:g} (got {fps})")
    return float(fps)


def check_animation_path(path: str | os.PathLike, *, overwrite: bool = False, inputs=()) -> Path:
    """Check an animation output before any work: a ``.gif`` or ``.mp4`` path that may be written
    (see :func:`seegaan._internal.io.check_output_path`), and for MP4 that imageio-ffmpeg and its ffmpeg are there."""
    path = check_output_path(path, overwrite=overwrite, inputs=inputs, suffixes=SUFFIXES)
    if path.name.lower().endswith(".mp4"):
        ffmpeg_exe()
    return path


def animate(ds, out: str | os.PathLike, *, fps: float = 4, pingpong: bool = False, overwrite: bool = False) -> Path:
    """Write a sequence as an animation: one frame per step, decoded image beside its significant differences.

    Parameters
    ----------
    ds : xarray.Dataset, path or SequenceResult
        A sequence (global or local); a path is read with :func:`seegaan.open_sequence`.
    out : str or Path
        ``.gif`` (Pillow) or ``.mp4`` (imageio-ffmpeg, H.264; the frame is padded with white to whole
        16-pixel blocks). Written atomically.
    fps : float
        Frames per second (at most 50).
    pingpong : bool
        Play forwards then backwards: ``2K - 2`` frames for ``K`` steps.
    overwrite : bool
        Replace an existing ``out``.

    Returns
    -------
    Path
        ``out``.
    """
    fps = _check_fps(fps)
    inputs = [ds] if isinstance(ds, (str, os.PathLike)) else []
    out = check_animation_path(out, overwrite=overwrite, inputs=inputs)
    frames = render_frames(as_sequence_dataset(ds), pingpong=pingpong)
    if out.name.lower().endswith(".mp4"):
        with atomic_path(out, overwrite=overwrite, inputs=inputs, suffixes=SUFFIXES) as tmp:
            write_mp4(frames, tmp, fps)
    else:
        save_bytes(gif_bytes(frames, fps=fps), out, overwrite=overwrite, inputs=inputs, suffixes=SUFFIXES)
    return out


def animate_option_hook(
    result_or_ds, path: str | os.PathLike | None, *, overwrite: bool = False, fps: float = 4
) -> Path | None:
    """For a command's ``--animate PATH`` option: write the animation when ``path`` is given.

    Call :func:`check_animation_path` on ``path`` before the expensive work, then this with the result
    (a :class:`~seegaan.SequenceResult` or a sequence dataset). Returns the path written, or None.
    """
    if path is None:
        return None
    return animate(result_or_ds, path, fps=fps, overwrite=overwrite)
