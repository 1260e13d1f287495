"""The null model of the sign-flip test, estimated once from the observed latents.

Under H0 the feature has no effect on the mean latent: the mean is one common vector (class-mean, linear,
GAM), or the covariates' linear model (with ``adjust``). The sign-flip null (:mod:`seegaan.stats.permutation`,
:func:`draw_signflips`) flips the residual latents of that model, one sign per patient, and puts them back
around the model's fit. Two things make it valid when the spread of the latents differs between the
groups or along the feature, and when the decoder is curved:

* the null model is fitted by **weighted** least squares, weights ``1/v̂_i`` (:func:`variance_weights`):
  with them the fitted centre is uncorrelated with every contrast the trajectory decodes, so keeping the
  centre fixed in every draw loses nothing (an unweighted centre, w̄, is correlated with the group
  difference when a small group is more variable, which made the null too narrow);
* every flipped cohort is **projected off the weighted null model again**, ``e* = (I − X0 C)(s ⊙ e)``, so
  its own weighted fit is the observed one: every null trajectory is decoded around the same centre as the
  observed trajectory, and only its offsets are flipped. Decoding the flipped trajectory for real keeps the
  decoder's curvature in the null (no linearisation).

Because every interpolator is a linear map ``L`` of the latents, a flipped trajectory is
``T + M ((s − 1) ⊙ e)`` with ``M = L − (L X0) C`` (K x n) and ``T`` the observed trajectory: the identity
draw (all signs +1) gives ``T`` bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NullModel", "null_model", "variance_weights", "weights_from_residuals", "patient_codes"]

#: the window of the running mean that smooths the residual variance along the feature (fraction of patients)
SMOOTH_WINDOW = 0.2


@dataclass(frozen=True, eq=False)
class NullModel:
    """The weighted null model of a sign-flip test (immutable; from :func:`null_model`).

    Attributes
    ----------
    weights : ndarray (n,)
        ``1/v̂_i`` of every analysed image.
    X0 : ndarray (n, q)
        The null model's design: a column of ones, and the centred covariates with ``adjust``.
    C : ndarray (q, n)
        ``(X0' Ω X0)^-1 X0' Ω``: the weighted fit's coefficients are ``C @ W``.
    residuals : ndarray (n, D)
        ``e = W − X0 C W``, the residual latents that are flipped.
    how : str
        How ``v̂`` was estimated: ``"class"`` (pooled within each class) or ``"smooth"`` (along the feature).
    """

    weights: np.ndarray
    X0: np.ndarray
    C: np.ndarray
    residuals: np.ndarray
    how: str

    def project(self, R: np.ndarray) -> np.ndarray:
        """``(I − X0 C) R`` for latents ``R`` (n, D): off the weighted null model."""
        return R - self.X0 @ (self.C @ R)

    def description(self) -> str:
        what = "one common mean" if self.X0.shape[1] == 1 else "the covariates' linear model"
        where = "pooled within each class" if self.how == "class" else "smoothed along the feature"
        return f"{what}, weighted by 1/v (residual variance {where})"


def patient_codes(patient_ids) -> np.ndarray:
    """Each image's patient as 0..P-1, patients in order of first appearance."""
    ids = np.asarray(patient_ids).astype(str)
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    rank = np.empty(first.size, np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse.ravel()]


def weights_from_residuals(
    r: np.ndarray, x: np.ndarray, patient_ids, how: str, *, window: float = SMOOTH_WINDOW
) -> np.ndarray:
    """WLS weights (n,) from leverage-corrected full-model residuals ``r`` (n, D).

    Pooled over the latents and summed per patient: ``V_p = |Σ_{i∈p} r_i|² / D``. Then

    ``"class"``: within each class g, ``V̂_g = Σ_{p∈g} V_p / n_g² · P_g/(P_g − 1)`` (the cluster-robust
        variance of the class's mean latent, n_g images in P_g patients); every image of g gets
        ``1/(n_g V̂_g)`` -- with one image per patient, ``1/s²_g``. With these weights the weighted common
        mean is uncorrelated with the difference of the class means.
    ``"smooth"``: ``V_p / m_p`` (per image of the patient, m_p images) smoothed along the rank of the
        patient's mean feature value by a running mean over ``window`` of the patients; weight 1/smooth.
        Patients with tied feature values share their mean (so the order of the rows does not matter).

    A variance of 0 (a latent that does not vary) is floored at 1e-12 of the largest.
    """
    x = np.asarray(x, np.float64)
    n, D = r.shape
    codes = patient_codes(patient_ids)
    P = int(codes.max()) + 1
    E = np.zeros((P, D))
    np.add.at(E, codes, r)
    V = (E * E).sum(axis=1) / D
    m = np.bincount(codes, minlength=P).astype(np.float64)
    if how == "class":
        v = np.empty(n)
        for g in np.unique(x):
            pats = np.unique(codes[x == g])
            n_g, P_g = m[pats].sum(), pats.size
            V_g = V[pats].sum() / n_g**2 * (P_g / (P_g - 1) if P_g > 1 else 1.0)
            v[x == g] = n_g * V_g
    elif how == "smooth":
        xp = np.zeros(P)
        np.add.at(xp, codes, x)
        xp /= m
        order = np.argsort(xp, kind="stable")
        # patients with tied feature values are interchangeable: each enters with its tie group's mean and
        # leaves with the group's mean, so the weights do not depend on the order of the rows
        _, tie, tie_size = np.unique(xp[order], return_inverse=True, return_counts=True)
        per_image = (np.bincount(tie, V[order] / m[order]) / tie_size)[tie]
        half = max(2, int(round(window * P / 2)))
        c = np.concatenate([[0.0], np.cumsum(per_image)])
        idx = np.arange(P)
        lo, hi = np.maximum(idx - half, 0), np.minimum(idx + half + 1, P)
        smooth = np.empty(P)
        smooth[order] = (np.bincount(tie, (c[hi] - c[lo]) / (hi - lo)) / tie_size)[tie]
        v = smooth[codes]
    else:
        raise ValueError(f"unknown variance pooling {how!r}")
    top = float(v.max()) if v.size else 0.0
    return 1.0 / np.maximum(v, 1e-12 * top if top > 0 else 1.0)


def variance_weights(X: np.ndarray, S: np.ndarray, W: np.ndarray, x: np.ndarray, patient_ids, how: str) -> np.ndarray:
    """``1/v̂_i`` from the full model's leverage-corrected residuals ``r_i / sqrt(1 − h_i)``.

    ``X`` (n, p) and ``S`` (p, p) are the interpolation's own (penalised) design and penalty: the fitted
    latents ``X (X'X + S)^-1 X' W`` and the leverages ``h_i``, without forming the n x n hat matrix.
    """
    A = np.linalg.solve(X.T @ X + S, X.T)  # (p, n)
    fitted = X @ (A @ W)
    h = np.clip(np.einsum("ip,pi->i", X, A), 0.0, 0.99)
    r = (W - fitted) / np.sqrt(1.0 - h)[:, None]
    return weights_from_residuals(r, x, patient_ids, how)


def null_model(
    X: np.ndarray, S: np.ndarray, W: np.ndarray, x: np.ndarray, patient_ids, Z: np.ndarray | None, how: str
) -> NullModel:
    """The weighted null model of a trajectory fitted with design ``X``, penalty ``S`` and covariates ``Z``."""
    n = W.shape[0]
    weights = variance_weights(X, S, W, x, patient_ids, how)
    X0 = np.ones((n, 1)) if Z is None or Z.shape[1] == 0 else np.column_stack([np.ones(n), Z])
    Xw = X0 * weights[:, None]
    C = np.linalg.solve(X0.T @ Xw, Xw.T)
    return NullModel(weights=weights, X0=X0, C=C, residuals=W - X0 @ (C @ W), how=how)
