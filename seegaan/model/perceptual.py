"""VGG16 perceptual loss from locally present weights only (nothing is ever downloaded).

The layers are defined here (no torchvision needed) with torchvision's parameter names
(``features.0.weight`` ...), so a torchvision ``vgg16-*.pth`` state dict loads directly.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from seegaan._internal.errors import SeegaanError
from seegaan.model._weights import find_weights, read_state_dict

# VGG16 "D" configuration; "M" is a 2x2 max-pool
_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
# indices (in ``features``) of relu1_2, relu2_2, relu3_3, relu4_3
_TAPS = (3, 8, 15, 22)
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _features() -> nn.Sequential:
    layers, in_ch = [], 3
    for v in _CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, v, 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = v
    return nn.Sequential(*layers)


class VGG16Perceptual(nn.Module):
    """Mean squared distance of VGG16 feature maps (relu1_2, relu2_2, relu3_3, relu4_3)."""

    def __init__(self):
        super().__init__()
        self.features = _features()[: _TAPS[-1] + 1]
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = (x + 1) / 2  # [-1, 1] -> [0, 1]
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        both = self._prepare(torch.cat([x, y]))
        loss = 0.0
        for i, layer in enumerate(self.features):
            both = layer(both)
            if i in _TAPS:
                fx, fy = both.chunk(2)
                loss = loss + F.mse_loss(fx, fy)
        return loss


def find_vgg_weights(path: str | os.PathLike | None = None) -> Path | None:
    """The given file, else a torchvision ``vgg16-*.pth`` in the torch hub cache, else None."""
    return find_weights(
        path,
        ("vgg16-*.pth",),
        missing="--vgg-weights {path} does not exist; give a torchvision VGG16 state dict "
        "(vgg16-*.pth) or leave it out to train without the perceptual loss",
    )


def load_vgg16(path: str | os.PathLike) -> VGG16Perceptual:
    """Load a torchvision-compatible VGG16 state dict (only the ``features.*`` entries are used)."""
    state = read_state_dict(path, what="VGG16", hint="a torchvision vgg16-*.pth state dict")
    model = VGG16Perceptual()
    wanted = {k: v for k, v in state.items() if k.startswith("features.") and int(k.split(".")[1]) <= _TAPS[-1]}
    try:
        model.load_state_dict({**wanted, "mean": model.mean, "std": model.std})
    except RuntimeError:
        raise SeegaanError(
            f"{path} is not a VGG16 state dict (features.* entries do not match); give a torchvision vgg16-*.pth file"
        ) from None
    return model.eval()
