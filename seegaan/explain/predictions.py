"""Run a CNN over a latent cohort's images and add its predictions as a numeric feature coordinate.

The predictions can then be analysed like any clinical feature (``seegaan-stats interpolate --feature
NAME``), or used by :func:`seegaan.explain.explain` to choose the direction toward a target prediction.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Literal

import numpy as np
import xarray as xr

from seegaan._internal.errors import SeegaanError
from seegaan._internal.progress import Progress, no_progress
from seegaan._version import __version__
from seegaan.data.cohort import validate_cohort
from seegaan.data.dataset import load_dataset
from seegaan.data.tables import RESERVED, RESERVED_FEATURE_NAMES, feature_name
from seegaan.decoder import decoder_device, load_decoder_on
from seegaan.decoding import decoding_precision
from seegaan.explain.cnn import load_model

PredictInput = Literal["images", "reconstruction"]

#: how many missing image ids a one-line error names
_SHOW_MISSING = 3


def check_feature_name(cohort: xr.Dataset, name: str) -> str:
    """Refuse a new feature name that netCDF cannot keep, that is reserved or that the cohort already has."""
    name = str(name)
    if not name.strip():
        raise SeegaanError("give the predictions a feature name (--name)")
    safe = feature_name(name)
    if safe != name:
        raise SeegaanError(f"feature name {name!r} cannot be kept in a netCDF cohort; use {safe!r}")
    if name in RESERVED or name in RESERVED_FEATURE_NAMES:
        raise SeegaanError(f"feature name {name!r} is reserved; choose another --name")
    if name in cohort.coords or name in cohort.data_vars:
        raise SeegaanError(f"the cohort already has {name!r}; choose another --name")
    return name


def check_unambiguous(imageset, ids, folder) -> None:
    """Refuse when a wanted image id has two files in ``folder`` (``ID.png`` and ``ID.jpg``): which one is the
    cohort's image cannot be known, and silently taking the first would answer for another image."""
    wanted = set(map(str, ids))
    for path, reason in getattr(imageset, "skipped", ()):
        if reason.startswith("duplicate image id '"):
            image_id = reason.split("'")[1]
            if image_id in wanted:
                raise SeegaanError(
                    f"image id {image_id!r} has two files in {folder} ({path} and another): which is the "
                    "cohort's image is ambiguous; keep one of them"
                )


def image_rows(images, ids, size: int | None):
    """The ImageSet of folder ``images``, each wanted id's row in it (-1 when absent) and the absent ids.

    The folder must exist, and an id with two files in it is refused (:func:`check_unambiguous`)."""
    path = Path(images)
    if not path.is_dir():
        raise SeegaanError(f"images folder {path} does not exist or is not a folder")
    imageset = load_dataset(path, size=size)
    position = {str(i): k for k, i in enumerate(imageset.image_ids)}
    ids = [str(i) for i in ids]
    check_unambiguous(imageset, ids, path)
    rows = np.array([position.get(i, -1) for i in ids], dtype=np.int64)
    return imageset, rows, [i for i in ids if i not in position]


def _image_rows(cohort: xr.Dataset, images, size: int | None):
    """The ImageSet of folder ``images`` and, for each cohort image in order, its row in that set."""
    ids = [str(i) for i in cohort["image_id"].values]
    imageset, rows, missing = image_rows(images, ids, size)
    if missing:
        shown = ", ".join(missing[:_SHOW_MISSING]) + (", ..." if len(missing) > _SHOW_MISSING else "")
        raise SeegaanError(
            f"{len(missing)} of the cohort's {len(ids)} images are not in {Path(images)} (e.g. {shown}); "
            "image ids are the file names without extension -- point --images at the folder "
            "the cohort was encoded from"
        )
    return imageset, rows


def predict(
    cohort: xr.Dataset,
    model,
    *,
    name: str,
    images: str | os.PathLike | None = None,
    on: PredictInput | None = None,
    decoder=None,
    batch_size: int = 32,
    progress: Progress | None = None,
    device: str = "cpu",
) -> xr.Dataset:
    """Predictions of ``model`` for every image of ``cohort``, as a new numeric feature ``name``.

    Parameters
    ----------
    cohort : xarray.Dataset
        A latent cohort (``w`` with dims ("image", "latent")).
    model : Model or spec
        The CNN (:func:`seegaan.explain.cnn.load_model` spec or :class:`seegaan.explain.cnn.Model`).
    name : str
        Name of the new feature coordinate (must not exist yet).
    images : path, optional
        Folder of the cohort's radiographs; each cohort image is read by its ``image_id`` with
        :func:`seegaan.data.load_dataset` at the cohort's ``image_size`` (all ids must be found).
    on : {"images", "reconstruction"}, optional
        What the CNN sees: the images on disk (``images``) or the reconstructions G(w_E) of the latents
        (needs ``decoder``). Default: ``images`` when a folder is given, else ``reconstruction``.
    decoder : Decoder or spec, optional
        For ``on="reconstruction"`` (:func:`seegaan.load_decoder`).
    batch_size : int
        Images per model call (memory only, not results).
    progress : callable, optional
        ``progress(n=1, total=None)``, called with the number of images done.
    device : {"cpu", "cuda", "cuda:N", "auto"}
        For ``on="reconstruction"``: where a checkpoint decoder is loaded, as for :func:`seegaan.sequence`
        (checked before any work; only ``"cpu"``, the default, for other decoders and for ``on="images"``).
        The reconstructions are decoded in strict fp32, recorded with the device in the coordinate's
        ``precision`` attr.

    Returns
    -------
    xarray.Dataset
        A copy of ``cohort`` with the float64 coordinate ``name`` on dim ``image`` in cohort order; its
        attrs (and the Dataset attr ``prediction_<name>``) record the model identity and sha256, its
        input settings and what it saw.
    """
    validate_cohort(cohort)
    name = check_feature_name(cohort, name)
    if on is None:
        on = "images" if images is not None else "reconstruction"
    if on not in ("images", "reconstruction"):
        raise SeegaanError(f"on must be 'images' or 'reconstruction', not {on!r}")
    if on == "images" and images is None:
        raise SeegaanError("on='images' needs the images folder (--images DIR)")
    if on == "reconstruction" and images is not None:
        raise SeegaanError("give either an images folder (--images) or --on reconstruction, not both")
    if on == "reconstruction" and decoder is None:
        raise SeegaanError("predictions on reconstructions need a decoder (--decoder)")
    if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
        raise SeegaanError(f"batch_size must be a positive integer, not {batch_size!r}")
    if on == "reconstruction":
        device = decoder_device(decoder, device)
    elif str(device) != "cpu":
        raise SeegaanError(
            f"device {str(device)!r} is where the decoder runs; predictions on images decode "
            "nothing: drop the device (or use --device cpu)"
        )
    progress = progress or no_progress
    size = int(cohort.attrs.get("image_size", 0) or 0) or None
    if on == "images":
        imageset, rows = _image_rows(cohort, images, size)
        source = f"images {Path(images)}"
    else:
        decoder = load_decoder_on(decoder, device)
        source = f"reconstruction by {decoder.identity}"
    model = load_model(model)

    n = cohort.sizes["image"]
    w = cohort["w"].values
    out = np.empty(n, np.float64)
    precision = ""
    progress(0, total=n)
    for start in range(0, n, int(batch_size)):
        stop = min(start + int(batch_size), n)
        if on == "images":
            batch = imageset.array(rows[start:stop])
        else:
            with decoding_precision(decoder) as precision:
                batch = decoder(w[start:stop])[:, None]
        out[start:stop] = model(batch)
        progress(stop - start)

    result = cohort.copy()
    attrs = {
        "source": "prediction",
        "model": model.identity,
        "model_sha256": model.sha256,
        "input": "images" if on == "images" else "reconstruction",
        "input_detail": source,
        "input_size": "" if model.input_size is None else f"{model.input_size[0]},{model.input_size[1]}",
        "input_scale": model.input_scale,
        "seegaan_version": __version__,
    }
    if on == "reconstruction":
        attrs["precision"] = precision  # how the reconstructions were decoded, and on which device
    result = result.assign_coords({name: ("image", out, attrs)})
    result.attrs[f"prediction_{name}"] = f"model {model.identity}; input {source}; scale {model.input_scale}" + (
        f"; resized to {attrs['input_size']}" if attrs["input_size"] else ""
    )
    return validate_cohort(result)


def cnn_along(result, model, *, batch_size: int = 32):
    """``result`` (a :class:`seegaan.SequenceResult` or :class:`seegaan.explain.local.LocalResult`) with the
    CNN's prediction on every decoded step: ``model_prediction`` (step) in its dataset and figure, the model
    named in its attrs (``model``, ``model_sha256``).

    The predictions are ``model(images)`` of the frames exactly as stored (float32, [-1, 1]), so they equal
    :func:`predict` on the decoded images.
    """
    if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
        raise SeegaanError(f"batch_size must be a positive integer, not {batch_size!r}")
    model = load_model(model)
    images = np.asarray(result.images, np.float32)
    preds = np.concatenate(
        [model(images[start : start + batch_size, None]) for start in range(0, len(images), batch_size)]
    )
    attrs = {**result.attrs, "model": model.identity, "model_sha256": model.sha256}
    return dataclasses.replace(result, model_prediction=preds, attrs=attrs)
