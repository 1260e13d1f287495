"""Reconstruction metrics for images in [-1, 1]: L2, PSNR, SSIM (Gaussian window 11, sigma 1.5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

DATA_RANGE = 2.0  # images live in [-1, 1]


def l2_per_image(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each image, (B,)."""
    return (x.float() - y.float()).square().flatten(1).mean(1)


def psnr_per_image(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio (dB) with data range 2, (B,)."""
    return 10 * torch.log10(DATA_RANGE**2 / l2_per_image(x, y).clamp_min(1e-12))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-coords.square() / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_per_image(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004; K1 0.01, K2 0.03, valid window), mean over channels, (B,)."""
    x, y = x.float(), y.float()
    channels = x.shape[1]
    window = _gaussian_window().to(x.device).repeat(channels, 1, 1, 1)

    def blur(t):
        return F.conv2d(t, window, groups=channels)

    c1, c2 = (0.01 * DATA_RANGE) ** 2, (0.03 * DATA_RANGE) ** 2
    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    ssim = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return ssim.flatten(1).mean(1)
