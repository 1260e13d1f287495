"""Commands of ``seegaan`` for the model: train, encode, reconstruct, sample, model info.

Each command parses options and calls an importable function of :mod:`seegaan.model`; torch is imported
only inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from seegaan._choices import cli_enum
from seegaan._progress import progress_bar
from seegaan.cli._common import user_errors
from seegaan.model.config import AUGMENT_MODES

Augment = cli_enum("Augment", AUGMENT_MODES)


def _views(view: str | None) -> list[str] | None:
    return [v.strip() for v in view.split(",") if v.strip()] if view else None


def _log(message: str) -> None:
    typer.echo(message, err=True)


def _decoding_on(device: str) -> None:
    """Before decoding on the CPU: let glibc keep freed blocks (faster repeated decoding; process-wide,
    which a command may decide and the library does not; ``SEEGAAN_KEEP_FREED_MEMORY=0`` turns it off)."""
    from seegaan.model import keep_freed_memory
    from seegaan.model._runtime import resolve_device

    if resolve_device(device).type == "cpu":
        keep_freed_memory()

model_app = typer.Typer(name="model", no_args_is_help=True, add_completion=False,
                        help="Inspect model architectures and checkpoints.")


@model_app.command("info")
def info_cmd(
    image_size: Annotated[int, typer.Option(help="Image side (power of two, 32-1024).")] = 256,
    checkpoint: Annotated[str | None, typer.Option(help="Describe this checkpoint instead of a fresh config.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
):
    """Print the parameter counts of mapping, generator, encoder and discriminator."""
    with user_errors():
        from seegaan.model.config import ModelConfig
        from seegaan.model.networks import conv_flops_per_image, parameter_counts

        extra = {}
        if checkpoint:
            from seegaan.model.checkpoint import checkpoint_identity, read_checkpoint

            payload = read_checkpoint(checkpoint)
            cfg = payload["config_obj"]
            train = payload.get("train") or {}
            extra = {"checkpoint": checkpoint_identity(checkpoint), "step": train.get("step"),
                     "perceptual": train.get("perceptual"), "fid": train.get("fid"),
                     "selection_metric": train.get("selection_metric"), "best_metric": train.get("best_metric")}
        else:
            cfg = ModelConfig(image_size=image_size)
        counts = parameter_counts(cfg)
        data = {"image_size": cfg.image_size, "latent_size": cfg.latent_size, "parameters": counts,
                "total": sum(counts.values()),
                "generator_channels": cfg.generator_channels, "encoder_channels": cfg.encoder_channels,
                "generator_gflop_per_image": round(conv_flops_per_image(cfg) / 1e9, 3), **extra}
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        typer.echo(f"image size {cfg.image_size}x{cfg.image_size}, latent {cfg.latent_size}")
        for name, count in counts.items():
            typer.echo(f"  {name:<14}{count:>14,}")
        typer.echo(f"  {'total':<14}{data['total']:>14,}")
        typer.echo(f"generator channels {cfg.generator_channels}; encoder/discriminator channels "
                   f"{cfg.encoder_channels}; generator ~{data['generator_gflop_per_image']} GFLOP/image")
        for key, value in extra.items():
            typer.echo(f"{key}: {value}")


def train_cmd(
    images: Annotated[Path, typer.Option(help="Folder of radiographs or a table listing them.")],
    out_dir: Annotated[Path, typer.Option(help="Folder for last.pt and best.pt (resumed when present).")],
    table: Annotated[Path | None, typer.Option(help="Clinical table (CSV/Parquet) joined on image_id.")] = None,
    view: Annotated[str | None, typer.Option(help="Keep these views, e.g. PA,AP.")] = None,
    image_size: Annotated[int, typer.Option(help="Image side (power of two, 32-1024).")] = 256,
    latent_size: Annotated[int, typer.Option(help="Size of z and w.")] = 512,
    width: Annotated[int | None, typer.Option(help="Cap every network's channels (small CPU models); "
                                              "default: the paper's widths.")] = None,
    mapping_layers: Annotated[int, typer.Option(help="Dense layers of the mapping network.")] = 8,
    steps: Annotated[int, typer.Option(help="Total training steps (across resumes).")] = 1_000_000,
    max_minutes: Annotated[float | None, typer.Option(help="Stop cleanly (validate, write last.pt) after this "
                                                      "many minutes; run again to resume.")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per step and process.")] = 4,
    lr: Annotated[float, typer.Option(help="Adam learning rate of both optimisers.")] = 1e-3,
    augment: Annotated[Augment, typer.Option(help="fixed: per-image p; ada: adaptive p; none.")] = Augment.fixed,
    augment_p: Annotated[float, typer.Option(help="Per-image augmentation probability (fixed mode).")] = 0.2,
    checkpoint_every: Annotated[int, typer.Option(help="Write last.pt every N steps.")] = 10_000,
    val_every: Annotated[int, typer.Option(help="Validate (EMA L2/PSNR/SSIM) every N steps.")] = 10_000,
    val_images: Annotated[int, typer.Option(help="Validation images used (first N of the split).")] = 256,
    vgg_weights: Annotated[Path | None, typer.Option(help="torchvision VGG16 state dict for the "
                                                     "perceptual loss (else the torch hub cache).")] = None,
    fid_weights: Annotated[Path | None, typer.Option(help="Inception-v3 state dict (pytorch-fid "
                                                     "pt_inception-*.pth or torchvision inception_v3_google-"
                                                     "*.pth): validation FID selects best.pt (else the "
                                                     "torch hub cache; without any, validation L2).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of weights, batches, noise and augmentation.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    bf16: Annotated[bool, typer.Option(help="bfloat16 autocast.")] = False,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the networks.")] = False,
    channels_last: Annotated[bool, typer.Option(help="channels-last memory format (GPU).")] = False,
    resume: Annotated[bool, typer.Option(help="Resume from OUT_DIR/last.pt when it exists.")] = True,
    threads: Annotated[int | None, typer.Option(help="CPU threads of torch (default: torch's choice); on a "
                                                "shared CPU, 1 can be much faster than several.")] = None,
):
    """Train the style-based adversarial autoencoder (runs under torchrun for several processes)."""
    with user_errors():
        import torch

        from seegaan.model.config import ModelConfig, small_config
        from seegaan.model.training import TrainConfig, train

        if threads is not None:
            torch.set_num_threads(max(1, threads))

        if width is None:
            model_cfg = ModelConfig(image_size=image_size, latent_size=latent_size, mapping_layers=mapping_layers)
        else:
            model_cfg = small_config(image_size, width=width, latent_size=latent_size,
                                     mapping_layers=mapping_layers)
        cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, augment=augment.value,
                          augment_p=augment_p, checkpoint_every=checkpoint_every, val_every=val_every,
                          val_images=val_images, seed=seed, bf16=bf16, compile=compile,
                          channels_last=channels_last, max_minutes=max_minutes)
        with progress_bar("training") as progress:
            result = train(images, out_dir=out_dir, model_config=model_cfg, config=cfg, table=table,
                           view=_views(view), vgg_weights=vgg_weights, fid_weights=fid_weights,
                           resume=resume, device=device, progress=progress, log=_log)
        _log(f"done at step {result.step}: last {result.last}, best {result.best}")


def encode_cmd(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint written by `seegaan train`.")],
    images: Annotated[Path, typer.Option(help="Folder of radiographs or a table listing them.")],
    out: Annotated[Path, typer.Option(help="Latent cohort to write (netCDF).")],
    table: Annotated[Path | None, typer.Option(help="Clinical table joined on image_id.")] = None,
    view: Annotated[str | None, typer.Option(help="Keep these views, e.g. PA,AP.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per forward pass.")] = None,
    split_seed: Annotated[int, typer.Option(help="Seed of the patient-level split.")] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
):
    """Encode radiographs into a latent cohort (one w per image plus the clinical table)."""
    with user_errors():
        from seegaan.model.tasks import encode_images

        with progress_bar("encoding") as progress:
            ds = encode_images(checkpoint, images, table=table, view=_views(view), out=out,
                               overwrite=overwrite, batch_size=batch_size, device=device,
                               split_seed=split_seed, progress=progress)
        _log(f"wrote {out}: {ds.sizes['image']} images x {ds.sizes['latent']} latents")


def reconstruct_cmd(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint written by `seegaan train`.")],
    images: Annotated[Path, typer.Option(help="Folder of radiographs or a table listing them.")],
    out: Annotated[Path, typer.Option(help="PNG grid to write (originals over reconstructions).")],
    table: Annotated[Path | None, typer.Option(help="Clinical table joined on image_id.")] = None,
    view: Annotated[str | None, typer.Option(help="Keep these views, e.g. PA,AP.")] = None,
    n: Annotated[int, typer.Option(help="Number of images.")] = 8,
    split: Annotated[str, typer.Option(help="Split to draw from: train, val, test or all.")] = "val",
    seed: Annotated[int, typer.Option(help="Seed of the image draw.")] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
):
    """Write a PNG grid of radiographs and their reconstructions G(E(x))."""
    with user_errors():
        from seegaan.model.tasks import reconstruct_images

        _decoding_on(device)
        path = reconstruct_images(checkpoint, images, out=out, table=table, view=_views(view), n=n,
                                  seed=seed, split=None if split == "all" else split,
                                  overwrite=overwrite, device=device)
        _log(f"wrote {path}")


def sample_cmd(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint written by `seegaan train`.")],
    out: Annotated[Path, typer.Option(help="PNG grid to write.")],
    n: Annotated[int, typer.Option(help="Number of images.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of z.")] = 0,
    truncation: Annotated[float, typer.Option(help="Truncation towards the mean w (1 = none).")] = 1.0,
    columns: Annotated[int, typer.Option(help="Images per row.")] = 8,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
):
    """Write a PNG grid of random images G(mapping(z)) (EMA networks, fixed noise)."""
    with user_errors():
        from seegaan.model.tasks import sample_images

        _decoding_on(device)
        path = sample_images(checkpoint, out=out, n=n, seed=seed, truncation=truncation, columns=columns,
                             overwrite=overwrite, device=device)
        _log(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("train")(train_cmd)
    app.command("encode")(encode_cmd)
    app.command("reconstruct")(reconstruct_cmd)
    app.command("sample")(sample_cmd)
    app.add_typer(model_app, name="model")
