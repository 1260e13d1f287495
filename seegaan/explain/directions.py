"""Directions the CNN itself chooses: along its gradient through G, and the smallest change that reaches a target.

The paper's local direction (``direction="mean"``, :func:`seegaan.explain.counterfactual.local_direction`)
answers *what goes with the prediction here?*: it moves the image towards the mean latent of the cohort's
images with the desired answer, so whatever co-varies with the answer in the cohort moves too. The two
directions here answer *what does the CNN use?*: they look only at the CNN's response to the decoded image.

``gradient`` (Latent-Shift style, followed along the path)
    From ``w_E``, step along the unit gradient of ``CNN(G(w))`` with respect to ``w`` (towards the target),
    re-evaluating the gradient at every waypoint: a piecewise-linear path whose λ is the distance travelled
    in latent space in units of the cohort's latent spread (the RMS distance of a latent from the cohort's
    mean latent). λ* is solved on that path.
``minimal``
    Minimise ``(CNN(G(w)) − target)² + proximity · mean((G(w) − G(w_E))²)`` over ``w`` from ``w_E`` (Adam,
    a fixed number of steps): the smallest image change, in mean squared pixels, that a weight of
    ``proximity`` trades against the squared error of the prediction. The path is the straight line from
    ``w_E`` through the optimum (λ in the same units of latent spread), on which λ* is solved.

Gradients come from autograd when the decoder exposes a differentiable torch path (a seegaan checkpoint
does: ``decode_tensor``) and the model's forward pass is torch; otherwise from central differences in latent
space (2 D decodes per gradient; the result records which).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seegaan._internal.errors import SeegaanError

__all__ = ["DIRECTIONS", "LatentPath", "latent_scale", "gradient_path", "minimal_path"]

#: the directions of ``explain(direction=...)``
DIRECTIONS = ("mean", "gradient", "minimal")

#: Adam steps and learning rate (in units of the latent spread) of the ``minimal`` direction
MINIMAL_STEPS = 150
MINIMAL_LR = 0.02


@dataclass(frozen=True, eq=False)
class LatentPath:
    """A piecewise-linear latent path from ``w_E``: ``w(λ) = w_E + offsets interpolated at λ``.

    Attributes
    ----------
    knots : ndarray (m,)
        λ at the waypoints (increasing, the first 0).
    offsets : ndarray (m, D)
        ``w(knots[k]) − w_E``; beyond the last knot the path continues along its last segment.
    kind : str
        ``"gradient"`` or ``"minimal"``.
    basis : str
        What chose the path, in words.
    gradients : str
        ``"autograd"`` or ``"central differences"``.
    """

    knots: np.ndarray
    offsets: np.ndarray
    kind: str
    basis: str
    gradients: str

    def latents(self, w0: np.ndarray, lambdas) -> np.ndarray:
        """``w(λ)`` for each λ (len(lambdas), D), float64."""
        lam = np.atleast_1d(np.asarray(lambdas, dtype=np.float64))
        k, off = self.knots, self.offsets
        seg = np.clip(np.searchsorted(k, lam, side="right") - 1, 0, k.size - 2)
        t = (lam - k[seg]) / (k[seg + 1] - k[seg])
        return np.asarray(w0, np.float64)[None] + off[seg] + t[:, None] * (off[seg + 1] - off[seg])

    def describe(self) -> str:
        return f"{self.basis} ({self.gradients})"


def latent_scale(w: np.ndarray) -> float:
    """The cohort's latent spread: the RMS distance of a latent from the cohort's mean latent."""
    w = np.asarray(w, np.float64)
    scale = float(np.sqrt(((w - w.mean(axis=0)) ** 2).sum(axis=1).mean()))
    if not scale > 0:
        raise SeegaanError("the cohort's latents do not vary; there is no latent scale to step in")
    return scale


# --------------------------------------------------------------------------------------------------
# value and gradient of a function of (image, prediction) with respect to the latent
# --------------------------------------------------------------------------------------------------
def _torch_path(decoder, model):
    """``(decode_tensor, True)`` when G and the CNN can be differentiated by torch, else ``(None, False)``."""
    decode = getattr(decoder.fn, "decode_tensor", None)
    return (decode, True) if callable(decode) else (None, False)


def _autograd(decode, model, w: np.ndarray, objective):
    import torch  # deferred: torch (heavy)

    x = torch.tensor(np.asarray(w, np.float32)[None], requires_grad=True)
    img = decode(x)
    if img.ndim == 3:
        img = img[:, None]
    pred = model.forward(img.to(device=getattr(model, "device", "cpu"), dtype=torch.float32))
    if not (isinstance(pred, torch.Tensor) and pred.requires_grad):
        return None
    value = objective(img[0, 0], pred[0])
    (grad,) = torch.autograd.grad(value, x)
    return float(value.detach()), float(pred[0].detach()), grad[0].detach().to(torch.float64).numpy()


def _differences(decoder, model, w: np.ndarray, objective, h: float, batch_size: int):
    """Central differences of ``objective`` in every latent coordinate (2 D + 1 decodes)."""
    D = w.size
    rows = np.concatenate([w[None], w[None] + h * np.eye(D), w[None] - h * np.eye(D)])
    values, preds = np.empty(len(rows)), np.empty(len(rows))
    for start in range(0, len(rows), batch_size):
        img = decoder(rows[start : start + batch_size])
        p = model(img[:, None])
        for j in range(len(img)):
            values[start + j] = float(objective(img[j].astype(np.float64), float(p[j])))
            preds[start + j] = float(p[j])
    return values[0], preds[0], (values[1 : D + 1] - values[D + 1 :]) / (2 * h)


class _Gradients:
    """``value, prediction, gradient = grads(w, objective)``: autograd when possible, else differences."""

    def __init__(self, decoder, model, scale: float, batch_size: int):
        self.decoder, self.model, self.h, self.batch_size = decoder, model, 1e-3 * scale, batch_size
        self.decode, self.torch = _torch_path(decoder, model)
        self.used = "autograd" if self.torch else "central differences"

    def __call__(self, w: np.ndarray, objective):
        if self.torch:
            out = _autograd(self.decode, self.model, w, objective)
            if out is not None:
                return out
            self.torch, self.used = False, "central differences"  # the model's forward is not differentiable
        return _differences(self.decoder, self.model, w, objective, self.h, self.batch_size)


# --------------------------------------------------------------------------------------------------
# the two paths
# --------------------------------------------------------------------------------------------------
def gradient_path(
    decoder,
    model,
    w0: np.ndarray,
    *,
    target: float,
    prediction: float,
    scale: float,
    hi: float,
    n_knots: int,
    batch_size: int = 32,
    progress=None,
) -> LatentPath:
    """The gradient path from ``w0`` to λ = ``hi`` (``n_knots`` waypoints), towards ``target``."""
    grads = _Gradients(decoder, model, scale, batch_size)
    sign = 1.0 if target > prediction else -1.0
    knots = np.linspace(0.0, float(hi), int(n_knots))
    offsets = np.zeros((knots.size, np.size(w0)))
    w = np.asarray(w0, np.float64).copy()
    for k in range(1, knots.size):
        _, _, g = grads(w, lambda img, pred: pred)
        norm = float(np.linalg.norm(g))
        if not (np.isfinite(norm) and norm > 0):
            if k == 1:
                raise SeegaanError(
                    "the CNN's gradient in latent space is zero at the image's latent: the model does not "
                    "respond to the decoded image here; use --direction mean or minimal"
                )
            offsets[k:] = offsets[k - 1]  # flat from here on: the path stops
            break
        w = w + sign * (knots[k] - knots[k - 1]) * scale * g / norm
        offsets[k] = w - w0
        if progress is not None:
            progress(1)
    return LatentPath(
        knots=knots,
        offsets=offsets,
        kind="gradient",
        basis="the CNN's gradient through G, followed along the path",
        gradients=grads.used,
    )


def minimal_path(
    decoder,
    model,
    w0: np.ndarray,
    *,
    target: float,
    reconstruction: np.ndarray,
    scale: float,
    proximity: float,
    steps: int = MINIMAL_STEPS,
    batch_size: int = 32,
    progress=None,
) -> tuple[LatentPath, dict]:
    """The straight path from ``w0`` through the minimiser of the minimal-change objective.

    Returns the path (λ = 1 at the optimum) and facts about the optimisation (its prediction, the mean
    squared pixel change, the steps).
    """
    ref64 = np.asarray(reconstruction, np.float64)
    ref32 = None

    def objective(img, pred):
        nonlocal ref32
        if hasattr(img, "detach"):  # torch
            import torch  # deferred: torch (heavy)

            if ref32 is None:
                ref32 = torch.from_numpy(np.asarray(reconstruction, np.float32))
            return (pred - target) ** 2 + proximity * ((img - ref32) ** 2).mean()
        return (pred - target) ** 2 + proximity * float(((img - ref64) ** 2).mean())

    grads = _Gradients(decoder, model, scale, batch_size)
    lr = MINIMAL_LR * scale
    w = np.asarray(w0, np.float64).copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    b1, b2, eps = 0.9, 0.999, 1e-12
    best = (np.inf, w.copy(), np.nan)
    for t in range(1, int(steps) + 1):
        value, pred, g = grads(w, objective)
        if value < best[0]:
            best = (value, w.copy(), pred)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps * scale)
        if progress is not None:
            progress(1)
    value, w_best, pred_best = best
    end = (w_best - w0) / scale  # offset per unit λ (λ in units of the latent spread)
    length = float(np.linalg.norm(end))
    if not length > 0:
        raise SeegaanError(
            "the minimal-change optimisation did not move the latent (the CNN's gradient is zero there); "
            "use --direction mean, or a smaller --proximity"
        )
    offsets = np.stack([np.zeros_like(end), end / length * scale])
    facts = {
        "minimal_prediction": float(pred_best),
        "minimal_lambda": length,
        "minimal_objective": float(value),
        "minimal_steps": int(steps),
    }
    path = LatentPath(
        knots=np.array([0.0, 1.0]),
        offsets=offsets,
        kind="minimal",
        basis=f"the smallest change that reaches the target (proximity {proximity:g})",
        gradients=grads.used,
    )
    return path, facts
