"""Commands of ``seegaan`` for the model: train, encode, reconstruct, sample, model info.

Each command parses options and calls an importable function of :mod:`seegaan.model`; torch is imported
only inside the commands.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from seegaan.cli._common import user_errors

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
                     "perceptual": train.get("perceptual"), "best_metric": train.get("best_metric")}
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


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(model_app, name="model")
