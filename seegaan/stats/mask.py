"""Region-of-interest masks: which pixels form the family of tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from seegaan._internal.errors import SeegaanError


def load_mask(path) -> np.ndarray:
    """A region-of-interest mask from ``.npy`` (bool or 0/1) or an image file (PNG...; nonzero = tested).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    ndarray of bool, shape (H, W)
    """
    path = Path(path)
    if not path.is_file():
        raise SeegaanError(f"--mask {path} does not exist; give a .npy or PNG mask the size of the images")
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            with Image.open(path) as img:
                arr = np.asarray(img.convert("L"))
    except Exception as exc:  # noqa: BLE001
        raise SeegaanError(f"cannot read mask {path} ({type(exc).__name__}); give a .npy array or a PNG") from None
    if arr.ndim != 2 or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise SeegaanError(f"mask {path} must be a 2-D array of 0/1 or bool, got shape {arr.shape} {arr.dtype}")
    _check_finite(arr, f"mask {path}")
    return arr != 0


def _check_finite(arr: np.ndarray, what: str) -> None:
    """NaN or inf in a mask is refused (``nan != 0`` would silently test that pixel)."""
    if np.issubdtype(arr.dtype, np.inexact) and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise SeegaanError(f"{what} has {bad} NaN or infinite value(s); give 0/1 or bool for every pixel")


def check_mask(mask, shape: tuple[int, int]) -> np.ndarray:
    """``mask`` as a bool array of the image ``shape`` (H, W) that selects at least one pixel."""
    roi = np.asarray(mask)
    if np.issubdtype(roi.dtype, np.number):
        _check_finite(roi, "the mask")
    if roi.shape != shape:
        raise SeegaanError(
            f"the mask has shape {roi.shape} but the decoded images are {shape[0]}x{shape[1]}; "
            "give a mask of the image size"
        )
    roi = roi != 0
    if not roi.any():
        raise SeegaanError("the mask selects no pixel; give a mask with at least one nonzero pixel")
    return roi


def mask_attrs(roi: np.ndarray) -> dict:
    """The attrs that identify a mask in an output file: its pixel count and the SHA-256 of its bits."""
    return {"mask_pixels": int(roi.sum()), "mask_sha256": hashlib.sha256(np.packbits(roi).tobytes()).hexdigest()}
