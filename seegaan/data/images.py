"""Reading one radiograph: PNG/JPEG (8/16 bit), DICOM, ``.npy`` -> float32 (size, size) in [-1, 1].

The pipeline for every format is: decode to a float array of the stored intensities -> (DICOM only)
modality LUT (rescale slope/intercept) -> VOI LUT or window (or the ``window`` given by the caller) ->
MONOCHROME1 inverted so that dense structures are bright -> bicubic resize to ``size x size`` ->
per-image scaling to [-1, 1] (min-max as the paper, or clipped percentiles).

Every problem with a file raises :class:`~seegaan.SeegaanError` with one line that names the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import PIL
import pydicom
from PIL import Image
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from seegaan._internal.choices import DEFAULT_SIZE
from seegaan._internal.errors import SeegaanError

Scaling = Literal["minmax", "percentile"]
SCALINGS: tuple[str, ...] = get_args(Scaling)

#: extensions recognised when scanning a folder (lower case); extension-less files are probed for DICOM
IMAGE_EXTENSIONS = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".dcm": "dicom",
    ".dicom": "dicom",
    ".dic": "dicom",
    ".npy": "npy",
}

#: DICOM header fields that may reach an output (non-identifying acquisition facts only)
DICOM_WHITELIST = (
    "ViewPosition",
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "SamplesPerPixel",
    "NumberOfFrames",
    "BodyPartExamined",
)

#: DICOM header fields whose value must come from a defined vocabulary (PS3.3 defined terms or enumerated
#: values); anything else (free text can carry a name or a note) is dropped and counted, never copied
DICOM_VOCABULARY = {
    # DX Positioning module, C.8.11.5: ViewPosition (0018,5101) defined terms
    "ViewPosition": frozenset({"AP", "PA", "LL", "RL", "RLD", "LLD", "RLO", "LLO"}),
    # Image Pixel module, C.7.6.3.1.2: PhotometricInterpretation (0028,0004) defined terms
    "PhotometricInterpretation": frozenset(
        {
            "MONOCHROME1",
            "MONOCHROME2",
            "PALETTE COLOR",
            "RGB",
            "YBR_FULL",
            "YBR_FULL_422",
            "YBR_PARTIAL_420",
            "YBR_ICT",
            "YBR_RCT",
        }
    ),
    # General Series module, C.7.3.1.1.1: the Modality (0008,0060) defined terms a radiograph may carry
    "Modality": frozenset(
        {"CR", "DX", "RG", "RF", "XA", "MG", "IO", "PX", "OT", "CT", "MR", "US", "NM", "PT", "SC", "XC", "DOC"}
    ),
    # Patient module, C.7.1.1: PatientSex (0010,0040) enumerated values (not whitelisted; for callers)
    "PatientSex": frozenset({"M", "F", "O"}),
}

DEFAULT_PERCENTILES = (0.5, 99.5)


def max_image_pixels() -> int | None:
    """The largest image (in pixels) read: Pillow's decompression-bomb limit, ``PIL.Image.MAX_IMAGE_PIXELS``."""
    limit = Image.MAX_IMAGE_PIXELS
    return None if limit is None else int(limit)


def _too_large(path, width: int, height: int) -> SeegaanError:
    return SeegaanError(
        f"{path}: image too large: {width}x{height} pixels (more than {max_image_pixels():,}; "
        "a decompression bomb or a corrupt header); replace or remove it"
    )


def _png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk without Pillow, or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
    except OSError:
        return None
    if head.startswith(b"\x89PNG") and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return None


def open_pil(path: Path):
    """``PIL.Image.open(path)`` that refuses images above :func:`max_image_pixels` with a one-line
    SeegaanError ("image too large: WxH pixels") instead of Pillow's DecompressionBombError/Warning.

    Only the header is read; the caller closes the image (``with open_pil(p) as img``).
    """

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below instead
            img = Image.open(path)
    except Image.DecompressionBombError:
        size = _png_size(path)
        if size is not None:
            raise _too_large(path, *size) from None
        raise SeegaanError(
            f"{path}: image too large (more than {2 * (max_image_pixels() or 0):,} pixels; a "
            "decompression bomb or a corrupt header); replace or remove it"
        ) from None
    limit = max_image_pixels()
    if limit is not None and img.size[0] * img.size[1] > limit:
        img.close()
        raise _too_large(path, img.size[0], img.size[1])
    return img


def image_id_from_path(path: str | os.PathLike) -> str:
    """The image id of a file: its name without a recognised image extension.

    Only a known extension is removed, so ids that contain dots (DICOM UIDs) survive intact.
    """
    name = Path(path).name
    lower = name.lower()
    for ext in IMAGE_EXTENSIONS:
        if lower.endswith(ext):
            return name[: -len(ext)]
    return name


def detect_format(path: str | os.PathLike) -> str | None:
    """Return ``"png"``, ``"jpeg"``, ``"dicom"``, ``"npy"`` or None, from the magic bytes first."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return IMAGE_EXTENSIONS.get(path.suffix.lower())
    if head.startswith(b"\x89PNG"):
        return "png"
    if head.startswith(b"\xff\xd8"):
        return "jpeg"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head[128:132] == b"DICM":
        return "dicom"
    return IMAGE_EXTENSIONS.get(path.suffix.lower())


# --------------------------------------------------------------------------------------------- decode
def _decode_pil(path: Path) -> np.ndarray:
    try:
        with open_pil(path) as img:
            img.load()
            mode = img.mode
            if mode in ("RGB", "RGBA", "P", "LA", "1", "CMYK", "YCbCr", "PA"):
                img = img.convert("L")
            elif mode.startswith("I;16") or mode in ("I", "F", "L"):
                pass
            else:
                img = img.convert("F")
            arr = np.asarray(img)
    except SeegaanError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise SeegaanError(
            f"{path}: cannot read the image ({_short(exc)}); the file is unreadable or truncated: replace or remove it"
        ) from None
    return arr.astype(np.float64)


def _decode_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise SeegaanError(
            f"{path}: cannot read the .npy array ({_short(exc)}); the file is unreadable or truncated"
        ) from None
    arr = np.asarray(arr)
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:-1])
    if arr.ndim != 2:
        raise SeegaanError(f"{path}: a .npy image must be a 2-D array (height, width); got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
        raise SeegaanError(f"{path}: a .npy image must hold real numbers; got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:160] + "...") if len(text) > 160 else (text or type(exc).__name__)


def _plugin_hint(uid) -> str:
    """Name the decoder plugins that would read ``uid``."""
    try:
        from pydicom.pixels import get_decoder  # deferred: pydicom.pixels (decoder plugins)

        missing = get_decoder(uid).missing_dependencies
    except Exception:  # noqa: BLE001 - unknown syntax: no decoder at all
        missing = []
    if missing:
        return "install one of: " + "; ".join(m.split(" - requires ")[-1] for m in missing)
    return "no pydicom decoder plugin supports it; convert the file to an uncompressed DICOM"


def check_dicom_header(ds, path: Path) -> None:
    """Raise SeegaanError for DICOM files this package cannot turn into one 2-D image."""
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise SeegaanError(
            f"{path}: DICOM file has no pixel data (a report, structured report or "
            "presentation state?); remove it from the image folder"
        )
    frames = ds.get("NumberOfFrames", 1)
    try:
        frames = int(frames or 1)
    except (TypeError, ValueError):
        frames = 1
    if frames > 1:
        raise SeegaanError(
            f"{path}: multi-frame DICOM ({frames} frames) is not supported; export the "
            "frame you want as a single-frame file"
        )
    try:
        rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    except (TypeError, ValueError):
        rows = cols = 0
    limit = max_image_pixels()
    if limit is not None and rows * cols > limit:
        raise _too_large(path, cols, rows)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    if spp != 1:
        raise SeegaanError(f"{path}: DICOM has {spp} samples per pixel (colour); radiographs must be grayscale")
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if uid is not None and getattr(uid, "is_compressed", False):
        from pydicom.pixels import get_decoder  # deferred: pydicom.pixels (decoder plugins)

        try:
            available = get_decoder(uid).is_available
        except Exception:  # noqa: BLE001 - pydicom has no decoder for this syntax
            available = False
        if not available:
            raise SeegaanError(
                f"{path}: DICOM transfer syntax '{uid.name}' ({uid}) is compressed and no "
                f"decoder plugin is installed: {_plugin_hint(uid)}"
            )


def _read_dicom_dataset(path: Path, *, stop_before_pixels: bool):
    try:
        # "header only": large values (the pixel data) are deferred, so their presence is still seen
        return pydicom.dcmread(path, force=True, defer_size="64 KB" if stop_before_pixels else None)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError, AttributeError) as exc:
        raise SeegaanError(
            f"{path}: cannot read the DICOM file ({_short(exc)}); it is unreadable or truncated"
        ) from None


def _decode_dicom(path: Path, window: tuple[float, float] | None) -> tuple[np.ndarray, bool]:
    """Return (array after modality and VOI LUTs, monochrome1) for a DICOM file.

    The file's VOI LUT or window is applied only when no ``window`` is given by the caller.
    """
    ds = _read_dicom_dataset(path, stop_before_pixels=False)
    if "SOPClassUID" not in ds and "PixelData" not in ds and len(ds) == 0:
        raise SeegaanError(f"{path}: not a DICOM file (empty or unrecognised); remove it from the folder")
    check_dicom_header(ds, path)
    try:
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for broken pixel data
        uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if uid is not None and getattr(uid, "is_compressed", False) and "plugin" in str(exc).lower():
            raise SeegaanError(
                f"{path}: DICOM transfer syntax '{uid.name}' needs a decoder plugin: {_plugin_hint(uid)}"
            ) from None
        raise SeegaanError(
            f"{path}: cannot decode the DICOM pixel data ({_short(exc)}); the file is truncated or corrupt"
        ) from None
    if arr.ndim != 2:
        raise SeegaanError(f"{path}: DICOM pixel data has shape {arr.shape}; expected one 2-D frame")
    arr = apply_modality_lut(arr, ds)
    if window is None and ("VOILUTSequence" in ds or "WindowCenter" in ds):
        if "VOILUTSequence" in ds and arr.dtype.kind == "f":
            arr = np.rint(arr).astype(np.int64)  # a LUT is indexed by stored (integer) values
        arr = apply_voi_lut(arr, ds, index=0, prefer_lut=True)
    arr = np.asarray(arr, dtype=np.float64)
    monochrome1 = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper() == "MONOCHROME1"
    return arr, monochrome1


def dicom_header(path: str | os.PathLike) -> dict:
    """The whitelisted, non-identifying header fields of a DICOM file as plain Python values.

    Only the fields in :data:`DICOM_WHITELIST` (plus the transfer syntax) are returned; patient names,
    identifiers, dates and institution fields never leave this function.
    """
    return header_fields(_read_dicom_dataset(Path(path), stop_before_pixels=True))


def header_fields(ds, *, dropped: list | None = None) -> dict:
    """The whitelisted fields of a pydicom Dataset (see :func:`dicom_header`).

    A field of :data:`DICOM_VOCABULARY` whose value is not one of its defined terms is left out (its
    name appended to ``dropped`` when given): free text there could carry a name or a note.
    """
    out: dict = {}
    for key in DICOM_WHITELIST:
        if key not in ds:
            continue
        value = ds.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            value = "\\".join(str(float(v)) for v in value)
        elif isinstance(value, (int, float, np.integer, np.floating)):
            value = value.item() if hasattr(value, "item") else value
        else:
            value = str(value).strip()
            if key in DICOM_VOCABULARY:
                value = value.upper()
                if value not in DICOM_VOCABULARY[key]:
                    if dropped is not None:
                        dropped.append(key)
                    continue
        out[key] = value
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if uid is not None:
        out["TransferSyntaxUID"] = str(uid)
    return out


# ----------------------------------------------------------------------------------------- transform
def resize_bicubic(arr: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize of a 2-D float array to ``size x size`` (Pillow's antialiased bicubic filter)."""
    arr = np.asarray(arr, dtype=np.float32)
    if arr.shape == (size, size):
        return arr.copy()
    img = Image.fromarray(arr, mode="F") if _pil_needs_mode() else Image.fromarray(arr)
    return np.asarray(img.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)


def _pil_needs_mode() -> bool:
    return int(PIL.__version__.split(".")[0]) < 11


def apply_window(arr: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Clip ``arr`` to a (center, width) window and map it linearly to [-1, 1]."""
    center, width = float(window[0]), float(window[1])
    if not np.isfinite(center) or not np.isfinite(width) or width <= 0:
        raise SeegaanError(f"window must be (center, width) with a positive width; got {window}")
    lo = center - width / 2.0
    return (np.clip((arr - lo) / width, 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)


def check_scaling(scaling) -> str:
    """``scaling`` when it is one of :data:`SCALINGS`; a SeegaanError otherwise."""
    if scaling not in SCALINGS:
        raise SeegaanError(f"scaling must be 'minmax' or 'percentile'; got {scaling!r}")
    return scaling


def scale_image(
    arr: np.ndarray,
    *,
    scaling: Scaling = "minmax",
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    name: str = "image",
) -> np.ndarray:
    """Scale one image to [-1, 1]: min-max (the paper) or clipped percentiles."""
    check_scaling(scaling)
    arr = np.asarray(arr, dtype=np.float64)
    if scaling == "minmax":
        lo, hi = float(arr.min()), float(arr.max())
    else:
        lo, hi = (float(v) for v in np.percentile(arr, percentiles))
    if not hi > lo:
        raise SeegaanError(
            f"{name}: the image is constant (all pixels {lo:g}"
            f"{' within the percentiles' if scaling == 'percentile' else ''}); it cannot "
            "be scaled to [-1, 1]: remove it"
        )
    out = (np.clip(arr, lo, hi) - lo) / (hi - lo) * 2.0 - 1.0
    return out.astype(np.float32)


def read_raw(path: str | os.PathLike, *, window: tuple[float, float] | None = None) -> tuple[np.ndarray, bool]:
    """Decode a file to a float64 2-D array with dense structures bright.

    Returns ``(array, windowed)`` where ``windowed`` says the array is already mapped to [-1, 1] by
    ``window``.
    """
    path = Path(path)
    if not path.exists():
        raise SeegaanError(f"{path}: no such file")
    if path.is_dir():
        raise SeegaanError(f"{path}: is a folder, not an image file")
    if path.stat().st_size == 0:
        raise SeegaanError(f"{path}: the file is empty; replace or remove it")
    fmt = detect_format(path)
    if fmt is None:
        raise SeegaanError(f"{path}: unrecognised image format (use PNG, JPEG, DICOM or .npy)")
    if fmt == "dicom":
        arr, mono1 = _decode_dicom(path, window)
        if window is not None:
            out = apply_window(arr, window)
            return (-out if mono1 else out).astype(np.float64), True
        return (-arr if mono1 else arr), False
    arr = _decode_npy(path) if fmt == "npy" else _decode_pil(path)
    if not np.all(np.isfinite(arr)):
        raise SeegaanError(f"{path}: the image has NaN or infinite values; fix or remove it")
    if window is not None:
        return apply_window(arr, window).astype(np.float64), True
    return arr, False


def read_image(
    path: str | os.PathLike,
    *,
    size: int | None = DEFAULT_SIZE,
    scaling: Scaling = "minmax",
    window: tuple[float, float] | None = None,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
) -> np.ndarray:
    """Read one radiograph as a float32 (size, size) array in [-1, 1].

    Parameters
    ----------
    path : path-like
        PNG or JPEG (8 or 16 bit, colour converted to gray), DICOM (any single-frame grayscale file
        pydicom can decode; compressed transfer syntaxes need a decoder plugin) or ``.npy`` (2-D).
    size : int or None
        Side of the square output; bicubic resize (as the paper). None keeps the stored size.
    scaling : {"minmax", "percentile"}
        Per-image scaling to [-1, 1]: min-max (the paper) or clipping to ``percentiles`` first.
        Ignored when ``window`` is given (the window maps to [-1, 1]).
    window : (center, width), optional
        Intensity window applied after the DICOM rescale, instead of the file's VOI LUT/window.
    percentiles : (low, high)
        Percentiles for ``scaling="percentile"``.

    Returns
    -------
    numpy.ndarray, float32, shape (size, size)

    Raises
    ------
    SeegaanError
        One line naming the file: unreadable or truncated file, DICOM without pixel data, multi-frame
        DICOM, compressed DICOM without a decoder plugin, constant image.
    """
    if size is not None and (int(size) != size or size < 4):
        raise SeegaanError(f"size must be an integer >= 4; got {size!r}")
    arr, windowed = read_raw(path, window=window)
    if arr.ndim != 2 or min(arr.shape) < 2:
        raise SeegaanError(f"{path}: image has shape {arr.shape}; expected a 2-D image")
    if size is not None:
        if float(arr.max()) == float(arr.min()) and not windowed:
            raise SeegaanError(
                f"{path}: the image is constant (all pixels {float(arr.min()):g}); it cannot "
                "be scaled to [-1, 1]: remove it"
            )
        arr = resize_bicubic(arr, int(size))
    if windowed:
        return np.clip(arr, -1.0, 1.0).astype(np.float32)
    return scale_image(arr, scaling=scaling, percentiles=percentiles, name=str(path))
