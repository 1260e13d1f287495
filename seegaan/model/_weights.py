"""Pretrained weights from local files only (VGG16 for the perceptual loss, Inception-v3 for FID)."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import torch

from seegaan._internal.errors import SeegaanError


def hub_checkpoints() -> Path:
    """The torch hub cache's checkpoint folder ($TORCH_HOME, else ~/.cache/torch)."""
    return Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"


def find_weights(path, patterns: tuple[str, ...], *, missing: str) -> Path | None:
    """``path`` when given (``missing`` is the error when it does not exist), else the first file in the torch
    hub cache matching ``patterns`` (in order of preference), else None. Nothing is downloaded."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise SeegaanError(missing.format(path=path))
        return path
    for pattern in patterns:
        found = sorted(glob.glob(str(hub_checkpoints() / pattern)))
        if found:
            return Path(found[0])
    return None


def read_state_dict(path, *, what: str, hint: str) -> dict:
    """``torch.load(weights_only=True)`` of a state dict, with a one-line error naming ``what`` and ``hint``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise SeegaanError(f"cannot read {what} weights {path} ({type(exc).__name__}); give {hint}") from None
