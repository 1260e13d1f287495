"""CNN models to explain: anything that maps images (B, 1, H, W) on the decoder's [-1, 1] scale to (B,) numbers.

A model is given as

- a **seegaan CNN file** (:func:`seegaan.explain.smallcnn.save_cnn`, ``seegaan-stats train-cnn``, the
  demo's :func:`seegaan.demo.cnn_path`), loaded as a plain :class:`~seegaan.explain.smallcnn.SmallCNN`
  module (Grad-CAM works on it);
- a **TorchScript** file (``torch.jit.save(torch.jit.script(net), "net.pt")``), loaded with
  :func:`torch.jit.load` on the CPU (Grad-CAM needs a plain module: use ``module:attr`` or a seegaan CNN
  file);
- ``"module:attr"`` naming a torch ``nn.Module`` instance, an ``nn.Module`` class or zero-argument
  factory returning one (it must load its own weights), or a plain function ``f(images) -> scores``
  that takes a float32 torch tensor (B, 1, H, W) and returns a tensor or array of B numbers;
- a Python ``nn.Module`` or function, or a :class:`Model` object.

The contract: the model receives float32 images (B, C, H', W') after the optional resize
(``input_size``, bilinear) and rescaling (``input_scale``), and returns one finite number per image, of
shape (B,) or (B, 1) -- a logit, a probability or a regression value (select the output of a multi-output
network in a wrapper). :class:`Model` puts modules in eval mode and predicts without gradients.

Input scales:

``minus1-1``
    the decoder's own scale, unchanged (C = 1).
``0-1``
    ``(x + 1) / 2`` (C = 1).
``imagenet``
    ``(x + 1) / 2``, repeated to three channels and normalised with the ImageNet mean
    (0.485, 0.456, 0.406) and SD (0.229, 0.224, 0.225) (C = 3), for ImageNet-pretrained backbones.

The identity of a model is its path and file sha256 (TorchScript), or ``module:attr`` with the sha256 of
the module's source file (as for decoders, :mod:`seegaan.decoder`); for an ``nn.Module`` it also names
the sha256 of its parameters and buffers (``weights sha256:...``), so a factory that loads other
weights is told apart.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from seegaan._internal.errors import SeegaanError
from seegaan._internal.io import file_sha256
from seegaan.decoder import _import_callable

InputScale = Literal["minus1-1", "0-1", "imagenet"]
INPUT_SCALES: tuple[str, ...] = get_args(InputScale)

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_SD = (0.229, 0.224, 0.225)
_SHA_RE = re.compile(r"sha256:([0-9a-f]{64})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def weights_sha256(module) -> str:
    """Hex sha256 of a torch module's parameters and buffers (names, dtypes, shapes and bytes)."""
    import torch  # deferred: torch (heavy)

    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(tensor.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True, eq=False)
class Model:
    """A validated CNN: ``model(images)`` returns float64 predictions (B,).

    Attributes
    ----------
    fn : callable
        The network (an ``nn.Module``, possibly TorchScript) or plain function, fed torch tensors.
    identity : str
        Where it came from (path or module:attr) with its sha256.
    sha256 : str
        Hex sha256 of the TorchScript file, or of the module's source file ("" when unknown).
    input_size : (int, int) or None
        (H', W') the images are resized to before the network (bilinear); None keeps their size.
    input_scale : {"minus1-1", "0-1", "imagenet"}
        How [-1, 1] images are rescaled before the network (module docstring).
    device : str
        Torch device the network runs on.
    """

    fn: Callable
    identity: str
    sha256: str
    input_size: tuple[int, int] | None = None
    input_scale: str = "minus1-1"
    device: str = "cpu"

    @property
    def module(self):
        """The torch ``nn.Module`` (None for a plain function)."""
        import torch  # deferred: torch (heavy)

        return self.fn if isinstance(self.fn, torch.nn.Module) else None

    @property
    def is_torchscript(self) -> bool:
        import torch  # deferred: torch (heavy)

        return isinstance(self.fn, torch.jit.ScriptModule)

    # ---- differentiable pieces (used by the attribution maps) ----------------------------------
    def prepare(self, images):
        """Resize and rescale a float32 tensor (B, 1, H, W) in [-1, 1] to the network's input."""
        import torch  # deferred: torch (heavy)
        import torch.nn.functional as F  # deferred: torch (heavy)

        x = images
        if self.input_size is not None and tuple(x.shape[-2:]) != tuple(self.input_size):
            x = F.interpolate(x, size=tuple(self.input_size), mode="bilinear", align_corners=False)
        if self.input_scale == "0-1":
            x = (x + 1.0) / 2.0
        elif self.input_scale == "imagenet":
            mean = torch.tensor(_IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            sd = torch.tensor(_IMAGENET_SD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = ((x + 1.0) / 2.0).expand(-1, 3, -1, -1)
            x = (x - mean) / sd
        return x

    def forward(self, images):
        """Predictions (B,) as a torch tensor, with gradients when the input requires them."""
        import torch  # deferred: torch (heavy)

        n = images.shape[0]
        try:
            out = self.fn(self.prepare(images))
        except SeegaanError:
            raise
        except Exception as exc:
            raise SeegaanError(
                f"model {self.identity} failed on images of shape {tuple(images.shape)} "
                f"({_first_line(exc)}); check --input-size and --input-scale"
            ) from None
        if not isinstance(out, torch.Tensor):
            try:
                out = torch.as_tensor(np.asarray(out, dtype=np.float64))
            except (TypeError, ValueError):
                raise SeegaanError(
                    f"model {self.identity} returned {type(out).__name__}, not numbers; "
                    f"it must return one number per image, shape ({n},)"
                ) from None
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.ndim != 1 or out.shape[0] != n:
            raise SeegaanError(
                f"model {self.identity} returned shape {tuple(out.shape)} for {n} images; it must "
                f"return one number per image, shape ({n},) or ({n}, 1) (select the logit or "
                "probability of a multi-output network in a wrapper)"
            )
        return out

    # ---- prediction -------------------------------------------------------------------------
    def __call__(self, images) -> np.ndarray:
        """float64 predictions (B,) for float32 images (B, 1, H, W) or (B, H, W) in [-1, 1] (no gradients)."""
        import torch  # deferred: torch (heavy)

        x = (
            images
            if isinstance(images, torch.Tensor)
            else torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        )
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or x.shape[1] != 1:
            raise SeegaanError(f"images for a model must have shape (B, 1, H, W), got {tuple(x.shape)}")
        x = x.to(device=self.device, dtype=torch.float32)
        with torch.no_grad():
            out = self.forward(x)
        values = out.detach().cpu().to(torch.float64).numpy()
        if not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).sum())
            raise SeegaanError(
                f"model {self.identity} returned NaN or inf for {bad} of {values.size} images; "
                "check its weights and --input-scale"
            )
        return values

    def check(self, height: int, width: int) -> None:
        """Run the model on two mid-grey images of size ``height`` x ``width``: refuse it (one line) when it
        fails, returns the wrong shape or NaN, before any expensive work."""
        self(np.zeros((2, 1, int(height), int(width)), np.float32))


def _parse_size(input_size) -> tuple[int, int] | None:
    if input_size is None:
        return None
    if isinstance(input_size, str):
        parts = [p for p in re.split(r"[x,X ]+", input_size.strip()) if p]
    else:
        parts = list(np.atleast_1d(input_size))
    try:
        size = tuple(int(p) for p in parts)
        ok = all(float(p) == int(p) for p in parts)
    except (TypeError, ValueError):
        size, ok = (), False
    if len(size) == 1:
        size = size * 2
    if not ok or len(size) != 2 or min(size) < 1:
        raise SeegaanError(f"--input-size must be a positive integer S or H,W, not {input_size!r}")
    return size  # type: ignore[return-value]


def _load_torchscript(path: Path, device: str):
    import torch  # deferred: torch (heavy)

    try:
        with warnings.catch_warnings():  # torch >= 2.9 deprecates TorchScript in favour of torch.export
            warnings.filterwarnings(
                "ignore", message=r".*torch\.jit\.load.* is deprecated", category=DeprecationWarning
            )
            return torch.jit.load(str(path), map_location=device)
    except Exception as exc:
        raise SeegaanError(
            f"{path} is not a loadable TorchScript model ({_first_line(exc)}); save one with "
            "torch.jit.save(torch.jit.script(net), path) or give module:attr"
        ) from None


def _resolve_object(obj, spec: str):
    """An nn.Module instance, a module made by a zero-argument class/factory, or a plain function."""
    import torch  # deferred: torch (heavy)

    if isinstance(obj, torch.nn.Module):
        return obj
    factory = isinstance(obj, type) and issubclass(obj, torch.nn.Module)
    if not factory:
        try:
            params = inspect.signature(obj).parameters.values()
            factory = not any(
                p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params
            )
        except (TypeError, ValueError):
            factory = False
    if not factory:
        return obj  # a plain function images -> scores
    try:
        made = obj()
    except Exception as exc:
        raise SeegaanError(
            f"model factory {spec} failed ({_first_line(exc)}); it must build the network "
            "(with its weights) without arguments"
        ) from None
    if not callable(made):
        raise SeegaanError(f"model factory {spec} returned {type(made).__name__}, not an nn.Module or function")
    return made


def load_model(spec, *, input_size=None, input_scale: InputScale = "minus1-1", device: str = "cpu") -> Model:
    """Resolve a model spec (module docstring) into a :class:`Model`.

    Parameters
    ----------
    spec : path, "module:attr", nn.Module, callable or Model
        The CNN (a Model is returned with the given input settings applied when they differ from None /
        the defaults).
    input_size : int, (H, W), "S" or "H,W", optional
        Resize the images (bilinear) to this size before the model; default: their own size.
    input_scale : {"minus1-1", "0-1", "imagenet"}
        Rescale the [-1, 1] images before the model.
    device : str
        Torch device for the model (``"cpu"``, ``"cuda"``).

    Returns
    -------
    Model
        In eval mode; predictions run without gradients.

    Raises
    ------
    SeegaanError
        When the spec cannot be loaded or the settings are invalid (one line).
    """
    if input_scale not in INPUT_SCALES:
        raise SeegaanError(f"unknown input scale {input_scale!r}; use {', '.join(INPUT_SCALES)}")
    size = _parse_size(input_size)
    if isinstance(spec, Model):
        if size is None and input_scale == "minus1-1":
            return spec
        return Model(spec.fn, spec.identity, spec.sha256, size or spec.input_size, input_scale, spec.device)
    import torch  # deferred: torch (heavy)

    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if path.is_file():
            from seegaan.explain import smallcnn  # deferred: torch (heavy)

            fn = smallcnn.load_cnn(path, device)[0] if smallcnn.is_cnn_file(path) else _load_torchscript(path, device)
            sha = file_sha256(path)
            identity = f"{path} (sha256:{sha})"
        elif ":" in str(spec) and path.suffix.lower() not in (".pt", ".pth", ".ts", ".jit"):
            obj, identity = _import_callable(str(spec), what="model", alternative="a TorchScript file")
            fn = _resolve_object(obj, str(spec))
            m = _SHA_RE.search(identity)
            sha = m.group(1) if m else ""
        else:
            raise SeegaanError(f"model {str(spec)!r} does not exist; give a TorchScript file or module:attr")
    elif callable(spec):
        sha = ""
        identity = f"{getattr(spec, '__module__', '?')}:{getattr(spec, '__qualname__', type(spec).__name__)}"
        fn = _resolve_object(spec, identity)
    else:
        raise SeegaanError(
            f"a model must be a TorchScript path, 'module:attr' or a callable, not {type(spec).__name__}"
        )
    if isinstance(fn, torch.nn.Module):
        try:
            fn = fn.to(device).eval()
        except Exception as exc:
            raise SeegaanError(f"cannot move model {identity} to {device} ({_first_line(exc)})") from None
        identity = f"{identity}, weights sha256:{weights_sha256(fn)}"
    return Model(fn, identity, sha, size, input_scale, device)
