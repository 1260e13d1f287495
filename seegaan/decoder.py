"""Decoders: anything that maps float32 latents (B, D) to images (B, H, W).

A decoder is given as

- a checkpoint of this package (a file path; the EMA generator with fixed noise maps),
- ``"module:attr"`` naming a Python callable (``attr`` may be dotted), or
- a Python callable / :class:`Decoder` object.

Nothing here assumes D = 512.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seegaan import model
from seegaan._internal.errors import SeegaanError
from seegaan._internal.io import file_sha256


@dataclass(frozen=True)
class Decoder:
    """A validated decoder: ``decoder(w)`` returns float32 images (B, H, W).

    Attributes
    ----------
    fn : callable
        The underlying function.
    identity : str
        What decoded the images (checkpoint path + sha256, or module:attr + source hash).
    """

    fn: Callable
    identity: str

    def __call__(self, w: np.ndarray) -> np.ndarray:
        w = np.ascontiguousarray(w, dtype=np.float32)
        if w.ndim != 2:
            raise SeegaanError(f"latents to decode must be 2-D (B, D), got shape {w.shape}")
        try:
            out = self.fn(w)
        except SeegaanError:
            raise
        except Exception as exc:
            raise SeegaanError(
                f"decoder {self.identity} failed on latents of shape {w.shape} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "check that it matches the cohort's latent size"
            ) from None
        if hasattr(out, "detach"):  # a torch tensor
            out = out.detach().cpu().numpy()
        out = np.asarray(out)
        if out.ndim == 4 and out.shape[1] == 1:
            out = out[:, 0]
        if out.ndim != 3 or out.shape[0] != w.shape[0]:
            raise SeegaanError(
                f"decoder {self.identity} returned shape {out.shape} for {w.shape[0]} latents; "
                f"it must return images of shape ({w.shape[0]}, H, W)"
            )
        out = out.astype(np.float32, copy=False)
        if not np.isfinite(out).all():
            raise SeegaanError(f"decoder {self.identity} returned NaN or inf pixels")
        return out


def _import_callable(spec: str, what: str = "decoder", alternative: str = "a checkpoint path") -> tuple[Callable, str]:
    """Import ``module:attr`` (``attr`` may be dotted); ``what`` and ``alternative`` word the errors."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SeegaanError(f"{what} {spec!r} is neither {alternative} nor 'module:callable'")
    try:
        obj = importlib.import_module(module_name)
    except Exception as exc:
        raise SeegaanError(
            f"cannot import {what} module {module_name!r} ({type(exc).__name__}: {exc}); "
            f"give an importable module:callable or {alternative}"
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SeegaanError(
                f"module {module_name!r} has no attribute {attr!r}; give an importable module:callable"
            ) from None
    if not callable(obj):
        raise SeegaanError(f"{what} {spec!r} is not callable")
    try:
        src = inspect.getsourcefile(importlib.import_module(module_name))
        tag = f"sha256:{file_sha256(src)}" if src else "source unknown"
    except (TypeError, OSError):
        tag = "source unknown"
    return obj, f"{spec} ({tag})"


def is_checkpoint(spec) -> bool:
    """Whether :func:`load_decoder` reads ``spec`` as a checkpoint of this package (an existing file)."""
    return isinstance(spec, (str, os.PathLike)) and Path(spec).is_file()


def decoder_device(spec, device="cpu") -> str:
    """Check ``device`` for decoder ``spec`` before any work and return it as a string.

    ``device`` (``"cpu"``, the default; ``"cuda"``, ``"cuda:N"`` or ``"auto"``, the GPU when there is one)
    is where a checkpoint decoder is loaded (:func:`seegaan.model._runtime.resolve_device`): the result is
    ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (``"cuda"`` without an index stays so, so that a Dask worker that
    sees only its own GPU loads on it). Any other decoder (``module:callable``, a Python callable or a loaded
    :class:`Decoder`) runs where its own code puts it, so only ``"cpu"`` is accepted for it. Every refusal
    is a one-line :class:`SeegaanError`: a device torch does not know, CUDA asked for without a CUDA GPU,
    a GPU index the machine does not have.
    """
    if not isinstance(device, str):
        import torch  # deferred: torch (heavy)

        if not isinstance(device, torch.device):
            raise SeegaanError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', not {device!r}")
    if not is_checkpoint(spec):
        if str(device) == "cpu":
            return "cpu"
        if isinstance(spec, (str, os.PathLike)):
            name = os.fspath(spec)
            if ":" not in name or name.endswith((".pt", ".pth", ".ckpt")):  # as load_decoder reads it
                raise SeegaanError(f"decoder {name!r} does not exist; give a checkpoint path or module:callable")
        else:
            name = getattr(spec, "identity", None) or getattr(spec, "__qualname__", type(spec).__name__)
        raise SeegaanError(
            f"device {str(device)!r} applies to a decoder given as a checkpoint path, which seegaan "
            f"loads; the decoder {name} is Python code or an object already loaded, which runs where "
            "its code put it: drop the device (or use --device cpu) or give the checkpoint path"
        )
    from seegaan.model._runtime import resolve_device  # deferred: seegaan.model._runtime imports torch

    dev = resolve_device(device)
    if dev.type not in ("cpu", "cuda"):
        raise SeegaanError(f"device {str(dev)!r} is not supported for decoding; use cpu, cuda, cuda:N or auto")
    return str(dev)


def load_decoder_on(spec, device="cpu") -> Decoder:
    """:func:`load_decoder` with ``device`` checked by :func:`decoder_device` (a checkpoint is loaded there;
    any other decoder only with ``"cpu"``, the default, and as :func:`load_decoder` gives it)."""
    device = decoder_device(spec, device)
    return load_decoder(spec, device=device) if is_checkpoint(spec) else load_decoder(spec)


def load_decoder(spec, **kwargs) -> Decoder:
    """Resolve a decoder spec (see module docstring) into a :class:`Decoder`.

    Extra keyword arguments go to :func:`seegaan.model.load_checkpoint_decoder` for checkpoints
    (``device``, ``noise_mode``, ``autocast_bf16``).
    """
    if isinstance(spec, Decoder):
        return spec
    if callable(spec):
        name = getattr(spec, "identity", None) or (
            f"{getattr(spec, '__module__', '?')}:{getattr(spec, '__qualname__', type(spec).__name__)}"
        )
        return Decoder(spec, str(name))
    if not isinstance(spec, (str, os.PathLike)):
        raise SeegaanError(f"a decoder must be a checkpoint path, 'module:callable' or a callable, not {type(spec)}")
    path = Path(spec)
    if path.is_file():
        try:
            dec = model.load_checkpoint_decoder(path, **kwargs)
        except SeegaanError:
            raise
        except Exception as exc:
            raise SeegaanError(
                f"{path} is not a usable seegaan checkpoint ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None
        return Decoder(dec, str(getattr(dec, "identity", f"{path} (sha256:{file_sha256(path)})")))
    if ":" in str(spec) and not str(spec).endswith((".pt", ".pth", ".ckpt")):
        fn, identity = _import_callable(str(spec))
        return Decoder(fn, identity)
    raise SeegaanError(f"decoder {str(spec)!r} does not exist; give a checkpoint path or module:callable")
