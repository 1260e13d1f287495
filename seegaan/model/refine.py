"""Sharper latents: refine each encoded latent by optimisation from E(x) (``seegaan encode --refine N``).

The encoder's latent ``w = E(x)`` is a fast guess; the CNN explained later reads ``G(w)``, and on the demo
the CNN moves by 2.6 times its own error between an image and its reconstruction (docs/explain.md). The
refinement minimises the reconstruction error of each image,

    L(w) = mean((G(w) − x)²)      (over the pixels of that image)

by Adam from ``E(x)`` for ``steps`` steps (learning rate ``lr``, in latent units), through the checkpoint's
EMA generator with its weights frozen; the latent with the lowest loss seen is kept, so the refined
reconstruction error is never above the encoder's. Each image is optimised on its own (the loss is summed
over the batch, Adam is elementwise), in batches of a fixed size padded like decoding, so an image's result
does not depend on the other images of its batch; the same inputs give the same bits on the same machine.
No perceptual term is used (it would need pretrained weights the package does not download).
"""

from __future__ import annotations

import numpy as np
import torch

from seegaan._internal.errors import SeegaanError

__all__ = ["refine_latents", "REFINE_LR"]

#: Adam's learning rate in latent units
REFINE_LR = 0.05


def refine_latents(
    decoder, images: np.ndarray, w0: np.ndarray, *, steps: int, lr: float = REFINE_LR, progress=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refined latents of ``images`` (B, C, H, W) in [-1, 1] from ``w0`` (B, D).

    ``decoder`` is a :class:`seegaan.model.inference.CheckpointDecoder` (its ``decode_tensor``). Returns
    ``(w, loss_before, loss_after)``: the latents (float32) and each image's mean squared reconstruction
    error at ``w0`` and at the kept latent.
    """
    if not (isinstance(steps, (int, np.integer)) and steps >= 1):
        raise SeegaanError(f"--refine must be a whole number of at least 1 steps, not {steps!r}")
    if not (np.isfinite(lr) and lr > 0):
        raise SeegaanError(f"the refinement learning rate must be positive, not {lr!r}")
    decode = getattr(decoder, "decode_tensor", None)
    if decode is None:
        raise SeegaanError("--refine needs a seegaan checkpoint's generator (a differentiable decoder)")
    x = torch.from_numpy(np.ascontiguousarray(images, np.float32))
    chunk = int(getattr(decoder, "_chunk", len(x)) or len(x))
    out = np.empty(np.shape(w0), np.float32)
    before = np.empty(len(x), np.float64)
    after = np.empty(len(x), np.float64)
    for start in range(0, len(x), chunk):
        part = slice(start, min(start + chunk, len(x)))
        n = part.stop - part.start
        target = torch.zeros((chunk, *x.shape[1:]), dtype=torch.float32)
        target[:n] = x[part]
        init = np.zeros((chunk, np.shape(w0)[1]), np.float32)
        init[:n] = np.asarray(w0, np.float32)[part]
        w = torch.tensor(init, requires_grad=True)
        opt = torch.optim.Adam([w], lr=float(lr))
        best_loss = torch.full((chunk,), float("inf"))
        best_w = w.detach().clone()
        first = None
        for _ in range(int(steps) + 1):
            img = decode(w)
            per_image = ((img - target) ** 2).flatten(1).mean(dim=1)
            with torch.no_grad():
                if first is None:
                    first = per_image.detach().clone()
                better = per_image < best_loss
                best_loss = torch.where(better, per_image.detach(), best_loss)
                best_w[better] = w.detach()[better]
            if _ == int(steps):
                break
            opt.zero_grad()
            per_image.sum().backward()
            opt.step()
            if progress is not None:
                progress(n)
        out[part] = best_w[:n].numpy()
        before[part] = first[:n].double().numpy()
        after[part] = best_loss[:n].double().numpy()
    return out, before, after
