"""The four networks: mapping, style-based generator, residual encoder, residual discriminator."""

from __future__ import annotations

import torch
from torch import nn

from seegaan._internal.errors import SeegaanError
from seegaan.model._runtime import global_rng_kept
from seegaan.model.config import ModelConfig
from seegaan.model.layers import (
    NOISE_MODES,
    ConstantInput,
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStd,
    NoiseMode,
    ResidualBlock,
    StyleLayer,
    ToGray,
    upsample2x,
)


class MappingNetwork(nn.Module):
    """z -> w: pixel-norm, then ``mapping_layers`` dense layers with LeakyReLU and lr multiplier 0.01."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        size = cfg.latent_size
        self.layers = nn.ModuleList(
            EqualizedLinear(
                size, size, lr_mul=cfg.mapping_lr_mul, gain=cfg.gain, activation=True, slope=cfg.lrelu_slope
            )
            for _ in range(cfg.mapping_layers)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        for layer in self.layers:
            x = layer(x)
        return x


class GeneratorBlock(nn.Module):
    """One resolution of the generator: [upsample] -> style layer(s) -> ToGray added to the skip image."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        resolution: int,
        cfg: ModelConfig,
        *,
        first: bool,
        generator: torch.Generator,
    ):
        super().__init__()
        kw = dict(
            gain=cfg.gain,
            style_bias_init=cfg.style_bias_init,
            eps=cfg.demod_eps,
            slope=cfg.lrelu_slope,
            generator=generator,
        )
        self.first = first
        layers = [StyleLayer(in_channels, out_channels, cfg.latent_size, resolution, **kw)]
        if not first:
            layers.append(StyleLayer(out_channels, out_channels, cfg.latent_size, resolution, **kw))
        self.layers = nn.ModuleList(layers)
        self.to_gray = ToGray(
            out_channels, cfg.channels, cfg.latent_size, gain=cfg.gain, style_bias_init=cfg.style_bias_init
        )

    @property
    def n_styles(self) -> int:
        return len(self.layers) + 1

    def forward(self, x, image, ws: list[torch.Tensor], noise_mode: NoiseMode):
        if not torch.is_grad_enabled() and noise_mode != "random":
            return self._inference(x, image, ws, noise_mode)
        if not self.first:
            x = upsample2x(x)
        for layer, w in zip(self.layers, ws):
            x = layer(x, w, noise_mode)
        gray = self.to_gray(x, ws[len(self.layers)])
        image = gray if image is None else upsample2x(image) + gray
        return x, image

    def _inference(self, x, image, ws: list[torch.Tensor], noise_mode: NoiseMode):
        """Without gradients: the same function with no avoidable full-size temporaries.

        The first conv's style multiplies the features before the upsampling (bilinear upsampling is
        linear per channel, so this commutes, on a quarter of the pixels); later styles multiply in
        place; each conv's output is finished in place (:meth:`StyleLayer.inference_modulated`); the
        ToGray is a batched matrix product. ``x`` (this block's input, the previous block's output) is
        overwritten unless it is the first block's constant.
        """
        for i, (layer, w) in enumerate(zip(self.layers, ws)):
            style = layer.conv.affine(w)
            scale = style.to(x.dtype)[:, :, None, None]
            if i == 0 and self.first:
                x = x * scale
            elif i == 0:
                x = upsample2x(x.mul_(scale))
            else:
                x = x.mul_(scale)
            x = layer.inference_modulated(x, style, noise_mode)
        gray = self.to_gray(x, ws[len(self.layers)])
        image = gray if image is None else upsample2x(image).add_(gray)
        return x, image


class Generator(nn.Module):
    """w -> image in [-1, 1] (tanh), StyleGAN2-like with a skip (ToGray) path.

    ``forward`` takes w as (B, D) (one w for every layer) or (B, n_ws, D) (per-layer w, for style
    mixing); the ToGray of a block uses the w of the block's last conv's successor, as in StyleGAN2.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        chans = cfg.generator_channels
        gen = torch.Generator().manual_seed(cfg.noise_seed)
        self.const = ConstantInput(chans[0], gain=cfg.gain)
        blocks = []
        for i, out_ch in enumerate(chans):
            in_ch = chans[0] if i == 0 else chans[i - 1]
            blocks.append(GeneratorBlock(in_ch, out_ch, 4 * 2**i, cfg, first=i == 0, generator=gen))
        self.blocks = nn.ModuleList(blocks)
        self.channels_last = False

    def use_channels_last(self, enabled: bool = True) -> Generator:
        """Run convolutions in channels-last layout (faster on CPUs with oneDNN and on GPUs)."""
        self.channels_last = enabled
        return self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)

    @property
    def n_ws(self) -> int:
        """Number of style inputs: one per modulated 3x3 conv plus one for the last ToGray."""
        return self.cfg.n_style_layers + 1

    def forward(self, w: torch.Tensor, *, noise_mode: NoiseMode = "random") -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise SeegaanError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if w.ndim == 2:
            w = w[:, None, :].expand(-1, self.n_ws, -1)
        x = self.const(w.shape[0], w)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        else:
            x = x.contiguous()
        image = None
        index = 0
        for block in self.blocks:
            n_conv = len(block.layers)
            ws = [w[:, index + j] for j in range(n_conv + 1)]
            x, image = block(x, image, ws, noise_mode)
            index += n_conv
        return torch.tanh(image)


class Encoder(nn.Module):
    """Image -> one w: 1x1 from-gray, residual blocks down to 4x4, conv 3x3, dense, dense (linear)."""

    def __init__(self, cfg: ModelConfig, *, out_features: int | None = None, mbstd: bool = False):
        super().__init__()
        chans = cfg.encoder_channels
        n = len(chans) - 1  # residual blocks: image_size -> 4
        self.from_gray = EqualizedConv2d(
            cfg.channels, chans[0], 1, gain=cfg.gain, activation=True, slope=cfg.lrelu_slope
        )
        self.blocks = nn.ModuleList(
            ResidualBlock(chans[max(k - 1, 0)], chans[k], gain=cfg.gain, slope=cfg.lrelu_slope) for k in range(n)
        )
        self.mbstd = MinibatchStd(cfg.mbstd_group) if mbstd else None
        self.conv = EqualizedConv2d(
            chans[n - 1] + (1 if mbstd else 0), chans[n], 3, gain=cfg.gain, activation=True, slope=cfg.lrelu_slope
        )
        hidden = cfg.discriminator_hidden if mbstd else cfg.encoder_hidden
        self.dense = EqualizedLinear(chans[n] * 16, hidden, gain=cfg.gain, activation=True, slope=cfg.lrelu_slope)
        self.out = EqualizedLinear(hidden, cfg.latent_size if out_features is None else out_features, gain=cfg.gain)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.from_gray(image)
        for block in self.blocks:
            x = block(x)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        return self.out(self.dense(x.flatten(1)))


class Discriminator(Encoder):
    """The encoder's architecture with minibatch-stddev before the last conv and one output logit."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg, out_features=1, mbstd=True)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return super().forward(image).squeeze(1)


class Networks(nn.Module):
    """The four networks in one module (one state dict)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.mapping = MappingNetwork(cfg)
        self.generator = Generator(cfg)
        self.encoder = Encoder(cfg)
        self.discriminator = Discriminator(cfg)


def build_networks(cfg: ModelConfig, *, seed: int = 0) -> Networks:
    """Build mapping, generator, encoder and discriminator with weights drawn from ``seed``."""
    # the weights are drawn from torch's global stream of the default device (the CPU unless the caller
    # set another), seeded inside a fork so that the caller's stream is left as it was
    device = torch.get_default_device()
    with global_rng_kept(device):
        torch.default_generator.manual_seed(seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        return Networks(cfg)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def parameter_counts(cfg: ModelConfig) -> dict[str, int]:
    """Trainable parameters of each network, computed by building them on the meta device."""
    with torch.device("meta"):
        nets = Networks(cfg)
    return {
        name: count_parameters(getattr(nets, name)) for name in ("mapping", "generator", "encoder", "discriminator")
    }


def conv_flops_per_image(cfg: ModelConfig) -> float:
    """Multiply-adds x 2 of the generator's convolutions for one image (FLOP)."""
    return sum(2.0 * in_ch * out_ch * k * k * res * res for in_ch, out_ch, res, k in generator_convolutions(cfg))


def generator_convolutions(cfg: ModelConfig):
    """(in, out, resolution, kernel) of every generator convolution, ToGray included."""
    chans = cfg.generator_channels
    for i, out_ch in enumerate(chans):
        res = 4 * 2**i
        in_ch = chans[0] if i == 0 else chans[i - 1]
        yield in_ch, out_ch, res, 3
        if i > 0:
            yield out_ch, out_ch, res, 3
        yield out_ch, cfg.channels, res, 1
