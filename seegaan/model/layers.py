"""Building blocks: one class per idea (equalised learning rate, modulated conv, noise, ...).

Equalised learning rate (Karras et al.): parameters are stored as N(0, 1/lr_mul) draws and scaled at run
time by ``gain * lr_mul / sqrt(fan_in)``; biases are stored divided by ``lr_mul``. The reference uses
gain 1.2 everywhere.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

NoiseMode = Literal["const", "random", "none"]
NOISE_MODES = ("const", "random", "none")


def _inference_cache(module: nn.Module, key: tuple, compute):
    """Weight-derived tensors, recomputed only when the weights change (inference only).

    Without gradients, tensors such as ``weight * scale`` are cached on the module, keyed on the
    parameters' storage and in-place version counters, so an optimiser step, ``load_state_dict`` or
    ``.to()`` invalidates them. With gradients enabled nothing is cached.
    """
    if torch.is_grad_enabled():
        return compute()
    cached = module.__dict__.get("_inference_cached")
    if cached is not None and cached[0] == key:
        return cached[1]
    value = compute()
    module.__dict__["_inference_cached"] = (key, value)
    return value


def _version(t: torch.Tensor) -> int:
    try:
        return t._version
    except RuntimeError:  # inference tensors (made under inference_mode) carry no version counter
        return -1


def _param_key(*params) -> tuple:
    return tuple((p.data_ptr(), _version(p), p.dtype, p.device) for p in params if p is not None)


class EqualizedLinear(nn.Module):
    """Dense layer with equalised learning rate."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        gain: float = 1.2,
        activation: bool = False,
        slope: float = 0.2,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul)) if bias else None
        self.scale = gain * lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activation = activation
        self.slope = slope

    def effective(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The weight and bias the layer applies (equalised-lr scaling included)."""

        def compute():
            bias = None if self.bias is None else self.bias * self.lr_mul
            return self.weight * self.scale, bias

        return _inference_cache(self, _param_key(self.weight, self.bias), compute)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.effective()
        x = F.linear(x, weight, bias)
        return F.leaky_relu(x, self.slope) if self.activation else x


class EqualizedConv2d(nn.Module):
    """Plain convolution ('same' padding) with equalised learning rate."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,
        gain: float = 1.2,
        activation: bool = False,
        slope: float = 0.2,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2
        self.activation = activation
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)
        return F.leaky_relu(x, self.slope) if self.activation else x


class ConstantInput(nn.Module):
    """The 4x4 start of the generator: a bias-free dense layer applied to the scalar 1."""

    def __init__(self, channels: int, size: int = 4, *, gain: float = 1.2):
        super().__init__()
        self.dense = EqualizedLinear(1, channels * size * size, bias=False, gain=gain)
        self.shape = (channels, size, size)

    def forward(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        one = torch.ones(1, 1, device=like.device, dtype=like.dtype)
        return self.dense(one).view(1, *self.shape).expand(batch, *self.shape)


class ModulatedConv2d(nn.Module):
    """Style-modulated convolution without bias; demodulated (eps 1e-8) unless ``demodulate=False``.

    The style is an affine map of w with bias initialised to 1. The convolution runs as one grouped
    convolution over the batch (each sample its own weights).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        latent_size: int,
        *,
        demodulate: bool = True,
        gain: float = 1.2,
        style_bias_init: float = 1.0,
        eps: float = 1e-8,
    ):
        super().__init__()
        self.affine = EqualizedLinear(latent_size, in_channels, bias_init=style_bias_init, gain=gain)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.demodulate = demodulate
        self.eps = eps
        self.padding = kernel_size // 2

    def modulated_weight(self, w: torch.Tensor) -> torch.Tensor:
        """Per-sample weights (B, out, in, k, k): the definition the fast path must equal."""
        style = self.affine(w)  # (B, in)
        weight = self.weight[None] * self.scale * style[:, None, :, None, None]
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.square().sum(dim=(2, 3, 4), keepdim=True) + self.eps)
        return weight

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Modulate the input, convolve with the shared weight, demodulate the output.

        Equal to convolving each sample with :meth:`modulated_weight` (conv is linear per input channel
        and per output channel), but one ordinary batched convolution: faster on CPUs and every sample's
        result does not depend on the others in the batch.
        """
        x, dcoef = self.undemodulated(x, w)
        if dcoef is None:
            return x
        return x.mul_(dcoef) if not torch.is_grad_enabled() else x * dcoef

    def undemodulated(self, x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Convolution of the modulated input and the (B, out, 1, 1) demodulation factors (None when the
        layer does not demodulate); ``forward`` multiplies the two."""
        style = self.affine(w)  # (B, in)
        x = x * style.to(x.dtype)[:, :, None, None]
        return self.convolve_modulated(x), self.demodulation(style, x.dtype)

    def convolve_modulated(self, x_modulated: torch.Tensor) -> torch.Tensor:
        """The shared-weight convolution of an input already multiplied by the style."""
        weight, _ = self._weights(x_modulated.dtype)
        return F.conv2d(x_modulated, weight, padding=self.padding)

    def demodulation(self, style: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
        """(B, out, 1, 1) demodulation factors of a (B, in) style, or None without demodulation."""
        if not self.demodulate:
            return None
        _, wsq_t = self._weights(dtype)
        return torch.rsqrt(style.square() @ wsq_t + self.eps).to(dtype)[:, :, None, None]

    def _weights(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled weight (in ``dtype``) and, for demodulation, ``sum_k W^2`` transposed to (in, out):
        sum over (in, k, k) of (W s)^2 = (s^2) @ that."""

        def compute():
            weight = self.weight * self.scale
            wsq_t = weight.square().sum(dim=(2, 3)).t().contiguous()
            return weight.to(dtype), wsq_t

        return _inference_cache(self, _param_key(self.weight) + (dtype,), compute)


class NoiseInjection(nn.Module):
    """Per-pixel noise times one learned scalar strength (initialised to 0).

    ``noise_mode="const"`` adds a fixed map (a buffer drawn once from the config's ``noise_seed``, saved
    with the weights), the same for every sample and call; ``"random"`` draws fresh noise per sample;
    ``"none"`` adds nothing.
    """

    def __init__(self, resolution: int, *, generator: torch.Generator | None = None):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("const_noise", torch.randn(1, 1, resolution, resolution, generator=generator))

    def forward(self, x: torch.Tensor, noise_mode: NoiseMode) -> torch.Tensor:
        if noise_mode == "none":
            return x
        if noise_mode == "const":
            noise = self.const_noise.to(x.dtype)
        else:
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        if not torch.is_grad_enabled():  # inference: update in place (saves a pass over memory)
            return x.add_(noise * self.strength.to(x.dtype))
        return x + noise * self.strength.to(x.dtype)


class StyleLayer(nn.Module):
    """Modulated 3x3 conv -> + noise -> + bias -> LeakyReLU(0.2) (no activation gain)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        latent_size: int,
        resolution: int,
        *,
        gain: float = 1.2,
        style_bias_init: float = 1.0,
        eps: float = 1e-8,
        slope: float = 0.2,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channels, out_channels, 3, latent_size, gain=gain, style_bias_init=style_bias_init, eps=eps
        )
        self.noise = NoiseInjection(resolution, generator=generator)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.slope = slope

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: NoiseMode) -> torch.Tensor:
        if not torch.is_grad_enabled() and noise_mode != "random":
            style = self.conv.affine(w)
            return self.inference_modulated(x * style.to(x.dtype)[:, :, None, None], style, noise_mode)
        x = self.noise(self.conv(x, w), noise_mode)
        bias = self.bias.to(x.dtype)[None, :, None, None]
        if not torch.is_grad_enabled():
            return F.leaky_relu_(x.add_(bias), self.slope)
        return F.leaky_relu(x + bias, self.slope)

    def inference_modulated(
        self, x_modulated: torch.Tensor, style: torch.Tensor, noise_mode: NoiseMode
    ) -> torch.Tensor:
        """Inference on an input already multiplied by ``style`` (B, in); the convolution's output is
        finished in place (``addcmul`` into itself, LeakyReLU in place): no new full-size tensor, which
        on CPUs costs more than the arithmetic (fresh pages fault in)."""
        y = self.conv.convolve_modulated(x_modulated)
        dcoef = self.conv.demodulation(style, y.dtype)
        torch.addcmul(self._offset(y, noise_mode), y, dcoef, out=y)
        return F.leaky_relu_(y, self.slope)

    def _offset(self, y: torch.Tensor, noise_mode: NoiseMode) -> torch.Tensor:
        """bias (+ strength x the constant noise map), cached per dtype, noise mode and memory layout."""
        channels_last = y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()

        def compute():
            offset = self.bias.to(y.dtype)[None, :, None, None]
            if noise_mode == "const":
                noise = self.noise.const_noise.to(y.dtype)
                offset = offset + noise * self.noise.strength.to(y.dtype)  # (1, C, H, W)
                if channels_last:
                    offset = offset.contiguous(memory_format=torch.channels_last)
            return offset

        key = _param_key(self.bias, self.noise.strength, self.noise.const_noise) + (y.dtype, noise_mode, channels_last)
        return _inference_cache(self, key, compute)


class ToGray(nn.Module):
    """ToRGB of a one-channel image: 1x1 modulated conv without demodulation, plus bias."""

    def __init__(
        self, in_channels: int, out_channels: int, latent_size: int, *, gain: float = 1.2, style_bias_init: float = 1.0
    ):
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channels, out_channels, 1, latent_size, demodulate=False, gain=gain, style_bias_init=style_bias_init
        )
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            return self._inference(x, self.conv.affine(w))
        return self.conv(x, w) + self.bias.to(x.dtype)[None, :, None, None]

    def _inference(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """The 1x1 modulated conv as one batched matrix product with per-sample weights (out, in) x s:
        no modulated copy of the input is made."""
        batch, channels, height, width = x.shape
        weight, _ = self.conv._weights(x.dtype)
        per_sample = weight[:, :, 0, 0][None] * style.to(x.dtype)[:, None, :]  # (B, out, in)
        bias = self.bias.to(x.dtype)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            pixels = x.permute(0, 2, 3, 1).reshape(batch, height * width, channels)  # a view
            out = torch.baddbmm(bias[None, None, :], pixels, per_sample.transpose(1, 2))
            return out.view(batch, height, width, -1).permute(0, 3, 1, 2)
        out = torch.baddbmm(bias[None, :, None], per_sample, x.reshape(batch, channels, height * width))
        return out.view(batch, -1, height, width)


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 upsampling (align_corners False), of features and of the skip image."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class ResidualBlock(nn.Module):
    """Encoder/discriminator block: (two 3x3 convs + LeakyReLU, 2x2 avg-pool) + (1x1 bias-free skip,
    2x2 avg-pool), summed and divided by sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int, *, gain: float = 1.2, slope: float = 0.2):
        super().__init__()
        self.skip = EqualizedConv2d(in_channels, out_channels, 1, bias=False, gain=gain)
        self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, gain=gain, activation=True, slope=slope)
        self.conv2 = EqualizedConv2d(out_channels, out_channels, 3, gain=gain, activation=True, slope=slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = F.avg_pool2d(self.skip(x), 2)
        x = F.avg_pool2d(self.conv2(self.conv1(x)), 2)
        return (x + skip) * (1 / math.sqrt(2))


class MinibatchStd(nn.Module):
    """Append the mean over features and pixels of the across-batch standard deviation as one channel.

    ``group_size=0`` uses one group holding the whole batch (the reference)."""

    def __init__(self, group_size: int = 0):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        group = batch if self.group_size <= 0 else min(self.group_size, batch)
        if batch % group:
            group = batch
        y = x.reshape(group, -1, channels, height, width).float()
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = torch.sqrt(y + 1e-8).mean(dim=(1, 2, 3))  # (batch/group,)
        y = y.reshape(-1, 1, 1, 1).repeat(group, 1, height, width).to(x.dtype)
        return torch.cat([x, y], dim=1)
