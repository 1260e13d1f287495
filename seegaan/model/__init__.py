"""The style-based adversarial autoencoder (PyTorch): networks, training, checkpoints, encode/decode.

Names resolve lazily so that ``import seegaan.model`` costs nothing until a function is used.

:func:`load_checkpoint_decoder` gives a checkpoint's torch-backed decoder; :func:`seegaan.load_decoder`
resolves any decoder spec (a checkpoint among them) into a validated :class:`seegaan.decoder.Decoder`.
Nothing here changes a process-wide setting unless asked: :func:`keep_freed_memory` (glibc malloc tuning
for CPU decoding) is called by the ``seegaan`` commands, not by the library.
"""

from __future__ import annotations

from seegaan._internal.lazy import lazy_module

_LAZY = {
    "ModelConfig": "seegaan.model.config",
    "small_config": "seegaan.model.config",
    "build_networks": "seegaan.model.networks",
    "parameter_counts": "seegaan.model.networks",
    "Networks": "seegaan.model.networks",
    "MappingNetwork": "seegaan.model.networks",
    "Generator": "seegaan.model.networks",
    "Encoder": "seegaan.model.networks",
    "Discriminator": "seegaan.model.networks",
    "load_checkpoint_decoder": "seegaan.model.inference",
    "load_encoder": "seegaan.model.inference",
    "load_mapping": "seegaan.model.inference",
    "CheckpointDecoder": "seegaan.model.inference",
    "CheckpointEncoder": "seegaan.model.inference",
    "read_checkpoint": "seegaan.model.checkpoint",
    "checkpoint_identity": "seegaan.model.checkpoint",
    "keep_freed_memory": "seegaan.model.allocator",
    "train": "seegaan.model.training",
    "TrainConfig": "seegaan.model.training",
    "encode_images": "seegaan.model.tasks",
    "reconstruct_images": "seegaan.model.tasks",
    "sample_images": "seegaan.model.tasks",
    "evaluate_images": "seegaan.model.tasks",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__, _ = lazy_module("seegaan.model", _LAZY)
