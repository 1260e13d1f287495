"""Use a trained checkpoint: decode latents, encode images, reconstruct, sample."""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

import numpy as np
import torch

from seegaan._internal.errors import SeegaanError
from seegaan.formats import save_array_png
from seegaan.model._runtime import resolve_device
from seegaan.model.checkpoint import checkpoint_identity, load_state, read_checkpoint
from seegaan.model.config import ModelConfig
from seegaan.model.layers import NOISE_MODES
from seegaan.model.networks import Encoder, Generator, MappingNetwork


def check_seed(seed, name: str = "seed") -> None:
    """An integer seed must be >= 0 (NumPy refuses negative ones with a traceback); Generators pass."""
    if isinstance(seed, np.random.Generator) or seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SeegaanError(f"{name} must be a whole number >= 0, got {seed!r}")


def check_columns(columns) -> None:
    """Images per row of a grid: a whole number >= 1."""
    if isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or columns < 1:
        raise SeegaanError(f"columns (images per row) must be a whole number >= 1, got {columns!r}")


def _autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _batch_hint(cfg: ModelConfig, device: torch.device) -> int:
    """Latents per forward pass: larger for small images and on GPUs."""
    base = 4 if cfg.image_size >= 256 else 16
    return base * (8 if device.type == "cuda" else 1)


class CheckpointDecoder:
    """The EMA generator of a checkpoint as a decoder: ``decoder(w (B, D)) -> images (B, H, W)``.

    With ``noise_mode="const"`` every layer adds its fixed noise map (saved in the checkpoint), the same
    for every call, sample and batch size, and latents pass through the network in fixed-size padded
    chunks, so an image's bits do not depend on the other latents in the call.

    Attributes
    ----------
    latent_size, image_size : int
    identity : str
        Checkpoint path and SHA-256 of its bytes.
    batch_size : int
        Suggested number of latents per call.
    """

    def __init__(
        self,
        generator: Generator,
        cfg: ModelConfig,
        *,
        identity: str,
        device: torch.device,
        noise_mode: str = "const",
        autocast_bf16: bool = False,
        channels_last: bool = True,
    ):
        if noise_mode not in NOISE_MODES:
            raise SeegaanError(f"noise_mode must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")
        self.generator = generator.eval().requires_grad_(False).use_channels_last(channels_last)
        self.cfg = cfg
        self.latent_size = cfg.latent_size
        self.image_size = cfg.image_size
        self.identity = identity
        self.device = device
        self.noise_mode = noise_mode
        self.autocast_bf16 = autocast_bf16
        self.batch_size = _batch_hint(cfg, device)
        # Latents always go through the network in chunks of this fixed size (the last one padded), so
        # an image's bits do not depend on how the caller batches latents (CPU GEMM/conv kernels pick
        # different code paths for different batch sizes).
        self._chunk = self.batch_size
        self.batch_invariant = True  # an image's bits never depend on the other latents in the call

    def __call__(self, w) -> np.ndarray:
        w = np.asarray(w, dtype=np.float32)
        if w.ndim != 2 or w.shape[1] != self.latent_size:
            raise SeegaanError(f"latents must have shape (B, {self.latent_size}) for this decoder, got {w.shape}")
        chunk = self._chunk
        out = []
        for start in range(0, len(w), chunk):
            part = w[start : start + chunk]
            padded = np.zeros((chunk, self.latent_size), np.float32)
            padded[: len(part)] = part
            out.append(self._forward(padded)[: len(part)])
        out = (
            np.concatenate(out)
            if out
            else np.zeros((0, self.cfg.channels, self.image_size, self.image_size), np.float32)
        )
        return out[:, 0] if out.shape[1] == 1 else np.moveaxis(out, 1, -1)

    def _forward(self, w: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), _autocast(self.device, self.autocast_bf16):
            images = self.generator(torch.from_numpy(w).to(self.device), noise_mode=self.noise_mode)
        return images.float().cpu().numpy()

    def decode_tensor(self, w: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) of latents ``w`` (B, D) as a torch tensor that keeps the graph to ``w``.

        For gradients with respect to the latent (``explain --direction gradient|minimal``): fp32, no
        chunking, the network's own parameters stay frozen.
        """
        if w.ndim != 2 or w.shape[1] != self.latent_size:
            shape = tuple(w.shape)
            raise SeegaanError(f"latents must have shape (B, {self.latent_size}) for this decoder, got {shape}")
        return self.generator(w.to(self.device, torch.float32), noise_mode=self.noise_mode).float().cpu()

    def __repr__(self) -> str:
        return (
            f"CheckpointDecoder({self.identity!r}, image_size={self.image_size}, "
            f"latent_size={self.latent_size}, noise_mode={self.noise_mode!r})"
        )


class CheckpointEncoder:
    """The EMA encoder of a checkpoint: ``encoder(images (B, C, H, W) in [-1, 1]) -> w (B, D)``."""

    def __init__(self, encoder: Encoder, cfg: ModelConfig, *, identity: str, device: torch.device):
        self.encoder = encoder.eval().requires_grad_(False)
        self.cfg = cfg
        self.latent_size = cfg.latent_size
        self.image_size = cfg.image_size
        self.identity = identity
        self.device = device
        self.batch_size = _batch_hint(cfg, device)

    def __call__(self, images) -> np.ndarray:
        x = np.asarray(images, dtype=np.float32)
        expected = (self.cfg.channels, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise SeegaanError(
                f"images must have shape (B, {', '.join(map(str, expected))}) for this "
                f"encoder, got {x.shape}; load them with size={self.image_size}"
            )
        with torch.inference_mode():
            w = self.encoder(torch.from_numpy(x).to(self.device))
        return w.float().cpu().numpy()


def _ema_module(payload: dict, name: str, module: torch.nn.Module, path, device) -> torch.nn.Module:
    state = payload["state"].get(f"{name}_ema")
    if state is None:
        raise SeegaanError(f"{path} has no EMA {name} weights; give a checkpoint written by `seegaan train`")
    load_state(module, state, name=f"EMA {name}", path=path)
    return module.to(device)


def load_checkpoint_decoder(
    path: str | os.PathLike,
    *,
    device: str = "cpu",
    noise_mode: str = "const",
    autocast_bf16: bool = False,
    payload: dict | None = None,
) -> CheckpointDecoder:
    """Decoder from a checkpoint's EMA generator (see :class:`CheckpointDecoder`).

    The torch-backed callable itself; :func:`seegaan.load_decoder` wraps it (or any other decoder spec)
    in a validated :class:`seegaan.decoder.Decoder`. On a CPU, :func:`seegaan.model.keep_freed_memory`
    makes repeated decoding faster (process-wide, so it is left to the caller). ``payload``: the
    checkpoint already read with :func:`read_checkpoint` (not read again).
    """
    device = resolve_device(device)
    payload = read_checkpoint(path) if payload is None else payload
    cfg = payload["config_obj"]
    generator = _ema_module(payload, "generator", Generator(cfg), path, device)
    return CheckpointDecoder(
        generator,
        cfg,
        identity=checkpoint_identity(path),
        device=device,
        noise_mode=noise_mode,
        autocast_bf16=autocast_bf16,
    )


def load_encoder(path: str | os.PathLike, *, device: str = "cpu", payload: dict | None = None) -> CheckpointEncoder:
    """Encoder from a checkpoint's EMA encoder (see :class:`CheckpointEncoder`); ``payload``: the
    checkpoint already read with :func:`read_checkpoint` (not read again)."""
    device = resolve_device(device)
    payload = read_checkpoint(path) if payload is None else payload
    cfg = payload["config_obj"]
    encoder = _ema_module(payload, "encoder", Encoder(cfg), path, device)
    return CheckpointEncoder(encoder, cfg, identity=checkpoint_identity(path), device=device)


def load_mapping(path: str | os.PathLike, *, device: str = "cpu") -> MappingNetwork:
    """The EMA mapping network z -> w of a checkpoint (eval mode, no gradients)."""
    device = resolve_device(device)
    payload = read_checkpoint(path)
    mapping = _ema_module(payload, "mapping", MappingNetwork(payload["config_obj"]), path, device)
    return mapping.eval().requires_grad_(False)


def sample_latents(
    path: str | os.PathLike, n: int, *, seed: int = 0, truncation: float = 1.0, device: str = "cpu"
) -> np.ndarray:
    """``n`` latents w = mapping(z), z ~ N(0, I) from ``seed`` (an integer >= 0); truncation (a finite
    number >= 0; 1 = none) towards the mean w."""
    check_seed(seed)
    if not (isinstance(truncation, (int, float, np.floating)) and math.isfinite(truncation) and truncation >= 0):
        raise SeegaanError(f"truncation must be a finite number >= 0 (1 = none), got {truncation!r}")
    device = resolve_device(device)
    mapping = load_mapping(path, device=device)
    latent = mapping.layers[0].weight.shape[1]
    rng = np.random.default_rng(seed)
    z = torch.from_numpy(rng.standard_normal((n, latent)).astype(np.float32)).to(device)
    with torch.inference_mode():
        w = mapping(z)
        if truncation != 1.0:
            zz = torch.from_numpy(rng.standard_normal((4096, latent)).astype(np.float32)).to(device)
            w_mean = mapping(zz).mean(0, keepdim=True)
            w = w_mean + truncation * (w - w_mean)
    return w.cpu().numpy()


def image_grid(images: np.ndarray, *, columns: int = 8) -> np.ndarray:
    """Tile (N, H, W) images in [-1, 1] into one uint8 (rows*H, columns*W) grid (``columns`` >= 1, at
    most N used)."""
    check_columns(columns)
    images = np.asarray(images, dtype=np.float32)
    n, height, width = images.shape[:3]
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    grid = np.zeros((rows * height, columns * width) + images.shape[3:], np.float32) - 1
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * height : (r + 1) * height, c * width : (c + 1) * width] = img
    return np.clip(np.round((grid + 1) * 127.5), 0, 255).astype(np.uint8)


def save_png(array: np.ndarray, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a uint8 array as a PNG atomically."""
    return save_array_png(array, path, overwrite=overwrite)
