"""The fitted trajectory: :class:`InterpolationResult`, its linear map and its null trajectories.

A permutation (or any other null draw) of the analysed images changes only which latents -- or which
feature values -- enter the same fit: :meth:`InterpolationResult.null_trajectories` recomputes the
trajectory for every row of a plan (``image``/``whole-block``: latents or Freedman–Lane residuals
shuffled through the same linear map; ``patient-label``: the map rebuilt from permuted feature values),
each row on its own so its bits never depend on the batch. Linear trajectories may pivot their null lines
at x0 (:func:`pivot_x0`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from threadpoolctl import ThreadpoolController

from seegaan._internal.errors import SeegaanError
from seegaan._internal.summary import Summary
from seegaan.interpolation.gam import penalised_predictions
from seegaan.interpolation.methods import Method, apply
from seegaan.stats.standard_errors import feature_per_latent

__all__ = ["InterpolationResult", "pivot_x0"]


@dataclass(frozen=True, eq=False)
class InterpolationResult:
    """A fitted trajectory through latent space (immutable).

    Attributes
    ----------
    feature, method, transform : str
    levels : tuple of str or None
        (from, to) levels of a class-mean trajectory.
    grid : ndarray, shape (K,)
        Feature values of the steps in the feature's own units (class-mean: fraction from A to B).
    trajectory : ndarray, shape (K, D)
        The latent trajectory (float64).
    L : ndarray, shape (K, n) or None
        The linear map from the analysed latents to the trajectory (None for per-dimension GCV λ).
    lam : float, ndarray of shape (D,), or None
        GAM smoothing parameter(s).
    image_index : ndarray of int
        Positions (in the cohort) of the images used.
    n_missing : int
        Images left out because their feature (or a covariate) was missing.
    covariates : tuple of str
    edf : float, ndarray of shape (D,), or None
        GAM only: effective degrees of freedom, the trace of the hat matrix ``X (X'X + S)^-1 X'`` of the
        fitted smoother (intercept and covariate columns included, as pyGAM's ``statistics_['edof']``);
        one value per latent dimension with ``gam_lam="auto"``.
    notes : tuple of str
        Choices made for the user and warnings (default levels, extrapolation, a GAM too flexible for
        the number of images), for the CLI to print.
    """

    feature: str
    method: str
    transform: str
    levels: tuple[str, str] | None
    grid: np.ndarray
    trajectory: np.ndarray
    L: np.ndarray | None
    lam: float | np.ndarray | None
    image_index: np.ndarray
    n_missing: int
    covariates: tuple[str, ...]
    n_splines: int | None
    cohort: xr.Dataset = field(repr=False)
    # internals used to draw the permutation null
    _spec: Method = field(repr=False)
    _x: np.ndarray = field(repr=False)
    _Z: np.ndarray | None = field(repr=False)
    _op: Any = field(repr=False)  # L (K x n) or a GCV solver with .trajectory and .prepare
    notes: tuple[str, ...] = ()  # choices made for the user (e.g. default levels), for the CLI to print
    edf: float | np.ndarray | None = None

    # ---- views ------------------------------------------------------------------------------
    @property
    def n_steps(self) -> int:
        return int(self.grid.size)

    @property
    def latents(self) -> np.ndarray:
        """The analysed latents (n x D, float64)."""
        return self.cohort["w"].values[self.image_index].astype(np.float64)

    @property
    def patient_ids(self) -> np.ndarray:
        return np.asarray(self.cohort["patient_id"].values[self.image_index]).astype(str)

    @property
    def feature_codes(self) -> np.ndarray:
        """Feature values of the analysed images as the maps see them (transformed or 0/1 codes)."""
        return self._x

    def to_dataarray(self) -> xr.DataArray:
        """The trajectory as a DataArray with dims ("step", "latent") and a feature_value coordinate."""
        return xr.DataArray(
            self.trajectory.astype(np.float32),
            dims=("step", "latent"),
            coords={"feature_value": ("step", self.grid)},
            name="w",
            attrs={"feature": self.feature, "method": self.method},
        )

    def summary(self) -> Summary:
        lines = [
            ("feature", self.feature),
            ("method", self.method),
            ("transform", self.transform),
            ("images used", str(self.image_index.size)),
            ("images left out (missing)", str(self.n_missing)),
            ("patients", str(len(np.unique(self.patient_ids)))),
            ("steps", str(self.n_steps)),
            ("grid", ", ".join(f"{g:.4g}" for g in self.grid)),
        ]
        if self.levels:
            lines.append(("levels", f"{self.levels[0]} -> {self.levels[1]}"))
        if self.n_splines is not None:
            lines.append(("splines", str(self.n_splines)))
        if self.lam is not None:
            if isinstance(self.lam, np.ndarray):
                vals, counts = np.unique(self.lam, return_counts=True)
                lines.append(("lambda (GCV per dim)", ", ".join(f"{v:g}: {c}" for v, c in zip(vals, counts))))
            else:
                lines.append(("lambda", f"{self.lam:g}"))
        if isinstance(self.edf, np.ndarray):
            lines.append(
                (
                    "effective df (per dim)",
                    f"median {np.median(self.edf):.3g}, range {self.edf.min():.3g}-{self.edf.max():.3g}",
                )
            )
        elif self.edf is not None:
            lines.append(("effective df", f"{self.edf:.3g}"))
        if self.covariates:
            lines.append(("adjusted for", ", ".join(self.covariates)))
        step = np.linalg.norm(np.diff(self.trajectory, axis=0), axis=1)
        lines.append(("latent path length", f"{step.sum():.4g}"))
        return Summary(title="SEE-GAAN interpolation", lines=tuple(lines))

    # ---- permutation null -------------------------------------------------------------------
    def null_trajectory(self, idx: np.ndarray, scheme: str, *, x0: float | None = None) -> np.ndarray:
        """The trajectory (K x D) under one permutation ``idx`` of a :class:`PermutationPlan`.

        ``image``/``whole-block``: latents (or Freedman–Lane residuals) shuffled, ``W[idx]``, through the
        same linear map; ``patient-label``: the map rebuilt from the permuted feature values ``x[idx]``.
        ``x0``: the line pivoted at x0 (see :meth:`null_trajectories`).
        The same bits as row ``b`` of :meth:`null_trajectories` for any batch holding ``idx``.
        """
        return self.null_trajectories(np.asarray(idx)[None], scheme, x0=x0)[0]

    def null_trajectories(self, rows: np.ndarray, scheme: str, *, x0: float | None = None) -> np.ndarray:
        """The trajectories (nb x K x D) under the permutations ``rows`` (nb x n) of a :class:`PermutationPlan`.

        Every row is computed on its own (stacked BLAS/LAPACK calls of one permutation each), so its bits do
        not depend on the other rows of the batch. BLAS runs on one thread here: the products are small
        (K x n, p x n), and a second BLAS thread on a shared machine made them 5-25x slower.
        ``patient-label`` with a fixed λ (and linear, class-mean) refits through p x p normal equations of
        the relabelled design ``X[idx]`` (:func:`seegaan.interpolation.gam.penalised_predictions`), not an n x p QR.

        ``x0`` (linear trajectories without covariates; on the feature's fitted scale, see
        :meth:`null_pivot_x0`): every null line pivots at x0 instead of at the row's own feature mean,
        ``ŵ(x0) + b*_b (g_k − x0)`` with ``ŵ(x0)`` the observed line's value at x0 and ``b*_b`` the row's
        own slope (:meth:`slopes`). It is computed as ``T + (b*_b − b̂)(g_k − x0)`` from the observed
        trajectory ``T`` (the same line, since T passes through ŵ(x0) with slope b̂): a row whose slope
        is b̂ -- the identity, under every scheme -- gives ``T`` bit for bit.
        """
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[1] != self._x.size:
            raise SeegaanError(f"permutations must have shape (nb, {self._x.size}), got {rows.shape}")
        if x0 is not None:
            self._check_pivot()
            slopes = self.slopes(rows, scheme)
            offset = self._spec.grid_t - float(x0)
            return self.trajectory[None] + (slopes - self.observed_slope)[:, None, :] * offset[None, :, None]
        with self._one_blas_thread():
            if scheme == "patient-label":
                return self._relabelled(rows)
            if self._Z is None:
                if isinstance(self._op, np.ndarray):
                    # L @ W[idx] without copying W: scatter the K x n map instead (L_perm[:, idx] = L)
                    L_perm = np.empty((rows.shape[0], *self._op.shape))
                    for L_b, idx in zip(L_perm, rows):
                        L_b[:, idx] = self._op
                    return L_perm @ self._latents
                # auto-λ: permutes its Q, not W
                return np.stack([self._op.trajectory(self._prepared, perm=idx)[0] for idx in rows])
            fitted, resid = self._reduced  # Freedman–Lane: fitted covariate-only model + permuted residuals
            return np.stack([apply(self._op, fitted + resid[idx])[0] for idx in rows])

    # ---- the pivot of the null lines (linear trajectories without covariates) ---------------------
    def _check_pivot(self) -> None:
        if not self._spec.pivots or self._Z is not None:
            why = "with covariates" if self._Z is not None else f"for a {self.method} trajectory"
            raise SeegaanError(
                f"--null-pivot x0 needs a linear trajectory without covariates (got one {why}); use --null-pivot mean"
            )

    def slopes(self, rows: np.ndarray, scheme: str) -> np.ndarray:
        """(nb, D) float64: the OLS slope of the latents on the feature under every permutation row.

        Which feature value each latent is paired with follows the scheme
        (:func:`seegaan.stats.standard_errors.feature_per_latent`: patient-label gathers ``x[idx]`` -- its mean changes
        when patients have different numbers of images --, image/whole-block scatter); per row
        ``a = x_b − x̄_b``, ``b* = (a @ W) / Σ a²`` with the scalar sums ``math.fsum`` and one product per row
        on one BLAS thread, so a row's bits never depend on the batch it sits in, and the identity gives
        the observed slope under every scheme.
        """
        rows = np.atleast_2d(np.asarray(rows))
        xe = feature_per_latent(self._x, rows, scheme)
        n = xe.shape[1]
        a = xe - np.array([math.fsum(r) / n for r in xe.tolist()])[:, None]
        S = np.array([math.fsum(r) for r in (a * a).tolist()])
        W = self._latents
        out = np.empty((rows.shape[0], W.shape[1]))
        with self._one_blas_thread():
            for b in range(rows.shape[0]):
                out[b] = np.dot(a[b], W)
        return out / S[:, None]

    @property
    def observed_slope(self) -> np.ndarray:
        """(D,) the observed slope, :meth:`slopes` of the identity (cached)."""
        cache = self.__dict__.get("_observed_slope_cache")
        if cache is None:
            self._check_pivot()
            cache = self.slopes(np.arange(self._x.size)[None], "image")[0]
            object.__setattr__(self, "_observed_slope_cache", cache)
        return cache

    def null_pivot_x0(self) -> float:
        """Where the fitted line's level and slope are uncorrelated under sampling (on the fitted scale).

        :func:`pivot_x0` of the analysed latents, the feature codes and the patients (cached). Linear
        trajectories without covariates only.
        """
        cache = self.__dict__.get("_pivot_x0_cache")
        if cache is None:
            self._check_pivot()
            cache = pivot_x0(self._latents, self._x, self.patient_ids)
            object.__setattr__(self, "_pivot_x0_cache", cache)
        return cache

    def pivot_point(self, x0: float) -> np.ndarray:
        """(D,) ``ŵ(x0) = w̄ + b̂ (x0 − x̄)``: the observed line's latent at ``x0`` (where every pivoted null
        line passes, and where the hc3 linearisation takes its Jacobian)."""
        n = self._x.size
        xbar = math.fsum(self._x.tolist()) / n
        return self._latents.mean(axis=0) + self.observed_slope * (float(x0) - xbar)

    def _relabelled(self, rows: np.ndarray) -> np.ndarray:
        """Patient-label null: the trajectories refitted with the feature values ``x[idx]``.

        The design rows depend only on the feature value (and, for the GAM, on the edge knots min/max of x):
        where a permutation keeps min and max (every patient-label permutation does), ``X_perm = X[idx]``
        with the covariate columns left in place. GCV λ, or a permutation that moves the edge knots, refits
        from scratch.
        """
        W = self._latents
        x_perm = self._x[rows]
        gather = np.ones(rows.shape[0], bool)
        if self._spec.lam is None:
            gather[:] = False
        elif self._spec.data_knots:
            gather = (x_perm.min(axis=1) == self._x.min()) & (x_perm.max(axis=1) == self._x.max())
        out = np.empty((rows.shape[0], self._spec.grid_t.size, W.shape[1]))
        for b in np.flatnonzero(~gather):
            out[b] = apply(self._spec.operator(x_perm[b], self._Z), W)[0]
        if gather.any():
            X, X_grid = self._design
            designs = X[rows[gather]]
            n_cov = 0 if self._Z is None else self._Z.shape[1]
            if n_cov:
                designs[:, :, X.shape[1] - n_cov :] = self._Z  # covariates stay with their images
            out[gather] = penalised_predictions(designs, X_grid, self._spec.penalty(self._spec.lam, n_cov), W)
        return out

    def _one_blas_thread(self):
        """A context that limits the BLAS pools to one thread (a cached threadpoolctl controller)."""
        controller = self.__dict__.get("_blas_controller")
        if controller is None:
            controller = ThreadpoolController()
            object.__setattr__(self, "_blas_controller", controller)
        return controller.limit(limits=1, user_api="blas")

    @property
    def _design(self) -> tuple[np.ndarray, np.ndarray]:
        """The design of the analysed images and of the grid (covariates included)."""
        cache = self.__dict__.get("_design_cache")
        if cache is None:
            cache = self._spec.design(self._x, self._Z)
            object.__setattr__(self, "_design_cache", cache)
        return cache

    @property
    def _prepared(self):
        cache = self.__dict__.get("_prepared_cache")
        if cache is None:
            cache = self._op.prepare(self._latents)
            object.__setattr__(self, "_prepared_cache", cache)
        return cache

    @property
    def _latents(self) -> np.ndarray:
        cache = self.__dict__.get("_latents_cache")
        if cache is None:
            cache = self.latents
            object.__setattr__(self, "_latents_cache", cache)
        return cache

    @property
    def _reduced(self):
        cache = self.__dict__.get("_reduced_cache")
        if cache is None:
            W = self._latents
            assert self._Z is not None
            Xr = np.column_stack([np.ones(W.shape[0]), self._Z])
            coef, *_ = np.linalg.lstsq(Xr, W, rcond=None)
            fitted = Xr @ coef
            cache = (fitted, W - fitted)
            object.__setattr__(self, "_reduced_cache", cache)
        return cache


def pivot_x0(W: np.ndarray, x: np.ndarray, units) -> float:
    """Where the level and slope of the OLS line of ``W`` (n x D) on ``x`` (n,) are uncorrelated.

    With ``a = x − x̄``, ``S = Σ a²``, the full-fit residuals ``e_i = W_i − w̄ − a_i b̂`` and, per
    independent unit p (a patient; ``units`` names each image's), ``E_p = Σ_{i∈p} e_i`` and
    ``F_p = Σ_{i∈p} a_i e_i``: ``Cov(w̄, b̂) = Σ_p E_p·F_p / (n S)`` and ``Var(b̂) = Σ_p |F_p|² / S²``
    (pooled over the latents), so ``ŵ(x0) = w̄ + b̂ (x0 − x̄)`` is uncorrelated with ``b̂`` at

        x0 = x̄ − S Σ_p E_p·F_p / (n Σ_p |F_p|²).

    When every patient's images share x (``a_p``) this is ``x̄ − S Σ_p a_p V_p / (n Σ_p a_p² V_p)`` with
    ``V_p = |E_p|²`` the squared *summed* residual of the patient (``docs/welch.md``), for any patient
    sizes. The scalar sums are ``math.fsum``. Kept within the observed range of x (a clamp that no
    calibrated scenario reached); ``x̄`` when the residuals vanish.
    """
    W = np.asarray(W, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    xbar = math.fsum(x.tolist()) / n
    a = x - xbar
    S = math.fsum((a * a).tolist())
    if not S > 0:
        return float(xbar)
    b = np.array([math.fsum(c) for c in (a[:, None] * W).T.tolist()]) / S
    wbar = np.array([math.fsum(c) for c in W.T.tolist()]) / n
    e = W - wbar - a[:, None] * b
    _, codes = np.unique(np.asarray(units).astype(str), return_inverse=True)
    codes = codes.ravel()
    E = np.zeros((codes.max() + 1, W.shape[1]))
    F = np.zeros_like(E)
    np.add.at(E, codes, e)
    np.add.at(F, codes, a[:, None] * e)
    num = math.fsum((E * F).ravel().tolist())
    den = math.fsum((F * F).ravel().tolist())
    if not den > 0:
        return float(xbar)
    return float(min(max(xbar - S * num / (n * den), x.min()), x.max()))
