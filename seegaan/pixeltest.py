"""A model-free baseline: the SEE-GAAN permutation test run directly on the resized radiographs.

:func:`pixel_test` reads the images (as ``seegaan encode`` does), flattens each to its H·W pixel values and
uses those as the "latents" of a cohort (:func:`seegaan.create_cohort`), with the identity as the decoder
(:func:`identity_decoder`: (B, H·W) -> (B, H, W)). Everything of :func:`seegaan.interpolate` and
:func:`seegaan.sequence` then applies unchanged -- class means, GAM, covariates, every correction and
statistic -- and the result is an ordinary sequence (same netCDF layout) whose attrs say
``decoder = "identity (pixel-test on images)"`` and ``pixel_test = 1``.

With the identity decoder the class-mean trajectory's last frame is the mean image of group B, its first
the mean of group A, so the tested difference is the plain difference of mean images; the sign-flip null
flips the residual images of the weighted null model (one sign per patient), as it flips residual latents.

:func:`compare_maps` compares such a baseline with a decoded sequence of the same feature: the Pearson
correlation of the last step's difference maps, the Dice coefficient of their significant pixels and the
sign agreement among pixels significant in both (see ``docs/concepts.md``, "Model-free baseline").
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from seegaan._internal.errors import SeegaanError
from seegaan.data import ImageSet, load_dataset
from seegaan.data.cohort import create_cohort
from seegaan.decoder import Decoder
from seegaan.interpolation import interpolate
from seegaan.options import TestOptions
from seegaan.sequences import run_sequence

__all__ = ["pixel_test", "compare_maps", "identity_decoder", "load_flat_images", "IDENTITY", "COMPARE_KEYS"]

#: The ``decoder`` attr of a pixel test.
IDENTITY = "identity (pixel-test on images)"

#: The keys of :func:`compare_maps` (stored as ``compare_<key>`` attrs by ``seegaan-stats pixel-test --compare``).
COMPARE_KEYS = ("correlation", "dice", "sign_agreement")

#: Refuse a pixel array larger than this fraction of the machine's RAM.
MAX_RAM_FRACTION = 0.5


class _Reshape:
    """(B, H·W) -> (B, H, W), bit for bit; batch-invariant (an image never depends on the rest of the call)."""

    batch_invariant = True

    def __init__(self, height: int, width: int):
        self.shape = (int(height), int(width))
        self.identity = IDENTITY

    def __call__(self, w: np.ndarray) -> np.ndarray:
        w = np.asarray(w, dtype=np.float32)
        if w.shape[-1] != self.shape[0] * self.shape[1]:
            raise SeegaanError(
                f"the identity decoder expects {self.shape[0] * self.shape[1]} values per row "
                f"({self.shape[0]}x{self.shape[1]} pixels), got {w.shape[-1]}"
            )
        return w.reshape(len(w), *self.shape)


def identity_decoder(height: int, width: int | None = None):
    """The identity as a :class:`seegaan.decoder.Decoder`: rows of H·W pixel values -> images (B, H, W)."""
    return Decoder(_Reshape(height, height if width is None else width), IDENTITY)


def _ram_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # not POSIX: no check
        return None


def check_pixel_memory(n: int, height: int, width: int, *, fraction: float = MAX_RAM_FRACTION) -> int:
    """Bytes of the (n, H·W) float32 pixel array; a one-line error when it exceeds ``fraction`` of the RAM."""
    need = 4 * int(n) * int(height) * int(width)
    ram = _ram_bytes()
    if ram is not None and need > fraction * ram:
        raise SeegaanError(
            f"the pixel test would hold {n} images x {height}x{width} pixels as float32: "
            f"{need / 2**30:.1f} GiB, more than {fraction:.0%} of this machine's "
            f"{ram / 2**30:.1f} GiB of RAM; use a smaller --size or fewer images"
        )
    return need


def load_flat_images(data, *, batch_size: int = 64):
    """Read every image of an :class:`~seegaan.data.ImageSet` into (n, H·W) float32 and their table rows.

    Files that cannot be read are skipped (and listed in ``data.skipped``), as ``seegaan encode`` does.

    Returns
    -------
    flat : ndarray (n, H·W), float32
    table : pandas.DataFrame
        The rows of ``data.table`` for the images read, in order.
    shape : (H, W)
    """
    side = _image_side(data)
    check_pixel_memory(len(data), side, side)
    flat = np.empty((len(data), side * side), np.float32)
    ids: list[str] = []
    for batch_ids, batch in data.batches(batch_size):
        flat[len(ids) : len(ids) + len(batch_ids)] = batch.reshape(len(batch_ids), -1)
        ids.extend(batch_ids)
    if not ids:
        raise SeegaanError("none of the images could be read; see the skipped list")
    table = data.table.set_index("image_id", drop=False).loc[ids].reset_index(drop=True)
    return flat[: len(ids)], table, (side, side)


def _image_side(data) -> int:
    """The side the ImageSet ``data`` resizes its images to (an error when it keeps their own sizes)."""
    if not data.size:
        raise SeegaanError("the pixel test needs the images resized to one size; give size=... (--size)")
    return int(data.size)


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 4 <= int(size) <= 4096:
        raise SeegaanError(f"--size must be a whole number of pixels from 4 to 4096 (got {size!r})")
    return int(size)


def pixel_test(
    images,
    table=None,
    *,
    feature: str,
    size: int = 64,
    view: Sequence[str] | str | None = None,
    text_columns: Sequence[str] = (),
    pseudonymize: bool | str | None = None,
    method: str = "auto",
    levels=None,
    steps: int = 8,
    grid=None,
    transform: str = "none",
    gam_lam: float | str = 0.6,
    gam_splines: int = 20,
    adjust=None,
    log=None,
    **sequence_options,
):
    """Permutation-test the resized radiographs themselves along ``feature`` (the model-free baseline).

    Parameters
    ----------
    images : path, list of paths or ImageSet
        Radiographs as for :func:`seegaan.data.load_dataset` (a folder, a table listing them, files), or an
        ImageSet already loaded (then ``table``, ``size``, ``view``, ``text_columns`` and
        ``pseudonymize`` are not used).
    table : path or DataFrame, optional
        Clinical table joined on the image id.
    feature : str
        Clinical feature to move along.
    size : int
        Side the images are resized to (bicubic); the test has ``size**2`` pixels per step.
    view, text_columns, pseudonymize
        Reading options of :func:`seegaan.data.load_dataset` (as ``seegaan encode``).
    method, levels, steps, grid, transform, gam_lam, gam_splines, adjust
        The trajectory, as in :func:`seegaan.interpolate` (on the pixel values).
    log : callable, optional
        Receives the reading report (images found, skipped) as one string, once the options are checked.
    **sequence_options
        Passed to :func:`seegaan.sequence`: ``n_perm``, ``correction``, ``statistic``, ``alpha``,
        ``alternative``, ``seed``, ``batch_size``, ``mask``, ``progress``, ``command_line``, ...

    Returns
    -------
    SequenceResult
        Its ``image`` frames are the trajectory's images in pixel space (for class means: the group mean
        images), ``decoder`` is :data:`IDENTITY` and ``pixel_test`` is 1.

    Raises
    ------
    SeegaanError
        A bad option, feature or size, no usable images, or a pixel array larger than half the RAM --
        all before any pixel is read. Every check of :func:`seegaan.interpolate` and of
        :func:`seegaan.sequence` up to its first permutation (statistic against method and covariates,
        mask against ``size``, correction, alternative, permutation scheme and plan, memory of the test)
        is made on the clinical table alone (:meth:`seegaan.options.TestOptions.resolve`).
    TypeError
        An option :func:`seegaan.sequence` does not take (also before any pixel is read).
    """

    if "decoder" in sequence_options:
        raise SeegaanError("pixel_test() decodes with the identity; it takes no decoder")
    if str(sequence_options.get("device", "cpu")) != "cpu":
        raise SeegaanError(
            "pixel_test() decodes with the identity in NumPy; it takes no device (a GPU has nothing to decode here)"
        )
    if sequence_options.get("client") is not None:
        raise SeegaanError(
            "pixel_test() runs in one process (its identity decoder cannot be sent to Dask workers); drop client="
        )
    run = {k: sequence_options.pop(k) for k in ("progress", "command_line") if k in sequence_options}
    sequence_options.pop("client", None)
    sequence_options.pop("device", None)
    unknown = sorted(set(sequence_options) - set(_TEST_OPTIONS))
    if unknown:
        raise TypeError(f"pixel_test() got an unexpected keyword argument {unknown[0]!r}")
    # the options alone: before the images are even listed
    options = TestOptions.create(**sequence_options)
    data = images if isinstance(images, ImageSet) else None
    side = _image_side(data) if data is not None else _check_size(size)
    options.family_mask((side, side))  # the mask's size is the test's, known before any image
    if data is None:
        data = load_dataset(images, table, size=side, view=view, text_columns=text_columns, pseudonymize=pseudonymize)
    if len(data) == 0:
        raise SeegaanError("no usable images for the pixel test; check the images folder, table and --view")
    trajectory = dict(
        feature=feature,
        method=method,
        levels=levels,
        steps=steps,
        grid=grid,
        transform=transform,
        gam_lam=gam_lam,
        gam_splines=gam_splines,
        adjust=adjust,
    )
    # every trajectory and test option is checked on one-value placeholder latents of the same table
    # before any pixel is read: interpolate's checks, then the test's against that design and image size
    placeholder = interpolate(create_cohort(np.zeros((len(data), 1), np.float32), data.table), **trajectory)
    options.resolve(placeholder, shape=(side, side))
    if log is not None:
        log(data.report())
    flat, rows, (height, width) = load_flat_images(data)
    attrs = {
        "pixel_test": 1,
        "view": ",".join(view) if isinstance(view, (list, tuple)) else (view or ""),
        "image_count_skipped": len(data.skipped),
    }
    cohort = create_cohort(flat, rows, model=IDENTITY, image_size=height, attrs=attrs)
    del flat
    interp = interpolate(cohort, **trajectory)
    result = run_sequence(interp, identity_decoder(height, width), options, **run)
    return dataclasses.replace(
        result, attrs={**result.attrs, "pixel_test": 1, "image_size": height, "images_skipped": len(data.skipped)}
    )


#: the test settings of :class:`seegaan.options.TestOptions` that pixel_test passes on
_TEST_OPTIONS = (
    "n_perm",
    "null",
    "correction",
    "statistic",
    "alpha",
    "alternative",
    "seed",
    "batch_size",
    "null_cache_mb",
    "backend",
    "scheme",
    "mask",
)


# ------------------------------------------------------------------------------------------------ compare


def _last_step(ds, name: str, which: str) -> np.ndarray:
    if name not in ds:
        raise SeegaanError(
            f"the {which} dataset has no variable {name!r}; give a sequence written by "
            "seegaan-stats interpolate or pixel-test" + (" with --perm > 0" if name == "significant" else "")
        )
    arr = np.asarray(ds[name].values)
    if arr.ndim != 3 or arr.shape[0] < 2:
        raise SeegaanError(f"the {which} dataset's {name!r} is not a sequence (step, y, x) of 2 or more steps")
    return arr[-1]


def _resize(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D float map (PIL, mode F); the identity when already that shape."""
    if arr.shape == tuple(shape):
        return arr.astype(np.float64)

    img = Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32), mode="F")
    return np.asarray(img.resize((shape[1], shape[0]), Image.BILINEAR), dtype=np.float64)


def compare_maps(decoded_ds, pixel_ds) -> dict:
    """Compare the last step of two sequences of one feature (e.g. a decoded one and its pixel test).

    Both maps are resized (bilinear) to the smaller of the two sizes; significance maps are resized as
    0/1 values and thresholded at 0.5.

    Parameters
    ----------
    decoded_ds, pixel_ds : xarray.Dataset
        Sequences (``difference``, and ``significant`` when tested) of the same feature.

    Returns
    -------
    dict
        ``correlation``: Pearson correlation of the last step's difference maps (NaN when either is
        constant); ``dice``: 2|A∩B| / (|A| + |B|) of the last step's significant pixels (NaN when neither
        has any, or either was not tested); ``sign_agreement``: the fraction of pixels significant in both
        whose differences have the same sign (NaN when there are none); and ``size`` (H, W),
        ``n_significant`` (decoded, pixel), ``n_both``.
    """
    for which, ds in (("decoded", decoded_ds), ("pixel-test", pixel_ds)):
        if not hasattr(ds, "attrs") or "difference" not in getattr(ds, "data_vars", {}):
            raise SeegaanError(
                f"the {which} input is not a sequence dataset (no 'difference'); give a file "
                "written by seegaan-stats interpolate or pixel-test"
            )
    fa, fb = decoded_ds.attrs.get("feature"), pixel_ds.attrs.get("feature")
    if fa and fb and fa != fb:
        raise SeegaanError(f"the sequences are of different features ({fa} and {fb}); compare one feature")
    la, lb = str(decoded_ds.attrs.get("levels", "")), str(pixel_ds.attrs.get("levels", ""))
    if la and lb and la != lb:
        flipped = la.split(",")[::-1] == lb.split(",")
        raise SeegaanError(
            f"the sequences compare different levels ({la} and {lb})"
            + ("; one is the other reversed, so every difference has the opposite sign" if flipped else "")
            + f"; run both with the same --levels {la}"
        )
    da, db = _last_step(decoded_ds, "difference", "decoded"), _last_step(pixel_ds, "difference", "pixel-test")
    shape = (min(da.shape[0], db.shape[0]), min(da.shape[1], db.shape[1]))
    a, b = _resize(da, shape).ravel(), _resize(db, shape).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        ac, bc = a - a.mean(), b - b.mean()
        denom = np.sqrt((ac @ ac) * (bc @ bc))
        corr = float(ac @ bc / denom) if denom > 0 else float("nan")
    out = {
        "correlation": corr,
        "dice": float("nan"),
        "sign_agreement": float("nan"),
        "size": shape,
        "n_significant": (0, 0),
        "n_both": 0,
    }
    if "significant" not in decoded_ds or "significant" not in pixel_ds:
        return out
    sa = _resize(_last_step(decoded_ds, "significant", "decoded").astype(np.float32), shape).ravel() >= 0.5
    sb = _resize(_last_step(pixel_ds, "significant", "pixel-test").astype(np.float32), shape).ravel() >= 0.5
    both = sa & sb
    total = int(sa.sum() + sb.sum())
    out.update(
        n_significant=(int(sa.sum()), int(sb.sum())),
        n_both=int(both.sum()),
        dice=2.0 * both.sum() / total if total else float("nan"),
        sign_agreement=float(np.mean(np.sign(a[both]) == np.sign(b[both]))) if both.any() else float("nan"),
    )
    return out
