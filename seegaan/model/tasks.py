"""What the ``seegaan encode / reconstruct / sample / evaluate`` commands do, as importable functions."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd

from seegaan._internal.errors import SeegaanError
from seegaan._internal.io import check_output_path
from seegaan._internal.progress import Progress, no_progress
from seegaan.data import ImageSet, load_dataset
from seegaan.data.cohort import create_cohort, save_cohort
from seegaan.formats import save_csv, save_figure

#: how ``encode`` fills the cohort's ``split``: ``auto`` keeps a split that means something (the table's
#: split column, or the training split when the images are the checkpoint's training images) and leaves
#: it empty otherwise; ``table`` needs the table's column; ``random`` draws a patient-level split with
#: ``split_seed``; ``none`` leaves it empty ("")
SplitMode = Literal["auto", "table", "random", "none"]
SPLIT_MODES: tuple[str, ...] = get_args(SplitMode)


def _quiet(_message: str) -> None:
    pass


def _load(images, table, *, size: int, view=None, split_seed: int = 0, text_columns=(), pseudonymize=None):
    if isinstance(images, ImageSet):
        if images.size != size:
            raise SeegaanError(
                f"the images are loaded at {images.size}x{images.size} but the checkpoint's "
                f"model is {size}x{size}; load them with size={size}"
            )
        return images
    return load_dataset(
        images, table, size=size, view=view, seed=split_seed, text_columns=text_columns, pseudonymize=pseudonymize
    )


def _training_record(payload: dict) -> dict:
    """What a checkpoint recorded of its training images (empty for checkpoints that recorded none)."""
    return dict(((payload.get("train") or {}).get("data")) or {})


def _is_training_cohort(data, record: dict) -> bool:
    """Whether ``data`` holds exactly the checkpoint's training cohort (all images) with its split."""
    from seegaan.model.training import ids_sha256  # deferred: seegaan.model.training imports torch

    return (
        bool(record.get("image_ids_sha256"))
        and ids_sha256(data.image_ids) == record["image_ids_sha256"]
        and ids_sha256(data.subset("train").image_ids) == record.get("train_ids_sha256")
    )


def _with_split(
    images, table, data, mode: str, record: dict, *, load: dict, split_seed: int | None, log: Callable[[str], None]
):
    """(data, split column for the cohort, a line saying where it comes from)."""
    if mode not in SPLIT_MODES:
        raise SeegaanError(f"split must be one of {', '.join(SPLIT_MODES)}, got {mode!r}")
    from_table = str(data.attrs.get("split_source", "")).startswith("split column of the table")
    if mode == "table" or (mode == "auto" and from_table):
        if not from_table:
            raise SeegaanError("--split table: the table has no split column; add one or use --split random/none")
        return data, data.table["split"].to_numpy(), "split: from the table's split column"
    if mode == "random":
        if from_table:
            raise SeegaanError(
                "--split random: the table has its own split column; use --split table, or drop the column"
            )
        return data, data.table["split"].to_numpy(), f"split: {data.attrs.get('split_source')} (--split random)"
    if mode == "auto" and record.get("image_ids_sha256"):
        seed = record.get("split_seed")
        if (
            split_seed is None
            and not _is_training_cohort(data, record)
            and isinstance(seed, int)
            and not isinstance(images, type(data))
        ):
            data = _load(images, table, split_seed=seed, **load)  # the seed training used
        if _is_training_cohort(data, record):
            return (
                data,
                data.table["split"].to_numpy(),
                ("split: the checkpoint's training split (these are its training images)"),
            )
    empty = np.full(len(data), "", dtype=object)
    why = "these are not the checkpoint's training images" if mode == "auto" else "--split none"
    return (
        data,
        empty,
        (
            f"split: left empty ({why}); pass --split random for a patient-level split, or "
            "give a table with a split column"
        ),
    )


def encode_images(
    checkpoint: str | os.PathLike,
    images,
    *,
    table=None,
    view=None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    batch_size: int | None = None,
    device: str = "cpu",
    split: SplitMode = "auto",
    split_seed: int | None = None,
    text_columns=(),
    pseudonymize=None,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
    refine: int = 0,
):
    """Encode radiographs with a checkpoint's EMA encoder into a latent cohort (xarray Dataset).

    Parameters
    ----------
    checkpoint : path
        A checkpoint written by :func:`seegaan.model.training`; its identity (path + SHA-256) goes into the
        cohort's ``model`` attribute.
    images : ImageSet, folder or table path
        Read with :func:`seegaan.data.load_dataset` at the model's image size (``table``, ``view``,
        ``text_columns`` and ``pseudonymize`` passed on). Files that cannot be read are skipped (and left
        out of the cohort).
    out : path, optional
        Write the cohort there (netCDF, atomically); it may not be the checkpoint, the table or an image.
    split : {"auto", "table", "random", "none"}
        The cohort's ``split``. ``auto``: the table's split column when it has one, else the checkpoint's
        training split when the images are exactly its training images (checkpoints record a hash of
        their image ids), else ``""`` (a foreign cohort is not a training set). ``table``: the table's
        column (required). ``random``: a patient-level split drawn with ``split_seed``. ``none``: ``""``.
    split_seed : int, optional
        Seed of ``split="random"`` (default 0); with ``auto``, the training run's seed is used.
    progress : callable ``progress(n=1, total=None)``, optional
        Told the number of images (``total=``), then each batch's count as it is encoded.
    log : callable, optional
        Receives a line saying where the split comes from.
    refine : int
        Refine each latent by this many Adam steps on its image's reconstruction error, from E(x), through
        the checkpoint's generator (:mod:`seegaan.model.refine`; 0, the default, keeps E(x)). Recorded in the
        cohort's attrs (``refine_steps``, ``refine_lr``, the mean squared error before and after).

    Returns
    -------
    xarray.Dataset
        The latent cohort: ``w`` (image, latent) and the table's columns as coordinates.
    """
    from seegaan.model.checkpoint import read_checkpoint  # deferred: seegaan.model.checkpoint imports torch
    from seegaan.model.inference import check_seed, load_encoder  # deferred: seegaan.model.inference imports torch

    log = log or _quiet
    if split_seed is not None:
        check_seed(split_seed, "split_seed")
    if not (isinstance(refine, (int, np.integer)) and refine >= 0):
        raise SeegaanError(f"--refine must be a whole number of steps (0 or more), not {refine!r}")
    if out is not None:
        check_output_path(out, overwrite=overwrite, inputs=_input_paths(checkpoint, images, table), suffixes=".nc")
    payload = read_checkpoint(checkpoint)
    encoder = load_encoder(checkpoint, device=device, payload=payload)
    load = dict(size=encoder.image_size, view=view, text_columns=text_columns, pseudonymize=pseudonymize)
    data = _load(images, table, split_seed=0 if split_seed is None else split_seed, **load)
    if len(data) == 0:
        raise SeegaanError("no usable images to encode; check the images folder, table and --view")
    data, split_values, split_line = _with_split(
        images, table, data, split, _training_record(payload), load=load, split_seed=split_seed, log=log
    )
    log(split_line)
    split_of = dict(zip(data.table["image_id"], split_values))
    progress = progress or no_progress
    progress(0, total=len(data) * (1 + int(refine)))
    decoder = None
    if refine:
        from seegaan.model.inference import load_checkpoint_decoder  # deferred: seegaan.model.inference imports torch
        from seegaan.model.refine import REFINE_LR, refine_latents  # deferred: torch (heavy)

        decoder = load_checkpoint_decoder(checkpoint, device=device, payload=payload)
    ids, latents, errors = [], [], []
    for batch_ids, batch in data.batches(batch_size or encoder.batch_size * 4):
        w = encoder(batch)
        progress(len(batch_ids))
        if decoder is not None:
            w, before, after = refine_latents(decoder, batch, w, steps=int(refine), progress=progress)
            errors.append(np.stack([before, after], axis=1))
        latents.append(w)
        ids.extend(batch_ids)
    if not ids:
        raise SeegaanError("none of the images could be read; see the skipped list")
    table_rows = data.table.set_index("image_id", drop=False).loc[ids].reset_index(drop=True)
    table_rows["split"] = [split_of[i] for i in ids]
    w = np.concatenate(latents).astype(np.float32)
    attrs = {
        "image_count_skipped": len(data.skipped),
        "view": ",".join(view) if view else "",
        "split_source": split_line.removeprefix("split: "),
    }
    if decoder is not None:
        err = np.concatenate(errors)
        attrs.update(
            refine_steps=int(refine),
            refine_lr=REFINE_LR,
            refine_mse_before=float(err[:, 0].mean()),
            refine_mse_after=float(err[:, 1].mean()),
            refine_method="Adam on mean((G(w) - x)^2) per image from E(x), the best latent kept",
        )
        mse = f"{err[:, 0].mean():.5f} -> {err[:, 1].mean():.5f}"
        log(f"refined {len(err)} latents by {refine} steps: reconstruction MSE {mse}")
    ds = create_cohort(w, table_rows, model=encoder.identity, image_size=encoder.image_size, attrs=attrs)
    if out is not None:
        save_cohort(ds, out, overwrite=overwrite)
    return ds


def _input_paths(*paths) -> list:
    return [p for p in paths if isinstance(p, (str, os.PathLike))]


def _split_filter(data, split: str | None, record: dict) -> tuple[object, str]:
    """Images of ``split`` ("auto": the validation split of the checkpoint's own training images, all
    images otherwise; None or "all": all) and a line that says which."""
    if split == "auto":
        if _is_training_cohort(data, record):
            return data.subset("val"), (
                "images: the validation split of the checkpoint's training images (--split all for every image)"
            )
        return data, "images: all (they are not the checkpoint's training images, so no split is implied)"
    if split in (None, "all"):
        return data, "images: all (--split all)"
    return data.subset(split), f"images: split {split} only (--split {split})"


def reconstruct_images(
    checkpoint: str | os.PathLike,
    images,
    *,
    out: str | os.PathLike,
    table=None,
    view=None,
    n: int = 8,
    seed: int | np.random.Generator | None = 0,
    split: str | None = "auto",
    overwrite: bool = False,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
) -> Path:
    """PNG grid: ``n`` images (first row of each pair) over their EMA encoder+generator reconstructions.

    The images are drawn with ``seed`` from ``split``: ``"auto"`` (default) is the validation split when
    the images are the checkpoint's own training images and all images otherwise; None or ``"all"``: all
    images; ``log`` receives a line saying which.
    """
    from seegaan.model.checkpoint import read_checkpoint  # deferred: seegaan.model.checkpoint imports torch

    # deferred: seegaan.model.inference imports torch
    from seegaan.model.inference import check_seed, image_grid, load_checkpoint_decoder, load_encoder, save_png

    check_seed(seed)
    if n < 1:
        raise SeegaanError(f"n must be >= 1, got {n}")
    check_output_path(out, overwrite=overwrite, inputs=_input_paths(checkpoint, images, table), suffixes=".png")
    payload = read_checkpoint(checkpoint)
    encoder = load_encoder(checkpoint, device=device, payload=payload)
    decoder = load_checkpoint_decoder(checkpoint, device=device, payload=payload)
    data, line = _split_filter(
        _load(images, table, size=encoder.image_size, view=view), split, _training_record(payload)
    )
    (log or _quiet)(line)
    if len(data) == 0:
        raise SeegaanError(f"no images in split {split!r} to reconstruct; pass another --split")
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(len(data), size=min(n, len(data)), replace=False))
    x = data.array(index)
    recon = decoder(encoder(x))
    originals = x[:, 0] if x.shape[1] == 1 else np.moveaxis(x, 1, -1)
    grid = image_grid(np.concatenate([originals, recon]), columns=len(index))
    return save_png(grid, out, overwrite=overwrite)


def sample_images(
    checkpoint: str | os.PathLike,
    *,
    out: str | os.PathLike,
    n: int = 16,
    seed: int = 0,
    truncation: float = 1.0,
    columns: int = 8,
    overwrite: bool = False,
    device: str = "cpu",
) -> Path:
    """PNG grid of ``n`` random images G(mapping(z)) from the EMA networks (fixed noise)."""
    # deferred: seegaan.model.inference imports torch
    from seegaan.model.inference import (
        check_columns,
        check_seed,
        image_grid,
        load_checkpoint_decoder,
        sample_latents,
        save_png,
    )

    if n < 1:
        raise SeegaanError(f"n must be >= 1, got {n}")
    check_seed(seed)
    check_columns(columns)
    check_output_path(out, overwrite=overwrite, inputs=_input_paths(checkpoint), suffixes=".png")
    w = sample_latents(checkpoint, n, seed=seed, truncation=truncation, device=device)
    images = load_checkpoint_decoder(checkpoint, device=device)(w)
    return save_png(image_grid(images, columns=columns), out, overwrite=overwrite)


# ---------------------------------------------------------------------------------------------- evaluate
METRICS = ("l2", "psnr", "ssim")


@dataclass(frozen=True)
class Evaluation:
    """Reconstruction quality of a checkpoint on a set of images.

    Attributes
    ----------
    per_image : pandas.DataFrame
        One row per evaluated image: ``image_id``, ``split``, ``l2`` (mean squared error on [-1, 1]),
        ``psnr`` (dB, data range 2), ``ssim`` (Gaussian window 11, sigma 1.5; see
        :mod:`seegaan.model.metrics`), sorted by ``l2``, worst first.
    checkpoint : str
        Identity (path and SHA-256) of the checkpoint.
    selection : str
        Which images were evaluated and why.
    """

    per_image: object
    checkpoint: str
    selection: str
    panel_ids: list = field(default_factory=list)

    def overall(self):
        """Mean, SD, median, min and max of each metric over the images (a DataFrame, metrics as rows)."""
        frame = self.per_image[list(METRICS)]
        return frame.agg(["mean", "std", "median", "min", "max"]).T

    def as_text(self) -> str:
        """The summary table as text."""
        lines = [
            f"{len(self.per_image)} images; {self.selection}",
            f"checkpoint {self.checkpoint}",
            f"{'metric':<8}{'mean':>10}{'sd':>10}{'median':>10}{'min':>10}{'max':>10}",
        ]
        for name, row in self.overall().iterrows():
            lines.append(f"{name:<8}" + "".join(f"{row[c]:>10.4g}" for c in ("mean", "std", "median", "min", "max")))
        worst = self.per_image.head(3)
        lines.append("worst (highest L2): " + ", ".join(f"{r.image_id} ({r.l2:.4g})" for r in worst.itertuples()))
        return "\n".join(lines)


def _reconstruct_batch(encoder, decoder, x: np.ndarray) -> np.ndarray:
    recon = decoder(encoder(x))
    return recon[:, None] if recon.ndim == 3 else np.moveaxis(recon, -1, 1)


def _metrics(x: np.ndarray, y: np.ndarray) -> dict:
    import torch  # deferred: torch (heavy)

    # deferred: seegaan.model.metrics imports torch
    from seegaan.model.metrics import l2_per_image, psnr_per_image, ssim_per_image

    a, b = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))
    return {
        "l2": l2_per_image(b, a).numpy(),
        "psnr": psnr_per_image(b, a).numpy(),
        "ssim": ssim_per_image(b, a).numpy(),
    }


def _selected(data, *, ids, n, seed, worst):
    """(images to evaluate, what was selected)."""
    if ids is not None:
        ids = [str(i) for i in ids]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise SeegaanError(
                f"image id {repeated[0]!r} is given more than once in --ids ({len(repeated)} repeated); "
                "give each image once, or it is counted twice"
            )
        known = set(data.image_ids)
        missing = [i for i in ids if i not in known]
        if missing:
            raise SeegaanError(
                f"image id {missing[0]!r} is not among the {len(data)} usable images "
                f"({len(missing)} missing); check --ids against the table"
            )
        position = {i: k for k, i in enumerate(data.image_ids)}
        # ImageSet has no public row selection yet (only subset by split)
        return data._take(np.array([position[i] for i in ids])), f"{len(ids)} images given by id"
    if n is not None:
        index = np.sort(np.random.default_rng(seed).choice(len(data), size=min(n, len(data)), replace=False))
        return data._take(index), f"{len(index)} images drawn with seed {seed}"
    return data, "all images"


def evaluate_images(
    checkpoint: str | os.PathLike,
    images,
    *,
    table=None,
    view=None,
    split: str | None = None,
    ids=None,
    n: int | None = None,
    worst: int | None = None,
    seed: int = 0,
    out_csv: str | os.PathLike | None = None,
    panel: str | os.PathLike | None = None,
    panel_images: int = 6,
    overwrite: bool = False,
    batch_size: int | None = None,
    device: str = "cpu",
    text_columns=(),
    pseudonymize=None,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> Evaluation:
    """Per-image and overall L2, PSNR and SSIM of the EMA encoder+generator on any set of radiographs.

    Parameters
    ----------
    checkpoint : path
        A checkpoint written by ``seegaan train``.
    images : ImageSet, folder or table path
        Read with :func:`seegaan.data.load_dataset` at the model's size (``table``, ``view``,
        ``text_columns``, ``pseudonymize`` passed on).
    split : str, optional
        ``train``, ``val`` or ``test`` to keep one split of the table, or ``"auto"`` (the validation split
        of the checkpoint's own training images, all images otherwise); None or ``"all"`` (default): all
        images, whatever their split.
    ids, n, worst : optional, at most one
        Evaluate these image ids; or ``n`` images drawn with ``seed``; or all images, with the ``worst``
        (highest L2) in the panel.
    out_csv : path, optional
        Write the per-image table (CSV).
    panel : path, optional
        PNG with one row per image: original, reconstruction, |difference| with a colour bar (one scale
        for all rows). Shows the selected images (``ids``/``n``), else the ``worst`` or ``panel_images``
        worst images; at most 16 rows.

    Returns
    -------
    Evaluation
    """
    from seegaan.model.checkpoint import read_checkpoint  # deferred: seegaan.model.checkpoint imports torch

    # deferred: seegaan.model.inference imports torch
    from seegaan.model.inference import check_seed, load_checkpoint_decoder, load_encoder

    check_seed(seed)
    if sum(v is not None for v in (ids, n, worst)) > 1:
        raise SeegaanError("give at most one of --ids, --n and --worst")
    for name, value in (("n", n), ("worst", worst)):
        if value is not None and value < 1:
            raise SeegaanError(f"{name} must be >= 1, got {value}")
    inputs = _input_paths(checkpoint, images, table)
    if out_csv is not None:
        check_output_path(out_csv, overwrite=overwrite, inputs=inputs, suffixes=".csv", others=[panel])
    if panel is not None:
        check_output_path(panel, overwrite=overwrite, inputs=inputs, suffixes=".png", others=[out_csv])
    payload = read_checkpoint(checkpoint)
    encoder = load_encoder(checkpoint, device=device, payload=payload)
    decoder = load_checkpoint_decoder(checkpoint, device=device, payload=payload)
    data = _load(
        images, table, size=encoder.image_size, view=view, text_columns=text_columns, pseudonymize=pseudonymize
    )
    data, line = _split_filter(data, split, _training_record(payload))
    data, selection = _selected(data, ids=ids, n=n, seed=seed, worst=worst)
    if len(data) == 0:
        raise SeegaanError("no images to evaluate; check the images folder, table, --view and --split")
    (log or _quiet)(line)
    progress = progress or no_progress
    progress(0, total=len(data))
    rows = []
    for batch_ids, x in data.batches(batch_size or decoder.batch_size):
        y = _reconstruct_batch(encoder, decoder, x)
        values = _metrics(x, y)
        for k, image_id in enumerate(batch_ids):
            rows.append({"image_id": image_id, **{m: float(values[m][k]) for m in METRICS}})
        progress(len(batch_ids))
    if not rows:
        raise SeegaanError("none of the images could be read; see the skipped list")

    per_image = pd.DataFrame(rows)
    per_image.insert(1, "split", per_image["image_id"].map(dict(zip(data.table["image_id"], data.table["split"]))))
    per_image = per_image.sort_values("l2", ascending=False, kind="stable").reset_index(drop=True)
    shown = (
        list(per_image["image_id"])
        if (ids is not None or n is not None)
        else list(per_image["image_id"].head(worst or panel_images))
    )[:16]
    result = Evaluation(
        per_image=per_image,
        checkpoint=encoder.identity,
        selection=f"{selection}; {line.removeprefix('images: ')}",
        panel_ids=shown,
    )
    if out_csv is not None:
        save_csv(per_image, out_csv, overwrite=overwrite, inputs=inputs, suffixes=".csv")
    if panel is not None:
        position = {i: k for k, i in enumerate(data.image_ids)}
        x = data.array([position[i] for i in shown])
        y = _reconstruct_batch(encoder, decoder, x)
        save_panel(x, y, per_image.set_index("image_id").loc[shown].reset_index(), panel, overwrite=overwrite)
    return result


def save_panel(
    originals: np.ndarray,
    reconstructions: np.ndarray,
    rows,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    dpi: int = 120,
) -> Path:
    """PNG: per image an original, its reconstruction and |difference| (one colour scale for all rows,
    with a colour bar), titled with its id, L2, PSNR and SSIM.

    ``originals`` and ``reconstructions`` are (N, C, S, S) in [-1, 1]; ``rows`` a DataFrame with
    ``image_id``, ``l2``, ``psnr``, ``ssim`` in the same order.
    """
    from matplotlib.figure import Figure  # deferred: matplotlib (heavy, figures only)

    def gray(a):
        return a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)

    diff = np.abs(originals - reconstructions).mean(1)
    vmax = float(max(diff.max(), 1e-6))
    count = len(originals)
    fig = Figure(figsize=(3 * 3.4 + 0.8, count * 3.4 + 0.3), layout="constrained")
    axes = np.atleast_2d(fig.subplots(count, 3))
    image = None
    for k in range(count):
        row = rows.iloc[k]
        panels = (
            (gray(originals[k]), "original", dict(cmap="gray", vmin=-1, vmax=1)),
            (gray(reconstructions[k]), "reconstruction", dict(cmap="gray", vmin=-1, vmax=1)),
            (diff[k], "|difference|", dict(cmap="magma", vmin=0, vmax=vmax)),
        )
        for ax, (array, name, style) in zip(axes[k], panels):
            shown = ax.imshow(array, interpolation="nearest", **style)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(name if k else name, fontsize=10)
            if name == "|difference|":
                image = shown
        axes[k, 0].set_ylabel(
            f"{row['image_id']}\nL2 {row['l2']:.4f}  PSNR {row['psnr']:.1f} dB\nSSIM {row['ssim']:.3f}", fontsize=9
        )
    fig.colorbar(image, ax=axes[:, 2].tolist(), shrink=0.8, label="|original - reconstruction| (range 2)")
    save_figure(fig, path, dpi=dpi, overwrite=overwrite, suffixes=".png")
    return Path(path)
