"""Commands of ``seegaan`` for the model: train, encode, reconstruct, sample, model info.

Each command parses options and calls an importable function of :mod:`seegaan.model`; torch is imported
only inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from seegaan._internal.choices import cli_enum
from seegaan._internal.errors import SeegaanError
from seegaan._internal.io import Terminated, check_output_path, make_output_folder, terminate_cleanly
from seegaan._internal.progress import progress_bar
from seegaan._internal.runtime import limit_threads
from seegaan.cli._common import fail, user_errors
from seegaan.data import load_dataset
from seegaan.model import keep_freed_memory
from seegaan.model.config import AUGMENT_MODES, ModelConfig, small_config
from seegaan.model.tasks import encode_images, evaluate_images, reconstruct_images, sample_images

Augment = cli_enum("Augment", AUGMENT_MODES)
SplitMode = cli_enum("SplitMode", ("auto", "table", "random", "none"))

# Options shared by the commands that read radiographs or run the networks (help text written once).
THREADS_HELP = (
    "CPU threads of torch, Numba and BLAS together (default: the libraries' own choice, all "
    "cores: right on your own machine; on a machine shared with others pass a small number, "
    "e.g. 1: spinning OpenMP threads on busy cores can be many times slower than one)."
)
Threads = Annotated[int | None, typer.Option(help=THREADS_HELP)]
TextColumns = Annotated[
    list[str] | None,
    typer.Option(
        "--text-column",
        help="Keep this clinical column as text (categories) even if nearly all its cells are "
        "numbers; repeat for several.",
    ),
]
Pseudonymize = Annotated[
    bool,
    typer.Option(
        "--pseudonymize",
        help="Replace image and patient ids by salted hashes (HMAC-SHA256; the salt from "
        "--salt or SEEGAAN_ID_SALT is never stored).",
    ),
]
Salt = Annotated[
    str | None,
    typer.Option(
        "--salt",
        envvar="SEEGAAN_ID_SALT",
        show_envvar=True,
        show_default=False,
        help="Secret salt of --pseudonymize (>= 8 characters; prefer the environment variable).",
    ),
]


def _views(view: str | None) -> list[str] | None:
    return [v.strip() for v in view.split(",") if v.strip()] if view else None


def _log(message: str) -> None:
    typer.echo(message, err=True)


def _salt(pseudonymize: bool, salt: str | None) -> str | None:
    """The salt to pass as ``load_dataset(pseudonymize=...)``, refusing --pseudonymize without one."""
    if pseudonymize and not salt:
        raise SeegaanError("--pseudonymize needs a salt: set SEEGAAN_ID_SALT (or pass --salt) to a long random secret")
    return salt if pseudonymize else None


def _dataset(images, table, *, size: int, view, text_columns, salt, seed: int = 0):
    """Load the radiographs as ``check-data`` does and print its report on stderr (what was skipped)."""
    data = load_dataset(
        images, table, size=size, view=_views(view), text_columns=text_columns or (), pseudonymize=salt, seed=seed
    )
    _log(data.report())
    return data


def _decoding_on(device: str) -> None:
    """Before decoding on the CPU: let glibc keep freed blocks (faster repeated decoding; process-wide,
    which a command may decide and the library does not; ``SEEGAAN_KEEP_FREED_MEMORY=0`` turns it off)."""
    from seegaan.model._runtime import resolve_device  # deferred: seegaan.model._runtime imports torch

    if resolve_device(device).type == "cpu":
        keep_freed_memory()


model_app = typer.Typer(
    rich_markup_mode=None,
    name="model",
    no_args_is_help=True,
    add_completion=False,
    help="Inspect model architectures and checkpoints.",
)


@model_app.command("info")
def info_cmd(
    image_size: Annotated[int, typer.Option(help="Image side (power of two, 32-1024).")] = 256,
    checkpoint: Annotated[str | None, typer.Option(help="Describe this checkpoint instead of a fresh config.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
):
    """Print the parameter counts of mapping, generator, encoder and discriminator."""
    with user_errors():
        # deferred: seegaan.model.networks imports torch
        from seegaan.model.networks import conv_flops_per_image, parameter_counts

        extra = {}
        if checkpoint:
            # deferred: seegaan.model.checkpoint imports torch
            from seegaan.model.checkpoint import checkpoint_identity, read_checkpoint

            payload = read_checkpoint(checkpoint)
            cfg = payload["config_obj"]
            train = payload.get("train") or {}
            extra = {
                "checkpoint": checkpoint_identity(checkpoint),
                "step": train.get("step"),
                "perceptual": train.get("perceptual"),
                "fid": train.get("fid"),
                "selection_metric": train.get("selection_metric"),
                "best_metric": train.get("best_metric"),
            }
        else:
            cfg = ModelConfig(image_size=image_size)
        counts = parameter_counts(cfg)
        data = {
            "image_size": cfg.image_size,
            "latent_size": cfg.latent_size,
            "parameters": counts,
            "total": sum(counts.values()),
            "generator_channels": cfg.generator_channels,
            "encoder_channels": cfg.encoder_channels,
            "generator_gflop_per_image": round(conv_flops_per_image(cfg) / 1e9, 3),
            **extra,
        }
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        typer.echo(f"image size {cfg.image_size}x{cfg.image_size}, latent {cfg.latent_size}")
        for name, count in counts.items():
            typer.echo(f"  {name:<14}{count:>14,}")
        typer.echo(f"  {'total':<14}{data['total']:>14,}")
        typer.echo(
            f"generator channels {cfg.generator_channels}; encoder/discriminator channels "
            f"{cfg.encoder_channels}; generator ~{data['generator_gflop_per_image']} GFLOP/image"
        )
        for key, value in extra.items():
            typer.echo(f"{key}: {value}")


def train_cmd(
    images: Annotated[Path, typer.Option(help="Folder of radiographs or a table listing them.")],
    out_dir: Annotated[
        Path, typer.Option(help="Folder for last.pt and best.pt (resumed when present; locked while the run writes).")
    ],
    table: Annotated[Path | None, typer.Option(help="Clinical table (CSV/Parquet) joined on image_id.")] = None,
    view: Annotated[str | None, typer.Option(help="Keep these views, e.g. PA,AP.")] = None,
    image_size: Annotated[int, typer.Option(help="Image side (power of two, 32-1024).")] = 256,
    latent_size: Annotated[int, typer.Option(help="Size of z and w.")] = 512,
    width: Annotated[
        int | None, typer.Option(help="Cap every network's channels (small CPU models); default: the paper's widths.")
    ] = None,
    mapping_layers: Annotated[int, typer.Option(help="Dense layers of the mapping network.")] = 8,
    steps: Annotated[int, typer.Option(help="Total training steps (across resumes).")] = 1_000_000,
    max_minutes: Annotated[
        float | None,
        typer.Option(help="Stop cleanly (validate, write last.pt) after this many minutes; run again to resume."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Images per step and process.")] = 4,
    lr: Annotated[float, typer.Option(help="Adam learning rate of both optimisers (> 0).")] = 1e-3,
    augment: Annotated[Augment, typer.Option(help="fixed: per-image p; ada: adaptive p; none.")] = Augment.fixed,
    augment_p: Annotated[float, typer.Option(help="Per-image augmentation probability, 0-1 (fixed mode).")] = 0.2,
    checkpoint_every: Annotated[
        int, typer.Option(help="Write last.pt every N steps (and at every validation, at the end and on Ctrl-C).")
    ] = 10_000,
    checkpoint_minutes: Annotated[
        float, typer.Option(help="Also write last.pt every M minutes of wall time, so a killed run loses at most that.")
    ] = 5.0,
    val_every: Annotated[
        int | None,
        typer.Option(
            help="Validate (EMA L2/PSNR/SSIM; best.pt) every N steps "
            "(default: min(10000, steps // 10), about ten "
            "validations per run)."
        ),
    ] = None,
    val_images: Annotated[int, typer.Option(help="Validation images used (first N of the split).")] = 256,
    vgg_weights: Annotated[
        Path | None,
        typer.Option(help="torchvision VGG16 state dict for the perceptual loss (else the torch hub cache)."),
    ] = None,
    fid_weights: Annotated[
        Path | None,
        typer.Option(
            help="Inception-v3 state dict (pytorch-fid "
            "pt_inception-*.pth or torchvision inception_v3_google-"
            "*.pth): validation FID selects best.pt (else the "
            "torch hub cache; without any, validation L2)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of weights, batches, noise and augmentation (>= 0).")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    bf16: Annotated[bool, typer.Option(help="bfloat16 autocast.")] = False,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the networks.")] = False,
    channels_last: Annotated[bool, typer.Option(help="channels-last memory format (GPU).")] = False,
    resume: Annotated[
        bool,
        typer.Option(help="Resume from OUT_DIR/last.pt when it exists (--no-resume refuses a folder that holds one)."),
    ] = True,
    threads: Threads = None,
    text_column: TextColumns = None,
    pseudonymize: Pseudonymize = False,
    salt: Salt = None,
    log_every: Annotated[
        int,
        typer.Option(
            help="Print a line every N steps (and after the first step, every validation and at least every 30 s)."
        ),
    ] = 100,
):
    """Train the style-based adversarial autoencoder (runs under torchrun for several processes).

    Ctrl-C or SIGTERM finishes the step under way, writes last.pt and says so; rerun the same command to
    resume.
    """
    with user_errors(), terminate_cleanly():
        # deferred: seegaan.model.training imports torch
        from seegaan.model.training import TrainConfig, TrainingInterrupted, kept_checkpoint_note, train

        if width is None:
            model_cfg = ModelConfig(image_size=image_size, latent_size=latent_size, mapping_layers=mapping_layers)
        else:
            model_cfg = small_config(image_size, width=width, latent_size=latent_size, mapping_layers=mapping_layers)
        cfg = TrainConfig(
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            augment=augment.value,
            augment_p=augment_p,
            checkpoint_every=checkpoint_every,
            val_every=val_every,
            checkpoint_minutes=checkpoint_minutes,
            val_images=val_images,
            seed=seed,
            bf16=bf16,
            compile=compile,
            channels_last=channels_last,
            max_minutes=max_minutes,
            log_every=log_every,
        )
        key = _salt(pseudonymize, salt)
        make_output_folder(out_dir, option="--out-dir")  # before the data scan: an unwritable place fails first
        for name in ("last.pt", "best.pt"):
            check_output_path(
                out_dir / name, overwrite=True, suffixes=".pt", inputs=[images, table, vgg_weights, fid_weights]
            )
        try:
            with limit_threads(threads, torch=True):
                data = _dataset(images, table, size=image_size, view=view, text_columns=text_column, salt=key)
                with progress_bar("training") as progress:
                    result = train(
                        data,
                        out_dir=out_dir,
                        model_config=model_cfg,
                        config=cfg,
                        vgg_weights=vgg_weights,
                        fid_weights=fid_weights,
                        resume=resume,
                        device=device,
                        progress=progress,
                        log=_log,
                    )
        except TrainingInterrupted as exc:
            raise fail(str(exc), code=128 + int(exc.signum)) from None
        except (KeyboardInterrupt, Terminated) as exc:
            code = 128 + exc.signum if isinstance(exc, Terminated) else 130
            raise fail(f"interrupted; {kept_checkpoint_note(out_dir)}", code=code) from None
        _log(f"done at step {result.step}: last {result.last}, best {result.best}")


def encode_cmd(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint written by `seegaan train`.")],
    images: Annotated[Path, typer.Option(help="Folder of radiographs or a table listing them.")],
    out: Annotated[Path, typer.Option(help="Latent cohort to write (netCDF, .nc).")],
    table: Annotated[Path | None, typer.Option(help="Clinical table joined on image_id.")] = None,
    view: Annotated[str | None, typer.Option(help="Keep these views, e.g. PA,AP.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per forward pass.")] = None,
    split: Annotated[
        SplitMode,
        typer.Option(
            help=(
                "The cohort's split column. auto: the table's split column, else the checkpoint's training split "
                "when these are its training images, else empty; table: the table's column (required); random: "
                "a patient-level split drawn with --split-seed; none: empty."
            )
        ),
    ] = SplitMode.auto,
    split_seed: Annotated[int | None, typer.Option(help="Seed of --split random (default 0).")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file (never an input).")] = False,
    threads: Threads = None,
    text_column: TextColumns = None,
    pseudonymize: Pseudonymize = False,
    salt: Salt = None,
    refine: Annotated[
        int,
        typer.Option(
            help="Refine each latent by N Adam steps on its reconstruction error from E(x) (0: E(x) as it is); "
            "sharper reconstructions for explain, at about N decoder passes per image."
        ),
    ] = 0,
):
    """Encode radiographs into a latent cohort (one w per image plus the clinical table)."""
    with user_errors():
        from seegaan.model.checkpoint import read_checkpoint  # deferred: seegaan.model.checkpoint imports torch
        from seegaan.model.inference import check_seed  # deferred: seegaan.model.inference imports torch

        if split_seed is not None:
            check_seed(split_seed, "--split-seed")
        check_output_path(out, overwrite=overwrite, inputs=[checkpoint, images, table], suffixes=".nc")
        key = _salt(pseudonymize, salt)
        with limit_threads(threads, torch=True):
            size = read_checkpoint(checkpoint)["config_obj"].image_size
            data = _dataset(
                images, table, size=size, view=view, text_columns=text_column, salt=key, seed=split_seed or 0
            )
            with progress_bar("encoding") as progress:
                ds = encode_images(
                    checkpoint,
                    data,
                    table=table,
                    view=_views(view),
                    out=out,
                    overwrite=overwrite,
                    batch_size=batch_size,
                    device=device,
                    split=split.value,
                    split_seed=split_seed,
                    text_columns=text_column or (),
                    pseudonymize=key,
                    progress=progress,
                    log=_log,
                    refine=refine,
                )
        _log(f"wrote {out}: {ds.sizes['image']} images x {ds.sizes['latent']} latents")


def reconstruct_cmd(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint written by `seegaan train`.")],
    images: Annotated[Path, typer.Option(help="Folder of radiographs or a table listing them.")],
    out: Annotated[Path, typer.Option(help="PNG grid to write (originals over reconstructions).")],
    table: Annotated[Path | None, typer.Option(help="Clinical table joined on image_id.")] = None,
    view: Annotated[str | None, typer.Option(help="Keep these views, e.g. PA,AP.")] = None,
    n: Annotated[int, typer.Option(help="Number of images.")] = 8,
    split: Annotated[
        str,
        typer.Option(
            help="Split to draw from: train, val, test, all, or auto (the "
            "validation split when these are the checkpoint's training images, "
            "else all; a line says which)."
        ),
    ] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the image draw (>= 0).")] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file (never an input).")] = False,
    threads: Threads = None,
):
    """Write a PNG grid of radiographs and their reconstructions G(E(x))."""
    with user_errors():
        _decoding_on(device)
        with limit_threads(threads, torch=True):
            path = reconstruct_images(
                checkpoint,
                images,
                out=out,
                table=table,
                view=_views(view),
                n=n,
                seed=seed,
                split=split,
                overwrite=overwrite,
                device=device,
                log=_log,
            )
        _log(f"wrote {path}")


def sample_cmd(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint written by `seegaan train`.")],
    out: Annotated[Path, typer.Option(help="PNG grid to write.")],
    n: Annotated[int, typer.Option(help="Number of images.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of z (>= 0).")] = 0,
    truncation: Annotated[float, typer.Option(help="Truncation towards the mean w (>= 0; 1 = none).")] = 1.0,
    columns: Annotated[int, typer.Option(help="Images per row (>= 1).")] = 8,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file (never an input).")] = False,
    threads: Threads = None,
):
    """Write a PNG grid of random images G(mapping(z)) (EMA networks, fixed noise)."""
    with user_errors():
        _decoding_on(device)
        with limit_threads(threads, torch=True):
            path = sample_images(
                checkpoint,
                out=out,
                n=n,
                seed=seed,
                truncation=truncation,
                columns=columns,
                overwrite=overwrite,
                device=device,
            )
        _log(f"wrote {path}")


def evaluate_cmd(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint written by `seegaan train`.")],
    images: Annotated[Path, typer.Option(help="Folder of radiographs or a table listing them.")],
    table: Annotated[Path | None, typer.Option(help="Clinical table joined on image_id.")] = None,
    view: Annotated[str | None, typer.Option(help="Keep these views, e.g. PA,AP.")] = None,
    ids: Annotated[str | None, typer.Option(help="Evaluate these image ids (comma-separated).")] = None,
    n: Annotated[int | None, typer.Option(help="Evaluate N images drawn with --seed.")] = None,
    worst: Annotated[int | None, typer.Option(help="Evaluate all images; show the K worst in the panel.")] = None,
    split: Annotated[
        str,
        typer.Option(
            help="Images of one split only (train, val, test), auto (the "
            "validation split when these are the checkpoint's training images), "
            "or all (default: every image, whatever the table says)."
        ),
    ] = "all",
    seed: Annotated[int, typer.Option(help="Seed of --n (>= 0).")] = 0,
    out_csv: Annotated[Path | None, typer.Option(help="Write the per-image L2/PSNR/SSIM here (CSV).")] = None,
    panel: Annotated[
        Path | None,
        typer.Option(
            help="PNG: original, reconstruction and |difference| (colour bar) of the selected or worst images."
        ),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per forward pass.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files (never an input).")] = False,
    threads: Threads = None,
    text_column: TextColumns = None,
    pseudonymize: Pseudonymize = False,
    salt: Salt = None,
):
    """How well the checkpoint reconstructs these radiographs: per-image and overall L2, PSNR and SSIM,
    optionally a CSV and a panel of originals, reconstructions and differences."""
    with user_errors():
        _decoding_on(device)
        key = _salt(pseudonymize, salt)
        id_list = [i.strip() for i in ids.split(",") if i.strip()] if ids else None
        with limit_threads(threads, torch=True), progress_bar("evaluating") as progress:
            result = evaluate_images(
                checkpoint,
                images,
                table=table,
                view=_views(view),
                split=split,
                ids=id_list,
                n=n,
                worst=worst,
                seed=seed,
                out_csv=out_csv,
                panel=panel,
                overwrite=overwrite,
                batch_size=batch_size,
                device=device,
                text_columns=text_column or (),
                pseudonymize=key,
                progress=progress,
                log=_log,
            )
        typer.echo(result.as_text())
        for path in (out_csv, panel):
            if path is not None:
                _log(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("train")(train_cmd)
    app.command("encode")(encode_cmd)
    app.command("reconstruct")(reconstruct_cmd)
    app.command("sample")(sample_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.add_typer(model_app, name="model")
