"""Small deterministic decoders used by the tests (importable as ``tests._decoders:linear8``)."""

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


linear8 = make_linear(8, 8)          # D = 8 latents -> 8x8 images
linear16 = make_linear(16, 12)       # D = 16 latents -> 12x12 images


def wrong_shape(w):
    return np.zeros((len(w), 5))


def nan_images(w):
    return np.full((len(w), 4, 4), np.nan, np.float32)
