"""Decoders written for calibration checks (issue #22): plain NumPy callables, float32 ``(B, D) -> (B, H, W)``.

None of them was developed on: each is a fixed random function of its seed, so a calibration measured
with it is not tuned to it. Every product is accumulated in float64 over the inner dimension in a fixed
order, one row at a time in effect (:func:`_rows_times`), so an image's bits never depend on the other
rows of the call: ``batch_invariant = True`` is true for all of them (checked in
``tests``/``analyses`` by decoding a batch and its rows one by one).

``linear(D, size)``
    ``G(w) = w A + c``: the delta method is exact, only the statistics' own small-sample behaviour shows.
``saturated(D, size)``
    ``G(w) = tanh(g ⊙ (w A) + c)`` (up to a constant per pixel) with per-pixel gains ``g`` log-uniform over
    a 100-fold range (0.1 to 10) and offsets
    that put a share of the pixels deep into saturation: "background" pixels (|c| in 2..4) and a few
    high-gain "markers" (|c| in 3..5). Those pixels are flat but curved -- their first derivative is
    small and their second is not (``tanh'' / tanh' = -2 tanh``) -- the case where a linearisation of the
    decoder misses the term that decides the maximum over pixels.
``random_mlp(D, size, act="softplus"|"sigmoid")``
    a random 2-layer network ``G(w) = act(w A1 + b1) A2 + b2`` (hidden width 32, linear read-out).

``make(name, D, size, seed)`` builds any of them by name (``"linear"``, ``"saturated"``, ``"mlp-softplus"``,
``"mlp-sigmoid"``). Every decoder carries ``latent`` (D), ``size``, ``name`` and ``seed`` attributes.
"""

from __future__ import annotations

import numpy as np

#: names accepted by :func:`make`
NAMES = ("linear", "saturated", "mlp-softplus", "mlp-sigmoid")


def _rows_times(x: np.ndarray, A: np.ndarray) -> np.ndarray:
    """``x @ A`` in float64, accumulated over the inner index in a fixed order (no BLAS).

    Element (b, m) is ``sum_j x[b, j] * A[j, m]`` added j = 0, 1, ... whatever the number of rows, so a row's
    bits never depend on the batch it came in (BLAS picks kernels and blockings by shape).
    """
    x = np.asarray(x, np.float64)
    out = np.zeros((x.shape[0], A.shape[1]), np.float64)
    for j in range(A.shape[0]):
        out += x[:, j : j + 1] * A[j]
    return out


def _finish(decode, *, name: str, D: int, size: int, seed: int):
    decode.batch_invariant = True
    decode.latent = int(D)
    decode.size = int(size)
    decode.name = name
    decode.seed = int(seed)
    decode.__name__ = name.replace("-", "_")
    decode.__qualname__ = decode.__name__
    return decode


def _check(w: np.ndarray, D: int) -> np.ndarray:
    w = np.asarray(w, np.float32)
    if w.ndim != 2 or w.shape[1] != D:
        raise ValueError(f"expected latents of shape (B, {D}), got {w.shape}")
    return w


def linear(D: int, size: int, seed: int = 0):
    """``G(w) = w A + c``, ``A`` (D, size²) standard normal / sqrt(D), ``c`` small offsets (float32 out)."""
    rng = np.random.default_rng([int(seed), 101])
    A = rng.standard_normal((D, size * size)) / np.sqrt(D)
    c = 0.1 * rng.standard_normal(size * size)

    def decode(w):
        w = _check(w, D)
        return (_rows_times(w, A) + c).astype(np.float32).reshape(len(w), size, size)

    decode.A, decode.c = A, c
    return _finish(decode, name="linear", D=D, size=size, seed=seed)


def saturated(
    D: int,
    size: int,
    seed: int = 0,
    *,
    gain_range: tuple[float, float] = (0.1, 10.0),
    background: float = 0.4,
    markers: float = 0.08,
):
    """``G(w) = tanh(g ⊙ (w A) + c)``: pixels whose gains span ``gain_range`` (100-fold by default).

    ``A`` has unit-norm columns (each pixel sees one random direction of the latent space, of SD 1 under a
    standard normal latent), ``g`` is log-uniform over ``gain_range``. Offsets: "tissue" pixels
    ``c ~ N(0, 0.5²)``; a share ``background`` of the pixels ``|c| ~ U(2, 4)`` with a random sign (flat,
    curved: ``tanh'(3) = 0.0099``, ``tanh''(3) = -0.0197``); a share ``markers`` ``|c| ~ U(3, 5)`` with
    gains in the top tenth of the range (burned-in text and markers: almost constant, sharply curved).
    A saturated pixel is returned relative to its asymptote, ``tanh(z) - sign(c)`` (computed without
    cancellation): a constant per pixel, which no difference sees, so that float32 keeps the resolution of
    the small changes of a flat pixel instead of rounding them to the spacing of floats near ±1.
    """
    rng = np.random.default_rng([int(seed), 202])
    M = size * size
    A = rng.standard_normal((D, M))
    A /= np.linalg.norm(A, axis=0, keepdims=True)
    lo, hi = np.log(gain_range[0]), np.log(gain_range[1])
    g = np.exp(rng.uniform(lo, hi, M))
    kind = rng.choice(3, size=M, p=[1.0 - background - markers, background, markers])
    sign = rng.choice([-1.0, 1.0], size=M)
    c = np.where(
        kind == 0,
        0.5 * rng.standard_normal(M),
        np.where(kind == 1, sign * rng.uniform(2.0, 4.0, M), sign * rng.uniform(3.0, 5.0, M)),
    )
    g = np.where(kind == 2, np.exp(rng.uniform(hi - 0.1 * (hi - lo), hi, M)), g)
    Ag = A * g
    s = np.where(kind == 0, 0.0, np.sign(c))  # the asymptote a saturated pixel sits near

    def decode(w):
        w = _check(w, D)
        z = _rows_times(w, Ag) + c
        # tanh(z) - s, computed without cancellation: -s * 2 / (1 + exp(2 s z)) where s = ±1
        with np.errstate(over="ignore"):
            y = np.where(s == 0, np.tanh(z), -s * 2.0 / (1.0 + np.exp(2.0 * s * z)))
        return y.astype(np.float32).reshape(len(w), size, size)

    decode.A, decode.gain, decode.offset, decode.pixel_kind = A, g, c, kind
    return _finish(decode, name="saturated", D=D, size=size, seed=seed)


def _softplus(z):
    return np.logaddexp(0.0, z)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def random_mlp(D: int, size: int, act: str = "softplus", seed: int = 0, *, hidden: int = 32):
    """``G(w) = act(w A1 + b1) A2 + b2``: a random 2-layer network (``act`` softplus or sigmoid).

    ``A1`` standard normal scaled so that pre-activations have SD ~1.5 under a standard normal latent
    (both activations are then visibly curved over the latents' range), ``b1 ~ N(0, 0.5²)``, ``A2``
    standard normal / sqrt(hidden); the output is centred at ``w = 0``.
    """
    if act not in ("softplus", "sigmoid"):
        raise ValueError(f"act must be 'softplus' or 'sigmoid', not {act!r}")
    f = _softplus if act == "softplus" else _sigmoid
    rng = np.random.default_rng([int(seed), 303 if act == "softplus" else 304])
    A1 = 1.5 * rng.standard_normal((D, hidden)) / np.sqrt(D)
    b1 = 0.5 * rng.standard_normal(hidden)
    scale = 1.0 if act == "softplus" else 4.0  # a sigmoid's slope is at most 1/4
    A2 = scale * rng.standard_normal((hidden, size * size)) / np.sqrt(hidden)
    b2 = 0.1 * rng.standard_normal(size * size) - (f(b1)[None] @ A2)[0]

    def decode(w):
        w = _check(w, D)
        h = f(_rows_times(w, A1) + b1)
        return (_rows_times(h, A2) + b2).astype(np.float32).reshape(len(w), size, size)

    decode.A1, decode.b1, decode.A2, decode.b2 = A1, b1, A2, b2
    return _finish(decode, name=f"mlp-{act}", D=D, size=size, seed=seed)


def make(name: str, D: int, size: int, seed: int = 0):
    """A decoder by name: ``"linear"``, ``"saturated"``, ``"mlp-softplus"`` or ``"mlp-sigmoid"``."""
    if name == "linear":
        return linear(D, size, seed)
    if name == "saturated":
        return saturated(D, size, seed)
    if name in ("mlp-softplus", "mlp-sigmoid", "mlp"):
        return random_mlp(D, size, act="sigmoid" if name == "mlp-sigmoid" else "softplus", seed=seed)
    raise ValueError(f"unknown check decoder {name!r}; use one of {', '.join(NAMES)}")
