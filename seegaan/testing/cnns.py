"""Tiny deterministic CNNs used by the explain/predict/attribution tests (``seegaan.testing.cnns:region_mean``)."""

from __future__ import annotations

import torch
from torch import nn


class RegionMean(nn.Module):
    """The mean intensity of the top half of the image: an answer known in closed form."""

    def forward(self, x):
        return x[:, 0, : x.shape[2] // 2].mean(dim=(1, 2))


class TinyCNN(nn.Module):
    """Two 3x3 convolutions, ReLU, global average pooling and a linear read-out (fixed seeded weights)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()
        )
        self.head = nn.Linear(4, 1)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))  # (B, 1)


class TwoOutputs(nn.Module):
    def forward(self, x):
        return torch.stack([x.mean(dim=(1, 2, 3)), x.amax(dim=(1, 2, 3))], dim=1)  # (B, 2): wrong shape


class NaNModel(nn.Module):
    def forward(self, x):
        return torch.full((x.shape[0],), float("nan"))


def broken_factory():
    raise RuntimeError("weights not found")


def plain_mean(x):
    """A plain function (not an nn.Module): the mean intensity."""
    return x.mean(dim=(1, 2, 3))


region_mean = RegionMean()
tiny_cnn = TinyCNN  # a class: zero-argument factory
two_outputs = TwoOutputs()
nan_model = NaNModel()
