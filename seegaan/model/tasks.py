"""What the ``seegaan encode / reconstruct / sample`` commands do, as importable functions."""

from __future__ import annotations

import os
from pathlib import Path
import numpy as np

from seegaan._errors import SeegaanError
from seegaan._io import check_output_path
from seegaan._progress import Progress, no_progress


def _imageset(images, table, *, size: int, view=None, split_seed: int = 0):
    from seegaan.data import ImageSet, load_dataset

    if isinstance(images, ImageSet):
        if images.size != size:
            raise SeegaanError(f"the images are loaded at {images.size}x{images.size} but the checkpoint's "
                               f"model is {size}x{size}; load them with size={size}")
        return images
    return load_dataset(images, table, size=size, view=view, seed=split_seed)


def encode_images(checkpoint: str | os.PathLike, images, *, table=None, view=None,
                  out: str | os.PathLike | None = None, overwrite: bool = False, batch_size: int | None = None,
                  device: str = "cpu", split_seed: int = 0, progress: Progress | None = None):
    """Encode radiographs with a checkpoint's EMA encoder into a latent cohort (xarray Dataset).

    Parameters
    ----------
    checkpoint : path
        A checkpoint written by :func:`seegaan.model.training`; its identity (path + SHA-256) goes into the
        cohort's ``model`` attribute.
    images : ImageSet, folder or table path
        Read with :func:`seegaan.data.load_dataset` at the model's image size (``table``, ``view`` and
        ``split_seed`` passed on). Files that cannot be read are skipped (and left out of the cohort).
    out : path, optional
        Write the cohort there (netCDF, atomically).
    progress : callable ``progress(n=1, total=None)``, optional
        Told the number of images (``total=``), then each batch's count as it is encoded.

    Returns
    -------
    xarray.Dataset
        The latent cohort: ``w`` (image, latent) and the table's columns as coordinates.
    """
    from seegaan.cohort import create_cohort, save_cohort
    from seegaan.model.inference import load_encoder

    if out is not None:
        check_output_path(out, overwrite=overwrite)
    encoder = load_encoder(checkpoint, device=device)
    data = _imageset(images, table, size=encoder.image_size, view=view, split_seed=split_seed)
    if len(data) == 0:
        raise SeegaanError("no usable images to encode; check the images folder, table and --view")
    progress = progress or no_progress
    progress(0, total=len(data))
    ids, latents = [], []
    for batch_ids, batch in data.batches(batch_size or encoder.batch_size * 4):
        latents.append(encoder(batch))
        ids.extend(batch_ids)
        progress(len(batch_ids))
    if not ids:
        raise SeegaanError("none of the images could be read; see the skipped list")
    table_rows = data.table.set_index("image_id", drop=False).loc[ids].reset_index(drop=True)
    w = np.concatenate(latents).astype(np.float32)
    attrs = {"image_count_skipped": len(data.skipped), "view": ",".join(view) if view else ""}
    ds = create_cohort(w, table_rows, model=encoder.identity, image_size=encoder.image_size, attrs=attrs)
    if out is not None:
        save_cohort(ds, out, overwrite=overwrite)
    return ds


def reconstruct_images(checkpoint: str | os.PathLike, images, *, out: str | os.PathLike, table=None,
                       view=None, n: int = 8, seed: int | np.random.Generator | None = 0,
                       split: str | None = "val", overwrite: bool = False, device: str = "cpu") -> Path:
    """PNG grid: ``n`` images (first row of each pair) over their EMA encoder+generator reconstructions.

    The images are drawn with ``seed`` from ``split`` (all images when None).
    """
    from seegaan.model.inference import image_grid, load_checkpoint_decoder, load_encoder, save_png

    check_output_path(out, overwrite=overwrite)
    encoder = load_encoder(checkpoint, device=device)
    decoder = load_checkpoint_decoder(checkpoint, device=device)
    data = _imageset(images, table, size=encoder.image_size, view=view)
    if split is not None:
        data = data.subset(split)
    if len(data) == 0:
        raise SeegaanError(f"no images in split {split!r} to reconstruct; pass another --split")
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(len(data), size=min(n, len(data)), replace=False))
    x = data.array(index)
    recon = decoder(encoder(x))
    columns = len(index)
    originals = x[:, 0] if x.shape[1] == 1 else np.moveaxis(x, 1, -1)
    grid = image_grid(np.concatenate([originals, recon]), columns=columns)
    return save_png(grid, out, overwrite=overwrite)


def sample_images(checkpoint: str | os.PathLike, *, out: str | os.PathLike, n: int = 16, seed: int = 0,
                  truncation: float = 1.0, columns: int = 8, overwrite: bool = False,
                  device: str = "cpu") -> Path:
    """PNG grid of ``n`` random images G(mapping(z)) from the EMA networks (fixed noise)."""
    from seegaan.model.inference import image_grid, load_checkpoint_decoder, sample_latents, save_png

    check_output_path(out, overwrite=overwrite)
    if n < 1:
        raise SeegaanError(f"n must be >= 1, got {n}")
    w = sample_latents(checkpoint, n, seed=seed, truncation=truncation, device=device)
    images = load_checkpoint_decoder(checkpoint, device=device)(w)
    return save_png(image_grid(images, columns=columns), out, overwrite=overwrite)
