"""Model configuration: one dataclass from which every network size is derived.

The paper's network is ``ModelConfig(image_size=256)``; a small CPU model is e.g.
``ModelConfig(image_size=64, latent_size=64, mapping_layers=2, generator_max_channels=32,
generator_base_channels=8, encoder_base_channels=8, encoder_max_channels=32)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Literal, get_args

from seegaan._internal.errors import SeegaanError

#: how training augments images: per-image probability ``augment_p`` on the data, adaptive (ADA) on
#: what the discriminator sees, or not at all
AugmentMode = Literal["fixed", "ada", "none"]
AUGMENT_MODES: tuple[str, ...] = get_args(AugmentMode)

#: checkpoints written by this version of the code; newer formats are refused
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and constants of the four networks.

    Channel widths are derived, never listed: the generator block that ends at resolution ``r`` has
    ``min(generator_base_channels * image_size / r, generator_max_channels)`` channels (64 at the
    output resolution, doubling towards 4x4, capped at 512 for the paper), and encoder/discriminator
    stage ``k`` (k = 0 at full resolution) has ``min(encoder_base_channels * 2**k,
    encoder_max_channels)`` channels (32, 64, 128, 256, 512, 512, 512 at 256x256).

    Parameters
    ----------
    image_size : int
        Side of the square images, a power of two from 32 to 1024.
    latent_size : int
        Size of z and w (512 in the paper).
    channels : int
        Image channels: 1 (radiographs) or 3.
    mapping_layers : int
        Dense layers of the mapping network (8).
    mapping_lr_mul : float
        Learning-rate multiplier of the mapping network (0.01).
    """

    image_size: int = 256
    latent_size: int = 512
    channels: int = 1
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    generator_base_channels: int = 64
    generator_max_channels: int = 512
    encoder_base_channels: int = 32
    encoder_max_channels: int = 512
    encoder_hidden: int = 512
    discriminator_hidden: int = 512
    gain: float = 1.2
    style_bias_init: float = 1.0
    demod_eps: float = 1e-8
    lrelu_slope: float = 0.2
    mbstd_group: int = 0  # 0: one group holding the whole batch (the reference)
    noise_seed: int = 0  # seed of the fixed noise maps used by noise_mode="const"

    def __post_init__(self):
        size = self.image_size
        if not isinstance(size, int) or size < 32 or size > 1024 or size & (size - 1):
            raise SeegaanError(f"image_size must be a power of two from 32 to 1024, got {size!r}")
        if self.channels not in (1, 3):
            raise SeegaanError(f"channels must be 1 or 3, got {self.channels!r}")
        for name in (
            "latent_size",
            "mapping_layers",
            "generator_base_channels",
            "generator_max_channels",
            "encoder_base_channels",
            "encoder_max_channels",
            "encoder_hidden",
            "discriminator_hidden",
        ):
            if int(getattr(self, name)) < 1:
                raise SeegaanError(f"{name} must be a positive integer, got {getattr(self, name)!r}")

    # ---- derived sizes -------------------------------------------------------------------------
    @property
    def n_blocks(self) -> int:
        """Generator blocks (4x4 up to image_size) = encoder/discriminator residual blocks + 1."""
        return int(math.log2(self.image_size)) - 1

    @property
    def generator_channels(self) -> list[int]:
        """Channels of generator block i (i = 0 is the 4x4 block)."""
        n = self.n_blocks
        return [min(self.generator_base_channels * 2 ** (n - 1 - i), self.generator_max_channels) for i in range(n)]

    @property
    def encoder_channels(self) -> list[int]:
        """Channels of encoder/discriminator stage k (k = 0 at full resolution, last one at 4x4)."""
        return [min(self.encoder_base_channels * 2**k, self.encoder_max_channels) for k in range(self.n_blocks)]

    @property
    def n_style_layers(self) -> int:
        """Modulated 3x3 convolutions of the generator (one w each): 1 + 2 (n_blocks - 1)."""
        return 2 * self.n_blocks - 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SeegaanError(
                f"the checkpoint's model config has unknown fields {unknown}; "
                "it was written by a newer seegaan: upgrade seegaan to read it"
            )
        return cls(**data)


def small_config(
    image_size: int = 64, *, width: int = 16, latent_size: int = 64, mapping_layers: int = 2
) -> ModelConfig:
    """A narrow model that trains on a CPU: generator/encoder widths capped at ``width``."""
    return ModelConfig(
        image_size=image_size,
        latent_size=latent_size,
        mapping_layers=mapping_layers,
        generator_base_channels=max(width // 4, 1),
        generator_max_channels=width,
        encoder_base_channels=max(width // 4, 1),
        encoder_max_channels=width,
        encoder_hidden=latent_size,
        discriminator_hidden=latent_size,
    )
