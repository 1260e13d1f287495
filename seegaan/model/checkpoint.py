"""Checkpoints: plain dicts of tensors and numbers, written atomically, read with weights_only=True.

Layout::

    {"format": "seegaan-checkpoint", "version": 1, "config": asdict(ModelConfig),
     "state": {"mapping": ..., "generator": ..., "encoder": ..., "discriminator": ...,
               "mapping_ema": ..., "generator_ema": ..., "encoder_ema": ...},
     "train": {...} or None}   # step, optimiser states, augmentation p, RNG states, metrics

No pickled code, no argparse namespaces: a checkpoint can be opened safely and is refused with a
message when it comes from another architecture or a newer format.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import torch

from seegaan._internal.errors import SeegaanError
from seegaan._internal.io import atomic_path, file_sha256
from seegaan.model.config import CHECKPOINT_VERSION, ModelConfig
from seegaan.model.networks import Networks

FORMAT = "seegaan-checkpoint"
EMA_NAMES = ("mapping", "generator", "encoder")
NET_NAMES = ("mapping", "generator", "encoder", "discriminator")


def checkpoint_identity(path: str | os.PathLike) -> str:
    """``'<absolute path> sha256:<hex>'``: what a cohort or sequence records as its model."""
    path = Path(path)
    return f"{path.resolve()} sha256:{file_sha256(path)}"


def networks_state(nets: Networks, ema: Networks | None) -> dict:
    """State dicts of the four networks and the EMA copies (the live weights when ``ema`` is None)."""
    state = {name: getattr(nets, name).state_dict() for name in NET_NAMES}
    source = nets if ema is None else ema
    for name in EMA_NAMES:
        state[f"{name}_ema"] = getattr(source, name).state_dict()
    return state


def save_checkpoint(
    path: str | os.PathLike, cfg: ModelConfig, state: dict, *, train: dict | None = None, overwrite: bool = True
) -> Path:
    """Write a checkpoint atomically (temporary file renamed on success)."""
    payload = {"format": FORMAT, "version": CHECKPOINT_VERSION, "config": cfg.to_dict(), "state": state, "train": train}
    with atomic_path(path, overwrite=overwrite) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _check_crc(path: Path) -> None:
    """Refuse a checkpoint whose stored CRC-32 checksums fail (torch.load does not check them: 50 flipped
    bytes in the weights decoded silently, measured). A file that is not a zip archive is left to torch."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile:
        return
    except (OSError, RuntimeError, EOFError, zlib.error) as exc:
        bad = f"({type(exc).__name__})"
    if bad is not None:
        raise SeegaanError(
            f"checkpoint {path} is corrupt: a part of it fails its checksum ({bad}); copy it again or use "
            "another checkpoint"
        )


def read_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict:
    """Read and validate a checkpoint; every problem is a one-line SeegaanError."""
    path = Path(path)
    if not path.is_file():
        raise SeegaanError(f"checkpoint {path} does not exist; give the .pt file written by `seegaan train`")
    _check_crc(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input problem
        raise SeegaanError(
            f"cannot read {path} as a seegaan checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); "
            "give a file written by `seegaan train`"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise SeegaanError(
            f"{path} is not a seegaan checkpoint (no 'format: {FORMAT}' entry); give a file written by `seegaan train`"
        )
    version = payload.get("version")
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise SeegaanError(
            f"{path} has checkpoint format version {version!r}, newer than this seegaan "
            f"reads ({CHECKPOINT_VERSION}); upgrade seegaan"
        )
    payload["config_obj"] = ModelConfig.from_dict(payload["config"])
    return payload


def load_state(module: torch.nn.Module, state: dict, *, name: str, path) -> None:
    """Load a state dict, turning an architecture mismatch into a one-line error."""
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise SeegaanError(
            f"the {name} weights in {path} do not fit the architecture in its config "
            f"({first[:200]}); the checkpoint is corrupt or from another architecture"
        ) from None
