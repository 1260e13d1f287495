"""Per-image augmentation (translate, rotate, zoom, brightness), differentiable, with an adaptive p.

Each image is augmented with probability ``p``, decided per image (the reference decided once per batch).
An augmented image gets all four transforms with magnitudes drawn uniformly within the limits below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentLimits:
    """Largest transforms, as fractions: translation of the side, rotation of a full turn, zoom, and
    brightness shift of the intensity range (the reference's 0.05, 0.02, 0.15, 0.25)."""

    translate: float = 0.05
    rotate: float = 0.02
    zoom: float = 0.15
    brightness: float = 0.25


def augment(
    images: torch.Tensor, p: float, *, limits: AugmentLimits = AugmentLimits(), generator: torch.Generator | None = None
) -> torch.Tensor:
    """Augment each image of (B, C, H, W) in [-1, 1] with probability ``p``; differentiable in images."""
    batch = images.shape[0]
    if p <= 0 or batch == 0:
        return images
    device = images.device
    kw = dict(device=device, generator=generator)

    def uniform(limit):
        return (torch.rand(batch, **kw) * 2 - 1) * limit

    chosen = (torch.rand(batch, **kw) < p).float()
    angle = uniform(limits.rotate * 2 * math.pi) * chosen
    zoom = 1 + uniform(limits.zoom) * chosen
    shift = torch.stack([uniform(limits.translate), uniform(limits.translate)], 1) * 2 * chosen[:, None]
    bright = uniform(limits.brightness) * 2 * chosen  # fraction of the range [-1, 1] (width 2)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1).to(
        images.dtype
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    out = out + bright.to(images.dtype)[:, None, None, None]
    # clamp without killing gradients of un-augmented images (they are already within [-1, 1])
    return torch.where(chosen[:, None, None, None] > 0, out.clamp(-1, 1), images)


class AdaptiveP:
    """ADA heuristic: raise p when the discriminator is too sure of reals (E[sign D(x)] > target).

    State (``p``, accumulated signs) is saved in checkpoints so a resumed run continues with the same p.
    """

    def __init__(self, p: float = 0.0, *, target: float = 0.95, interval: int = 4, kimg: float = 500.0):
        self.p = float(p)
        self.target = target
        self.interval = interval
        self.kimg = kimg
        self.sign_sum = 0.0
        self.count = 0

    def observe(self, real_logits: torch.Tensor) -> None:
        self.sign_sum += float(torch.sign(real_logits.detach()).sum())
        self.count += int(real_logits.numel())

    def update(self, step: int, images_per_step: int) -> None:
        """Adjust p every ``interval`` steps from the signs seen since the last adjustment."""
        if step % self.interval or self.count == 0:
            return
        rt = self.sign_sum / self.count
        adjust = math.copysign(images_per_step * self.interval / (self.kimg * 1000), rt - self.target)
        self.p = min(max(self.p + adjust, 0.0), 1.0)
        self.sign_sum, self.count = 0.0, 0

    def state_dict(self) -> dict:
        return {"p": self.p, "sign_sum": self.sign_sum, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.p, self.sign_sum, self.count = float(state["p"]), float(state["sign_sum"]), int(state["count"])
