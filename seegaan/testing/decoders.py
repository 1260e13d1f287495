"""Small deterministic decoders used by the tests (importable as ``seegaan.testing.decoders:linear8``)."""

from __future__ import annotations

import numpy as np


def make_linear(latent: int, size: int, seed: int = 1234):
    """A fixed linear decoder: images = tanh-free projection of w onto (size x size) pixels."""
    rng = np.random.default_rng(seed)
    A = (rng.standard_normal((latent, size * size)) / np.sqrt(latent)).astype(np.float32)

    def decode(w: np.ndarray) -> np.ndarray:
        return (np.asarray(w, np.float32) @ A).reshape(len(w), size, size)

    decode.A = A
    return decode


linear8 = make_linear(8, 8)  # D = 8 latents -> 8x8 images
linear16 = make_linear(16, 12)  # D = 16 latents -> 12x12 images


def wrong_shape(w):
    return np.zeros((len(w), 5))


def nan_images(w):
    return np.full((len(w), 4, 4), np.nan, np.float32)


def planted(w: np.ndarray) -> np.ndarray:
    """8 latents -> 8x8 images whose top half depends on w[:, 0] only and bottom half on w[:, 1:] only."""
    w = np.asarray(w, np.float32)
    rng = np.random.default_rng(99)
    top = (1.0 + rng.random((4, 8))).astype(np.float32)
    B = (rng.standard_normal((w.shape[1] - 1, 32)) / np.sqrt(w.shape[1] - 1)).astype(np.float32)
    out = np.empty((len(w), 8, 8), np.float32)
    out[:, :4] = np.tanh(0.2 * w[:, :1, None] * top[None])  # mildly nonlinear
    out[:, 4:] = np.tanh(w[:, 1:] @ B).reshape(len(w), 4, 8)
    return out


class _InterruptAfter:
    """Decodes like ``linear8`` but raises KeyboardInterrupt on its n-th call (simulated Ctrl-C)."""

    def __init__(self, n: int):
        self.n = n
        self.calls = 0

    def __call__(self, w):
        self.calls += 1
        if self.calls >= self.n:
            self.calls = 0
            raise KeyboardInterrupt
        return linear8(w)


interrupt_after_5 = _InterruptAfter(5)
