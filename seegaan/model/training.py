"""Training of the style-based adversarial autoencoder (paper losses, lazy R1, EMA, exact resume).

One step (as in the reference):

* discriminator: ``softplus(-D(x)) + 0.5 softplus(D(G(M(z)))) + 0.5 softplus(D(G(E(x))))``, plus
  ``gamma/2 |grad D(x)|^2`` every ``r1_interval`` steps (scaled by the interval: lazy R1);
* mapping+generator+encoder (one Adam): ``L2(G(E(x)), x) + 0.01 VGG16(G(E(x)), x) + 0.1 softplus(-D(G(E(x))))``
  plus the non-saturating ``softplus(-D(G(M(z))))`` with style mixing (p 0.9, decided per image);
* EMA (0.999) of mapping, generator and encoder.

Under ``torchrun`` every rank draws its own batches and gradients are averaged across ranks after each
backward pass (what DistributedDataParallel does; done by hand because each network runs several forward
passes per step), so all ranks hold identical weights; rank 0 validates and writes checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from seegaan._internal.errors import SeegaanError
from seegaan._internal.io import Terminated, check_output_path, clean_stale_parts_note, folder_lock, make_output_folder
from seegaan._internal.progress import Progress, no_progress
from seegaan.data import ImageSet, load_dataset
from seegaan.model._runtime import TorchStream, cuda_settings, global_rng_kept, resolve_device
from seegaan.model.augment import AdaptiveP, augment
from seegaan.model.checkpoint import EMA_NAMES, NET_NAMES, load_state, networks_state, read_checkpoint, save_checkpoint
from seegaan.model.config import AUGMENT_MODES, AugmentMode, ModelConfig
from seegaan.model.metrics import l2_per_image, psnr_per_image, ssim_per_image
from seegaan.model.networks import Networks, build_networks


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; defaults are the paper's (batch 4, Adam 1e-3 (0, 0.99), 1M steps)."""

    steps: int = 1_000_000
    batch_size: int = 4
    lr: float = 1e-3
    beta1: float = 0.0
    beta2: float = 0.99
    adam_eps: float = 1e-8
    ema_decay: float = 0.999
    ema_rampup: bool = True
    style_mixing: float = 0.9
    r1_gamma: float = 10.0
    r1_interval: int = 4
    l2_weight: float = 1.0
    perceptual_weight: float = 0.01
    adversarial_weight: float = 0.1
    augment: AugmentMode = "fixed"
    augment_p: float = 0.2
    ada_target: float = 0.95
    ada_interval: int = 4
    ada_kimg: float = 500.0
    checkpoint_every: int = 10_000
    val_every: int | None = None
    checkpoint_minutes: float | None = 5.0
    val_images: int = 256
    log_every: int = 100
    seed: int = 0
    bf16: bool = False
    compile: bool = False
    channels_last: bool = False
    max_minutes: float | None = None

    def __post_init__(self):
        if self.augment not in AUGMENT_MODES:
            raise SeegaanError(f"augment must be one of {', '.join(AUGMENT_MODES)}, got {self.augment!r}")
        for name in (
            "steps",
            "batch_size",
            "r1_interval",
            "checkpoint_every",
            "val_every",
            "ada_interval",
            "log_every",
        ):
            value = getattr(self, name)
            if value is None and name == "val_every":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise SeegaanError(f"{name} must be a whole number >= 1, got {value!r}")
        for name in ("max_minutes", "checkpoint_minutes"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise SeegaanError(f"{name} must be > 0 (a finite number of minutes), got {value!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise SeegaanError(f"lr (the learning rate) must be a finite number > 0, got {self.lr!r}")
        if not (math.isfinite(self.augment_p) and 0 <= self.augment_p <= 1):
            raise SeegaanError(f"augment_p is a probability: give a number from 0 to 1, got {self.augment_p!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise SeegaanError(f"seed must be a whole number >= 0, got {self.seed!r}")
        if self.batch_size < 2:
            raise SeegaanError("batch_size must be >= 2 (the discriminator's minibatch-stddev needs a batch)")

    @property
    def validation_interval(self) -> int:
        """Steps between validations: ``val_every``, or when None ``min(10_000, max(steps // 10, 1))``, so
        that even a short run validates about ten times and ``best.pt`` is a real choice."""
        if self.val_every is not None:
            return int(self.val_every)
        return min(10_000, max(self.steps // 10, 1))


@dataclass
class TrainResult:
    """Where training left its checkpoints and what it measured."""

    out_dir: Path
    last: Path
    best: Path | None
    step: int
    history: list = field(default_factory=list)
    baseline_l2: float | None = None
    perceptual: str = "none"
    augment_p: float = 0.0
    last_logs: dict = field(default_factory=dict)
    networks: Networks | None = field(default=None, repr=False)
    ema: Networks | None = field(default=None, repr=False)


# ---------------------------------------------------------------------------------------------- helpers
class _Dist:
    """Rank/world of a torchrun launch (world 1 otherwise)."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1

    def init(self, device: torch.device) -> None:
        if self.enabled and not torch.distributed.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend=backend)

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        if not self.enabled:
            return
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def broadcast_module(self, module: torch.nn.Module) -> None:
        if self.enabled:
            for t in list(module.parameters()) + list(module.buffers()):
                torch.distributed.broadcast(t.data, src=0)

    def all_gather(self, obj):
        if not self.enabled:
            return [obj]
        out = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def sum_scalar(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t.item())

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()


def _ema_update(ema: torch.nn.Module, live: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for pe, pl in zip(ema.parameters(), live.parameters()):
            pe.lerp_(pl.detach(), 1 - decay)
        for be, bl in zip(ema.buffers(), live.buffers()):
            be.copy_(bl)


def _batch_sampler(train_x: np.ndarray, device: torch.device) -> Callable[[np.ndarray], torch.Tensor]:
    """index -> batch on ``device``. On a GPU the training images are copied there once when they take
    under a quarter of its free memory: a per-step copy from pageable host memory makes the GPU wait."""
    if device.type == "cuda" and train_x.nbytes < 0.25 * torch.cuda.mem_get_info(device)[0]:
        images = torch.from_numpy(train_x).to(device)
        return lambda index: images[torch.from_numpy(index).to(device, non_blocking=True)]
    return lambda index: torch.from_numpy(train_x[index]).to(device)


def _floats(logs: dict) -> dict:
    return {k: float(v) for k, v in logs.items()}


def _mixed_latents(nets: Networks, z1: torch.Tensor, z2: torch.Tensor, prob: float) -> torch.Tensor:
    """(B, n_ws, D) latents: per image, with probability ``prob``, w2 from a random layer onwards."""
    n_ws = nets.generator.n_ws
    w1, w2 = nets.mapping(z1), nets.mapping(z2)
    batch = z1.shape[0]
    mix = torch.rand(batch, device=z1.device) < prob
    cutoff = torch.randint(1, n_ws, (batch,), device=z1.device)
    cutoff = torch.where(mix, cutoff, torch.full_like(cutoff, n_ws))
    layer = torch.arange(n_ws, device=z1.device)[None, :]
    use2 = (layer >= cutoff[:, None])[:, :, None]
    return torch.where(use2, w2[:, None], w1[:, None])


def ids_sha256(ids) -> str:
    """SHA-256 (hex) of the sorted image ids, one per line: what a checkpoint records of its images."""
    return hashlib.sha256("\n".join(sorted(map(str, ids))).encode("utf-8")).hexdigest()


def _training_sets(data, *, image_size: int, view=None, table=None, split_seed: int = 0):
    """(train subset, val subset, provenance) of an ImageSet or an images folder/table."""
    if not isinstance(data, ImageSet):
        data = load_dataset(data, table, size=image_size, view=view, seed=split_seed)
    if data.size != image_size:
        raise SeegaanError(
            f"the images are {data.size}x{data.size} but the model is {image_size}x"
            f"{image_size}; load them with size={image_size}"
        )
    train_set, val_set = data.subset("train"), data.subset("val")
    if len(train_set) < 2:
        raise SeegaanError(
            f"only {len(train_set)} training images; give at least 2 (check the folder, table and --view)"
        )
    provenance = {
        "image_ids_sha256": ids_sha256(data.image_ids),
        "train_ids_sha256": ids_sha256(train_set.image_ids),
        "split_seed": data.attrs.get("split_seed"),
        "split_source": data.attrs.get("split_source", ""),
        "n_images": len(data),
        "n_train": len(train_set),
        "n_val": len(val_set),
    }
    return train_set, val_set, provenance


def load_training_images(
    data, *, image_size: int, view=None, table=None, split_seed: int = 0, log: Callable[[str], None] = print
):
    """Train and validation images as float32 arrays, from an ImageSet or an images folder/table."""
    train_set, val_set, _ = _training_sets(data, image_size=image_size, view=view, table=table, split_seed=split_seed)
    log(f"loading {len(train_set)} training and {len(val_set)} validation images at {image_size}x{image_size}")
    return _stack(train_set), _stack(val_set)


def _stack(imageset) -> np.ndarray:
    parts = [images for _, images in imageset.batches(64)]
    side = imageset.size
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 1, side, side), np.float32)


# ---------------------------------------------------------------------------------------------- trainer
class Trainer:
    """State and one-step logic of a training run (used by :func:`train`).

    Its random numbers come from streams of its own: ``rng`` (NumPy: batch indices) and ``torch_rng``
    (torch: z, style mixing, augmentation, noise; what ``torch.manual_seed(seed * 1000 + rank)`` would
    give), so a step draws the same numbers whatever the caller does with torch's global RNG, and leaves
    that RNG as it was.
    """

    def __init__(
        self,
        model_cfg: ModelConfig,
        cfg: TrainConfig,
        *,
        device: torch.device,
        dist: _Dist,
        perceptual=None,
        fid_features=None,
    ):
        self.model_cfg, self.cfg, self.device, self.dist = model_cfg, cfg, device, dist
        self.nets = build_networks(model_cfg, seed=cfg.seed).to(device)
        dist.broadcast_module(self.nets)
        self.ema = copy.deepcopy(self.nets).requires_grad_(False).eval()
        self.g_params = [p for name in EMA_NAMES for p in getattr(self.nets, name).parameters()]
        self.d_params = list(self.nets.discriminator.parameters())
        adam = dict(lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps)
        self.opt_g = torch.optim.Adam(self.g_params, **adam)
        self.opt_d = torch.optim.Adam(self.d_params, **adam)
        self.ada = AdaptiveP(
            cfg.augment_p if cfg.augment == "fixed" else 0.0,
            target=cfg.ada_target,
            interval=cfg.ada_interval,
            kimg=cfg.ada_kimg,
        )
        self.perceptual = perceptual.to(device) if perceptual is not None else None
        self.fid_features = fid_features  # InceptionFeatures or None
        self._fid_real = None  # statistics of the validation images, computed once
        self.rng = np.random.default_rng([cfg.seed, dist.rank])
        self.torch_rng = TorchStream(cfg.seed * 1000 + dist.rank, device)
        self.step = 0
        self.resumed_settings: dict = {}  # optimiser settings a resume changed: name -> (saved, now)
        self.history: list[dict] = []
        self.best_metric = math.inf
        self.run = self._maybe_compile()

    def _maybe_compile(self):
        g, e, d, m = (self.nets.generator, self.nets.encoder, self.nets.discriminator, self.nets.mapping)
        if self.cfg.channels_last and self.device.type == "cuda":
            self.nets.to(memory_format=torch.channels_last)
        if self.cfg.compile:
            g, e, d, m = (torch.compile(x) for x in (g, e, d, m))
        return {"G": g, "E": e, "D": d, "M": m}

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16)

    def _d_aug(self, x: torch.Tensor) -> torch.Tensor:
        """Augment what the discriminator sees (ADA mode only; fixed mode augments the data)."""
        return augment(x, self.ada.p) if self.cfg.augment == "ada" else x

    # one training step -------------------------------------------------------------------------
    def train_step(self, real: torch.Tensor, sync: bool = True) -> dict:
        """One discriminator and one generator/encoder update. The losses come back as floats, or with
        ``sync=False`` as 0-d tensors, so that a GPU is not made to wait for them every step."""
        cfg = self.cfg
        with self.torch_rng.active():
            if cfg.augment == "fixed":
                real = augment(real, self.ada.p)
            if cfg.channels_last and self.device.type == "cuda":
                real = real.contiguous(memory_format=torch.channels_last)
            batch, latent = real.shape[0], self.model_cfg.latent_size
            z1, z2 = (torch.randn(batch, latent, device=self.device), torch.randn(batch, latent, device=self.device))
            logs = self._discriminator_step(real, z1, z2)
            logs.update(self._generator_step(real, z1, z2))
        self._update_ema()
        self.step += 1
        self._update_augment(batch)
        logs["p"] = self.ada.p
        return _floats(logs) if sync else logs

    def _discriminator_step(self, real: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> dict:
        """``softplus(-D(x)) + 0.5 softplus(D(G(M(z)))) + 0.5 softplus(D(G(E(x))))`` plus lazy R1."""
        cfg, run = self.cfg, self.run
        do_r1 = self.step % cfg.r1_interval == 0
        logs = {}
        self.nets.discriminator.requires_grad_(True)
        with torch.no_grad(), self._autocast():
            fake_m = run["G"](_mixed_latents(self.nets, z1, z2, cfg.style_mixing))
            fake_e = run["G"](run["E"](real))
        real_d = real.detach().requires_grad_(do_r1)
        with self._autocast():
            real_aug = self._d_aug(real_d)
            # R1 needs a double backward, which compiled graphs do not support: use the eager module
            d_real = self.nets.discriminator if do_r1 else run["D"]
            logits_real = d_real(real_aug).float()
            logits_m = run["D"](self._d_aug(fake_m.float())).float()
            logits_e = run["D"](self._d_aug(fake_e.float())).float()
        loss_d = F.softplus(-logits_real).mean() + 0.5 * F.softplus(logits_m).mean() + 0.5 * F.softplus(logits_e).mean()
        if do_r1:
            (grad,) = torch.autograd.grad(logits_real.sum(), real_d, create_graph=True)
            r1 = grad.float().square().flatten(1).sum(1).mean()
            loss_d = loss_d + cfg.r1_gamma / 2 * r1 * cfg.r1_interval
            logs["r1"] = r1.detach()
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.dist.average_gradients(self.d_params)
        self.opt_d.step()
        if cfg.augment == "ada":
            self.ada.observe(logits_real)
        logs["loss_d"] = loss_d.detach()
        return logs

    def _generator_step(self, real: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> dict:
        """Mapping + generator + encoder: reconstruction (L2, perceptual), adversarial on G(E(x)) and on
        G(M(z)) with style mixing."""
        cfg, run = self.cfg, self.run
        logs = {}
        self.nets.discriminator.requires_grad_(False)
        with self._autocast():
            recon = run["G"](run["E"](real)).float()
            l2 = F.mse_loss(recon, real)
            adv_e = F.softplus(-run["D"](self._d_aug(recon)).float()).mean()
            fake = run["G"](_mixed_latents(self.nets, z1, z2, cfg.style_mixing)).float()
            adv_m = F.softplus(-run["D"](self._d_aug(fake)).float()).mean()
        loss_eg = cfg.l2_weight * l2 + cfg.adversarial_weight * adv_e
        if self.perceptual is not None and cfg.perceptual_weight > 0:
            with self._autocast():
                perc = self.perceptual(recon, real).float()
            loss_eg = loss_eg + cfg.perceptual_weight * perc
            logs["perceptual"] = perc.detach()
        loss_g = loss_eg + adv_m
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.dist.average_gradients(self.g_params)
        self.opt_g.step()
        logs.update(l2=l2.detach(), adv_e=adv_e.detach(), adv_m=adv_m.detach())
        return logs

    def _update_ema(self) -> None:
        decay = self.cfg.ema_decay
        if self.cfg.ema_rampup:  # early on, average over fewer steps (the EMA would still be the init)
            decay = min(decay, (1 + self.step) / (10 + self.step))
        for name in EMA_NAMES:
            _ema_update(getattr(self.ema, name), getattr(self.nets, name), decay)

    def _update_augment(self, batch: int) -> None:
        """ADA: every rank adjusts p from the signs of all ranks (after the step counter moved)."""
        cfg = self.cfg
        if cfg.augment != "ada":
            return
        if self.step % cfg.ada_interval == 0:
            self.ada.sign_sum = self.dist.sum_scalar(self.ada.sign_sum)
            self.ada.count = int(self.dist.sum_scalar(self.ada.count))
        self.ada.update(self.step, batch * self.dist.world)

    def _keep_optimizer_settings(self) -> None:
        """After loading optimiser states: their moments come from the checkpoint, their settings from this
        run's config (a loaded state dict would otherwise silently bring back the old learning rate); what
        changed goes to ``resumed_settings``."""
        self.resumed_settings = {}
        wanted = {"lr": self.cfg.lr, "betas": (self.cfg.beta1, self.cfg.beta2), "eps": self.cfg.adam_eps}
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                for key, value in wanted.items():
                    if tuple(np.atleast_1d(group[key])) != tuple(np.atleast_1d(value)):
                        self.resumed_settings[key] = (group[key], value)
                    group[key] = value

    # validation --------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, val: np.ndarray) -> dict:
        """L2, PSNR and SSIM of the EMA encoder+generator on validation images (fixed noise), and with
        Inception weights the FID of as many EMA samples (fixed z, fixed noise) against those images."""
        l2, psnr, ssim = [], [], []
        for start in range(0, len(val), 32):
            x = torch.from_numpy(val[start : start + 32]).to(self.device)
            y = self.ema.generator(self.ema.encoder(x), noise_mode="const").float()
            l2.append(l2_per_image(y, x))
            psnr.append(psnr_per_image(y, x))
            ssim.append(ssim_per_image(y, x))
        metrics = {
            "val_l2": float(torch.cat(l2).mean()),
            "val_psnr": float(torch.cat(psnr).mean()),
            "val_ssim": float(torch.cat(ssim).mean()),
        }
        if self.fid_features is not None and len(val) >= 2:
            metrics["val_fid"] = self._fid(val)
        return metrics

    def _fid(self, val: np.ndarray) -> float:
        from seegaan.model.fid import feature_statistics, frechet_distance  # deferred: seegaan.model.fid imports torch

        if self._fid_real is None:
            self._fid_real = feature_statistics(self.fid_features(val))
        # the same z at every validation (their own generator: the training RNG streams are untouched)
        z_rng = torch.Generator().manual_seed(self.cfg.seed + 7919)
        z = torch.randn(len(val), self.model_cfg.latent_size, generator=z_rng).to(self.device)
        samples = []
        for start in range(0, len(z), 32):
            w = self.ema.mapping(z[start : start + 32])
            samples.append(self.ema.generator(w, noise_mode="const").float().cpu())
        fake = feature_statistics(self.fid_features(torch.cat(samples)))
        return frechet_distance(*self._fid_real, *fake)

    # checkpoint state --------------------------------------------------------------------------
    def train_state(self, extra: dict) -> dict:
        rng_state = {**self.torch_rng.state(), "numpy": self.rng.bit_generator.state}
        rng_states = self.dist.all_gather(rng_state)
        return {
            "step": self.step,
            "train_config": asdict(self.cfg),
            "optimizer_g": self.opt_g.state_dict(),
            "optimizer_d": self.opt_d.state_dict(),
            "augment": self.ada.state_dict(),
            "rng": rng_states,
            "world_size": self.dist.world,
            "best_metric": self.best_metric,
            "history": list(self.history),
            **extra,
        }

    def load(self, payload: dict, path) -> None:
        state, train = payload["state"], payload.get("train") or {}
        for name in NET_NAMES:
            load_state(getattr(self.nets, name), state[name], name=name, path=path)
        for name in EMA_NAMES:
            load_state(getattr(self.ema, name), state[f"{name}_ema"], name=f"EMA {name}", path=path)
        if "optimizer_g" not in train:
            raise SeegaanError(f"{path} holds no training state (optimiser, step); it cannot be resumed")
        self.opt_g.load_state_dict(train["optimizer_g"])
        self.opt_d.load_state_dict(train["optimizer_d"])
        self._keep_optimizer_settings()
        self.ada.load_state_dict(train["augment"])
        self.step = int(train["step"])
        self.best_metric = float(train["best_metric"])
        self.history = list(train.get("history", []))
        rng = train["rng"]
        if len(rng) != self.dist.world:
            raise SeegaanError(
                f"{path} was written by a run with {len(rng)} processes; resume it with the "
                f"same number (got {self.dist.world})"
            )
        self.torch_rng.set_state(rng[self.dist.rank])
        self.rng.bit_generator.state = rng[self.dist.rank]["numpy"]


def _config_differences(a: ModelConfig, b: ModelConfig) -> list[str]:
    return [
        f"{f.name} {getattr(a, f.name)!r} != {getattr(b, f.name)!r}"
        for f in fields(a)
        if getattr(a, f.name) != getattr(b, f.name)
    ]


# ---------------------------------------------------------------------------------------------- train()
@dataclass
class _Judges:
    """The optional pretrained networks of a run: VGG16 (perceptual loss), Inception-v3 (FID)."""

    perceptual: torch.nn.Module | None
    perceptual_name: str
    fid_features: object | None
    fid_name: str

    @property
    def selection(self) -> str:
        """The validation metric that picks ``best.pt``."""
        return "val_fid" if self.fid_features is not None else "val_l2"


def _load_judges(vgg_weights, fid_weights, *, device: torch.device, say: Callable[[str], None]) -> _Judges:
    from seegaan.model.fid import find_inception_weights, load_fid_features  # deferred: seegaan.model.fid imports torch

    # deferred: seegaan.model.perceptual imports torch
    from seegaan.model.perceptual import find_vgg_weights, load_vgg16

    vgg_path = find_vgg_weights(vgg_weights)
    perceptual = load_vgg16(vgg_path) if vgg_path is not None else None
    if vgg_path is None:
        say(
            "perceptual: none (no VGG16 weights in --vgg-weights or the torch hub cache; training with "
            "L2 + adversarial losses only)"
        )
    else:
        say(f"perceptual: VGG16 from {vgg_path}")
    fid_path = find_inception_weights(fid_weights)
    fid_features = load_fid_features(fid_path, device=device) if fid_path is not None else None
    if fid_features is None:
        say(
            "FID: none (no Inception-v3 weights in --fid-weights or the torch hub cache; best.pt is the "
            "step with the lowest validation L2)"
        )
    else:
        say(f"FID: Inception-v3 from {fid_features.source}; best.pt is the step with the lowest validation FID")
    return _Judges(
        perceptual=perceptual,
        perceptual_name=str(vgg_path) if vgg_path is not None else "none",
        fid_features=fid_features,
        fid_name=fid_features.source if fid_features is not None else "none",
    )


def _training_device(device: str | None, dist: _Dist) -> torch.device:
    """The device of this process: under torchrun, the GPU of its local rank; a bare "cuda" gets the
    current device's index (selecting a GPU needs one)."""
    device = resolve_device(device)
    if device.type == "cuda":
        if dist.enabled:
            device = torch.device("cuda", dist.local_rank)
        elif device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    return device


def _saved_run(last_path: Path, model_config: ModelConfig | None, *, resume: bool):
    """(checkpoint payload to resume or None, the architecture): a resumed run keeps its architecture and
    refuses an explicitly different one."""
    payload = None
    if resume and last_path.exists():
        payload = read_checkpoint(last_path)
        saved_cfg = payload["config_obj"]
        if model_config is not None and model_config != saved_cfg:
            differences = "; ".join(_config_differences(saved_cfg, model_config))[:300]
            raise SeegaanError(
                f"{last_path} holds a different architecture ({differences}); "
                "use another --out-dir or the same model options"
            )
        model_config = saved_cfg
    return payload, model_config or ModelConfig()


def _training_arrays(
    data, model_config: ModelConfig, config: TrainConfig, *, table, view, say: Callable[[str], None]
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(train, val) float32 arrays and what the checkpoints record of the images (their ids' hashes:
    ``seegaan encode`` keeps the training split only for these very images)."""
    if isinstance(data, tuple):
        train_x, val_x = (np.asarray(a, dtype=np.float32) for a in data)
        provenance = {}
    else:
        side = model_config.image_size
        train_set, val_set, provenance = _training_sets(data, image_size=side, view=view, table=table)
        say(f"loading {len(train_set)} training and {len(val_set)} validation images at {side}x{side}")
        train_x, val_x = _stack(train_set), _stack(val_set)
    expected = (model_config.channels, model_config.image_size, model_config.image_size)
    if train_x.ndim != 4 or tuple(train_x.shape[1:]) != expected:
        raise SeegaanError(f"training images have shape {train_x.shape[1:]}, the model expects {expected}")
    return train_x, val_x[: config.val_images], provenance


def _resume(trainer: Trainer, payload: dict, path: Path, selection: str, say: Callable[[str], None]) -> None:
    trainer.load(payload, path)
    say(f"resuming {path} at step {trainer.step} (augmentation p {trainer.ada.p:.4f})")
    for key, (before, now) in trainer.resumed_settings.items():
        say(f"Adam {key} {before} in the checkpoint, {now} from this run's settings: using {now}")
    previous = (payload.get("train") or {}).get("selection_metric", "val_l2")
    if previous != selection:
        say(f"the checkpoint selected by {previous}, this run by {selection}: the next validation starts a new best.pt")
        trainer.best_metric = math.inf


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C (SIGINT) or SIGTERM between two steps, after writing ``last.pt``.

    A KeyboardInterrupt, so code that stops on Ctrl-C still does; ``str(exc)`` says what was kept.

    Attributes
    ----------
    signum : int
        The signal that stopped the run.
    step : int
        The step the run had reached (and saved in ``last.pt``).
    """

    def __init__(self, message: str, *, signum: int, step: int):
        super().__init__(message)
        self.signum, self.step = signum, step

    def __str__(self) -> str:
        return str(self.args[0])


def kept_checkpoint_note(out_dir: str | os.PathLike) -> str:
    """What ``out_dir`` holds after an interrupted run: ``"last.pt (step M) kept in DIR; rerun the same
    command to resume"``, or that no checkpoint was written yet."""
    last = Path(out_dir) / "last.pt"
    if not last.is_file():
        return f"no checkpoint was written yet in {out_dir}"
    try:
        step = (read_checkpoint(last).get("train") or {}).get("step")
    except SeegaanError:
        return f"{last} cannot be read; delete it and start again"
    return f"last.pt (step {step}) kept in {out_dir}; rerun the same command to resume"


class _StopRequest:
    """SIGINT/SIGTERM while training: the first is remembered and acted on between two steps (after
    ``last.pt`` is written); a second one stops at once. Handlers are installed only in the main thread
    and the previous ones come back afterwards."""

    def __init__(self):
        self.signum: int | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[_StopRequest]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return

        def handler(signum, frame):
            if self.signum is None:
                self.signum = signum
                return
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise Terminated(signum)

        previous = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, handler)
            yield self
        finally:
            for sig, old in previous.items():
                with contextlib.suppress(ValueError, OSError, TypeError):
                    signal.signal(sig, old if old is not None else signal.SIG_DFL)


def _schedule_line(config: TrainConfig, step: int, end_step: int) -> str:
    """``checkpoint every N steps or M minutes; validation every K steps (next at step S)``."""
    every = config.validation_interval
    minutes = f" or {config.checkpoint_minutes:g} minutes" if config.checkpoint_minutes is not None else ""
    next_val = min((step // every + 1) * every, end_step)
    return (
        f"checkpoint (last.pt) every {config.checkpoint_every} steps{minutes} and at every validation; "
        f"validation every {every} steps (next at step {next_val}) and at the end"
    )


@dataclass
class _Run:
    """One call of :func:`train`: where it writes, what it records, and its loop."""

    trainer: Trainer
    judges: _Judges
    out_dir: Path
    model_config: ModelConfig
    baseline: float | None
    say: Callable[[str], None]
    provenance: dict = field(default_factory=dict)
    stop: _StopRequest = field(default_factory=_StopRequest)

    @property
    def last(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def best(self) -> Path:
        return self.out_dir / "best.pt"

    def checkpoint(self, metrics: dict | None) -> None:
        """Write ``last.pt`` (and ``best.pt`` when ``metrics`` improved on the best); every rank calls it."""
        trainer, judges, is_main = self.trainer, self.judges, self.trainer.dist.rank == 0
        improved = False
        if metrics is not None and is_main:
            trainer.history.append({"step": trainer.step, **metrics})
            improved = metrics[judges.selection] < trainer.best_metric
            if improved:
                trainer.best_metric = metrics[judges.selection]
        extra = {
            "perceptual": judges.perceptual_name,
            "fid": judges.fid_name,
            "selection_metric": judges.selection,
            "baseline_l2": self.baseline,
            "model_config": self.model_config.to_dict(),
            "data": dict(self.provenance),
        }
        train_state = trainer.train_state(extra)  # collective (RNG gather): every rank takes part
        if is_main:
            state = networks_state(trainer.nets, trainer.ema)
            save_checkpoint(self.last, self.model_config, state, train=train_state, overwrite=True)
            if improved or not self.best.exists():
                save_checkpoint(self.best, self.model_config, state, train=train_state, overwrite=True)
        trainer.dist.barrier()

    def _flags(self, step: int, deadline: float | None, next_save: float | None) -> tuple[bool, bool, bool]:
        """(time limit reached, wall-time checkpoint due, stop asked), agreed by all ranks so that every
        rank acts at the same step. The time limit is checked every 10 steps (so a run stops at the same
        kind of step whatever the number of processes); under torchrun the other two are agreed every 10
        steps as well, and checked after every step otherwise."""
        dist, now = self.trainer.dist, time.monotonic()
        every_tenth = step % 10 == 0
        over_time = every_tenth and deadline is not None and now > deadline
        save_due = next_save is not None and now > next_save
        stop = self.stop.signum is not None
        if not dist.enabled:
            return over_time, save_due, stop
        if not every_tenth:
            return False, False, False
        return tuple(dist.sum_scalar(float(f)) > 0 for f in (over_time, save_due, stop))  # type: ignore

    def loop(self, train_x: np.ndarray, val_x: np.ndarray, *, end_step: int, progress: Progress) -> dict:
        """Train up to ``end_step`` (or the time limit), validating and checkpointing on schedule (steps
        and wall time); returns the last step's losses. A stop request (SIGINT/SIGTERM) writes ``last.pt``
        between two steps and raises :class:`TrainingInterrupted`."""
        trainer, config, dist = self.trainer, self.trainer.cfg, self.trainer.dist
        sample = _batch_sampler(train_x, trainer.device)
        deadline = None if config.max_minutes is None else time.monotonic() + 60.0 * config.max_minutes
        save_every_s = None if config.checkpoint_minutes is None else 60.0 * config.checkpoint_minutes
        next_save = None if save_every_s is None else time.monotonic() + save_every_s
        t0, images_seen, logs = time.perf_counter(), 0, {}
        last_line = time.monotonic()
        first = trainer.step + 1
        self.say(_schedule_line(config, trainer.step, end_step))
        progress(0, total=end_step - trainer.step)
        while trainer.step < end_step:
            index = trainer.rng.integers(0, len(train_x), config.batch_size)
            logs = trainer.train_step(sample(index), sync=False)
            images_seen += config.batch_size * dist.world
            progress(1)
            step = trainer.step
            over_time, save_due, stop = self._flags(step, deadline, next_save)
            if over_time:
                self.say(f"time limit of {config.max_minutes:g} minutes reached at step {step}")
                end_step = step
            metrics, saved = self._checkpoint_on_schedule(val_x, end_step, force=save_due or stop)
            if saved and save_every_s is not None:
                next_save = time.monotonic() + save_every_s
            now = time.monotonic()
            if metrics is not None or step % config.log_every == 0 or step == first or now - last_line >= 30:
                rate = images_seen / (time.perf_counter() - t0)
                values = {**_floats(logs), **(metrics or {})}
                self.say(
                    f"step {step}/{end_step}: "
                    + ", ".join(f"{k} {v:.4g}" for k, v in values.items())
                    + f", {rate:.1f} images/s"
                )
                last_line = now
            if stop:
                name = "Ctrl-C" if self.stop.signum == signal.SIGINT else signal.Signals(self.stop.signum).name
                raise TrainingInterrupted(
                    f"interrupted ({name}) at step {step}; last.pt (step {step}) kept in "
                    f"{self.out_dir}; rerun the same command to resume",
                    signum=self.stop.signum or signal.SIGINT,
                    step=step,
                )
        return logs

    def _checkpoint_on_schedule(
        self, val_x: np.ndarray, end_step: int, *, force: bool = False
    ) -> tuple[dict | None, bool]:
        """Validate (rank 0) and checkpoint when the schedule, the end or ``force`` (wall time, a stop
        request) says so; (the metrics if any, whether a checkpoint was written)."""
        trainer, config = self.trainer, self.trainer.cfg
        step = trainer.step
        validate = step % config.validation_interval == 0 or step == end_step
        if not (step % config.checkpoint_every == 0 or validate or force):
            return None, False
        metrics = trainer.validate(val_x) if (validate and trainer.dist.rank == 0 and len(val_x)) else None
        self.checkpoint(metrics)
        return metrics, True


def _data_paths(data, table, *weights) -> list:
    """The input files and folders named by paths (not an ImageSet or arrays): outputs may not be these."""
    paths = [data] if isinstance(data, (str, os.PathLike)) else []
    return paths + [p for p in (table, *weights) if isinstance(p, (str, os.PathLike))]


def _check_outputs(out_dir: Path, inputs: list, *, resume: bool) -> None:
    """``last.pt`` and ``best.pt`` may be written: not an input, and an earlier run's ``last.pt`` is only
    replaced by resuming it."""
    last, best = out_dir / "last.pt", out_dir / "best.pt"
    if not resume and last.exists():
        raise SeegaanError(f"{last} exists and resume is off (--no-resume); use another --out-dir, or resume that run")
    check_output_path(last, overwrite=True, inputs=inputs, suffixes=".pt")
    check_output_path(best, overwrite=True, inputs=inputs, suffixes=".pt", others=[last], probe=False)


def train(
    data,
    *,
    out_dir: str | os.PathLike,
    model_config: ModelConfig | None = None,
    config: TrainConfig = TrainConfig(),
    table=None,
    view=None,
    vgg_weights=None,
    fid_weights=None,
    resume: bool = True,
    device: str | None = "cpu",
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
) -> TrainResult:
    """Train (or resume training of) the adversarial autoencoder.

    Parameters
    ----------
    data : ImageSet, path, or (train, val) pair of float32 arrays (N, C, S, S) in [-1, 1]
        Images; a folder or table path is read with :func:`seegaan.data.load_dataset` (``table``,
        ``view`` passed on) and its train/val splits are used. With an ImageSet or a path, the
        checkpoints record SHA-256 hashes of the sorted image ids (all, and the training split) and the
        split seed, so that ``seegaan encode`` keeps the split only for these very images.
    out_dir : path
        Folder for ``last.pt`` and ``best.pt`` (lowest validation FID with Inception weights, else
        lowest validation L2 of the EMA encoder+generator). ``last.pt`` is written every
        ``config.checkpoint_every`` steps, every ``config.checkpoint_minutes`` of wall time, at every
        validation (every ``config.validation_interval`` steps), at the end and on a stop request. An
        existing ``last.pt`` is resumed when ``resume`` (and refused otherwise: choose another folder).
        The folder is locked while the run writes (a second run on it is refused), and partial files
        left by killed writers are removed at the start (a line says so).
    model_config : ModelConfig, optional
        Architecture (default: the paper's at 256x256). Ignored on resume (the checkpoint's is used);
        a different explicit config is refused.
    config : TrainConfig
        Optimisation settings; ``config.steps`` is the total number of steps, counted across resumes.
    vgg_weights : path, optional
        torchvision VGG16 state dict for the perceptual loss; otherwise the torch hub cache is searched;
        with none the perceptual loss is left out and ``perceptual: none`` recorded.
    fid_weights : path, optional
        Inception-v3 state dict (pytorch-fid ``pt_inception-2015-12-05-*.pth`` or torchvision
        ``inception_v3_google-*.pth``); otherwise the torch hub cache is searched. With weights, every
        validation also reports ``val_fid`` (EMA samples against the validation images) and ``best.pt``
        is the step with the lowest FID, as in the paper; without, the lowest validation L2.
    device : str, optional
        ``"cpu"``, ``"cuda"`` or ``"auto"`` (None: auto). On a GPU, TF32 is allowed and the device made
        current while training runs; both settings come back afterwards.
    progress : callable ``progress(n=1, total=None)``, optional
        Told the number of steps of this call (``total=``), then each step done.
    log : callable
        Receives each message line (rank 0 only): the schedule at the start, the first step, then every
        ``config.log_every`` steps, every validation and at least every 30 seconds.
    stop_after : int, optional
        Stop after this many steps of this call (for tests); checkpoints are written as usual.

    Raises
    ------
    TrainingInterrupted
        On Ctrl-C (SIGINT) or SIGTERM in the main thread: the step under way finishes, ``last.pt`` is
        written, and the exception says so. A second signal stops at once (``last.pt`` is then the one
        written before; see :func:`kept_checkpoint_note`).

    ``config.max_minutes`` stops the run cleanly (validation, ``last.pt``, ``best.pt``) once that much
    wall time has passed; a later call with the same ``out_dir`` resumes there. Torch's global RNG is left
    as it was (the run draws from streams of its own, seeded by ``config.seed``).
    """
    dist = _Dist()
    device = _training_device(device, dist)
    dist.init(device)
    out_dir = Path(out_dir)
    if dist.rank == 0:
        make_output_folder(out_dir)
    lock = folder_lock(out_dir) if dist.rank == 0 else contextlib.nullcontext()
    say = log if dist.rank == 0 else (lambda _msg: None)
    with lock, cuda_settings(device), global_rng_kept(device):  # (third-party weight init may draw numbers)
        if dist.rank == 0:
            note = clean_stale_parts_note(out_dir)
            if note:
                say(note)
            _check_outputs(out_dir, _data_paths(data, table, vgg_weights, fid_weights), resume=resume)
        return _train(
            data,
            out_dir=out_dir,
            model_config=model_config,
            config=config,
            table=table,
            view=view,
            vgg_weights=vgg_weights,
            fid_weights=fid_weights,
            resume=resume,
            device=device,
            dist=dist,
            progress=progress or no_progress,
            say=say,
            stop_after=stop_after,
        )


def _train(
    data,
    *,
    out_dir: Path,
    model_config,
    config: TrainConfig,
    table,
    view,
    vgg_weights,
    fid_weights,
    resume: bool,
    device: torch.device,
    dist: _Dist,
    progress: Progress,
    say,
    stop_after,
) -> TrainResult:
    """:func:`train` on a resolved device, inside its settings scope and folder lock."""
    payload, model_config = _saved_run(out_dir / "last.pt", model_config, resume=resume)
    judges = _load_judges(vgg_weights, fid_weights, device=device, say=say)
    train_x, val_x, provenance = _training_arrays(data, model_config, config, table=table, view=view, say=say)
    trainer = Trainer(
        model_config, config, device=device, dist=dist, perceptual=judges.perceptual, fid_features=judges.fid_features
    )
    if payload is not None:
        _resume(trainer, payload, out_dir / "last.pt", judges.selection, say)
        saved = (payload.get("train") or {}).get("data") or {}
        if saved.get("image_ids_sha256") and provenance and saved != provenance:
            say(
                "the images differ from those of the resumed run (their ids' hashes differ); the "
                "checkpoints now record these images"
            )
    baseline = float(np.mean((val_x - train_x.mean(0, keepdims=True)) ** 2)) if len(val_x) else None
    if baseline is not None:
        say(f"validation L2 of predicting the mean training image: {baseline:.5f}")
    run = _Run(trainer, judges, out_dir, model_config, baseline, say, provenance)
    end_step = config.steps if stop_after is None else min(config.steps, trainer.step + stop_after)
    end_step = max(end_step, trainer.step)  # a run already past config.steps trains no further
    with run.stop.installed():
        logs = run.loop(train_x, val_x, end_step=end_step, progress=progress)
    return TrainResult(
        out_dir=out_dir,
        last=run.last,
        best=run.best if run.best.exists() else None,
        step=trainer.step,
        history=list(trainer.history),
        baseline_l2=baseline,
        perceptual=judges.perceptual_name,
        augment_p=trainer.ada.p,
        last_logs=_floats(logs),
        networks=trainer.nets,
        ema=trainer.ema,
    )
