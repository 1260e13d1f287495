"""Process state the model code touches, kept in scope: the device, TF32, torch's RNG streams.

Nothing here changes a setting for longer than a ``with`` block: training enables TF32 and selects its
GPU only while it runs (:func:`cuda_settings`), and draws its random numbers from a stream of its own
(:class:`TorchStream`), so the caller's global RNG is left as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from seegaan._internal.errors import SeegaanError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None): the GPU when there is one, else the CPU; otherwise ``torch.device(device)``.

    Raises a one-line :class:`SeegaanError` for a string torch does not read as a device, a CUDA device when
    there is none, and a GPU index the machine does not have.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):  # torch.device("gpu")
        raise SeegaanError(
            f"unknown device {str(device)!r}; use cpu, cuda, cuda:N or auto (device= or --device)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SeegaanError(
            f"device {str(device)!r} was asked for but no CUDA GPU is available; use cpu (device='cpu' or --device cpu)"
        )
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise SeegaanError(
            f"device {str(device)!r} was asked for but this machine has {n} CUDA GPU(s) (cuda:0 .. cuda:{n - 1})"
        )
    return device


def _rng_devices(device: torch.device) -> list[torch.device]:
    """The accelerator RNGs to save and restore alongside the CPU one (fork_rng's ``devices``)."""
    return [device] if device.type == "cuda" else []


@contextlib.contextmanager
def cuda_settings(device: torch.device) -> Iterator[None]:
    """On a GPU: make ``device`` current and allow TF32 matmuls/convolutions inside the block; the previous
    current device and TF32 flags come back when the block ends or fails. A no-op for other devices."""
    if device.type != "cuda":
        yield
        return
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        with torch.cuda.device(device):
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


@contextlib.contextmanager
def global_rng_kept(device: torch.device) -> Iterator[None]:
    """Restore torch's global CPU RNG (and ``device``'s, on a GPU) when the block ends or fails."""
    with torch.random.fork_rng(devices=_rng_devices(device)):
        yield


class TorchStream:
    """A torch RNG stream of its own: the numbers ``torch.manual_seed(seed)`` would give on the CPU and on
    ``device``, drawn by the torch functions called inside :meth:`active` without touching the global
    stream outside it.

    ``state()`` / ``set_state()`` save and restore it as ``{"torch": cpu, "cuda": device}`` (the
    ``"cuda"`` entry on a GPU only).
    """

    def __init__(self, seed: int, device: torch.device):
        self.device = device
        self._cpu = torch.Generator().manual_seed(seed).get_state()
        self._accel = torch.Generator(device).manual_seed(seed).get_state() if device.type == "cuda" else None

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Make this stream torch's global one inside the block (the caller's comes back after it)."""
        with global_rng_kept(self.device):
            torch.set_rng_state(self._cpu)
            if self._accel is not None:
                torch.cuda.set_rng_state(self._accel, self.device)
            try:
                yield
            finally:
                self._cpu = torch.get_rng_state()
                if self._accel is not None:
                    self._accel = torch.cuda.get_rng_state(self.device)

    def state(self) -> dict:
        out = {"torch": self._cpu.clone()}
        if self._accel is not None:
            out["cuda"] = self._accel.clone()
        return out

    def set_state(self, state: dict) -> None:
        self._cpu = state["torch"].clone()
        if self._accel is not None and "cuda" in state:
            self._accel = state["cuda"].clone()
