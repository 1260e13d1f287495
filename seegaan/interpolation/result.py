"""The fitted trajectory: :class:`InterpolationResult`, its linear map and its null trajectories.

A permutation (or any other null draw) of the analysed images changes only which latents -- or which
feature values -- enter the same fit: :meth:`InterpolationResult.null_trajectories` recomputes the
trajectory for every row of a plan (``image``/``whole-block``: latents or Freedman–Lane residuals
shuffled through the same linear map; ``patient-label``: the map rebuilt from permuted feature values),
each row on its own so its bits never depend on the batch. The sign-flip null
(:meth:`InterpolationResult.flip_trajectories`) flips the weighted null model's residual latents instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from threadpoolctl import ThreadpoolController

from seegaan._internal.errors import SeegaanError
from seegaan._internal.summary import Summary
from seegaan.interpolation.gam import penalised_predictions
from seegaan.interpolation.methods import Method, apply
from seegaan.interpolation.nullmodel import NullModel, null_model

__all__ = ["InterpolationResult"]


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
    def null_trajectory(self, idx: np.ndarray, scheme: str) -> np.ndarray:
        """The trajectory (K x D) under one permutation ``idx`` of a :class:`PermutationPlan`.

        ``image``/``whole-block``: latents (or Freedman–Lane residuals) shuffled, ``W[idx]``, through the
        same linear map; ``patient-label``: the map rebuilt from the permuted feature values ``x[idx]``.
        The same bits as row ``b`` of :meth:`null_trajectories` for any batch holding ``idx``.
        """
        return self.null_trajectories(np.asarray(idx)[None], scheme)[0]

    def null_trajectories(self, rows: np.ndarray, scheme: str) -> np.ndarray:
        """The trajectories (nb x K x D) under the permutations ``rows`` (nb x n) of a :class:`PermutationPlan`.

        Every row is computed on its own (stacked BLAS/LAPACK calls of one permutation each), so its bits do
        not depend on the other rows of the batch. BLAS runs on one thread here: the products are small
        (K x n, p x n), and a second BLAS thread on a shared machine made them 5-25x slower.
        ``patient-label`` with a fixed λ (and linear, class-mean) refits through p x p normal equations of
        the relabelled design ``X[idx]`` (:func:`seegaan.interpolation.gam.penalised_predictions`), not an n x p
        QR.
        """
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[1] != self._x.size:
            raise SeegaanError(f"permutations must have shape (nb, {self._x.size}), got {rows.shape}")
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

    # ---- the sign-flip null -----------------------------------------------------------------------
    def null_model(self) -> NullModel:
        """The weighted null model of the sign-flip test (:mod:`seegaan.interpolation.nullmodel`; cached).

        The variance weights come from the leverage-corrected residuals of this trajectory's own fit (its
        design with the covariates, its penalty: for a GAM with λ chosen per dimension, the median λ),
        pooled within each class (class-mean) or smoothed along the feature (linear, GAM).
        """
        cache = self.__dict__.get("_null_model_cache")
        if cache is None:
            X, _ = self._design
            n_cov = 0 if self._Z is None else self._Z.shape[1]
            lam = self._spec.lam
            if lam is None:  # GCV per latent dimension: the median choice for the variance estimate
                lam = float(np.median(np.atleast_1d(np.asarray(self.lam, dtype=np.float64))))
            S = self._spec.penalty(lam, n_cov)
            how = "class" if self._spec.categorical else "smooth"
            cache = null_model(X, S, self._latents, self._x, self.patient_ids, self._Z, how)
            object.__setattr__(self, "_null_model_cache", cache)
        return cache

    def flip_trajectories(self, rows: np.ndarray, null: NullModel | None = None) -> np.ndarray:
        """The trajectories (nb x K x D) of the sign flips ``rows`` (nb x n multipliers, one sign per patient).

        Row ``b`` flips the null model's residual latents, ``W*_b = W + (I − X0 C)((s_b − 1) ⊙ e)``: the
        flipped residuals around the same weighted fit. Through the linear map, ``T + M ((s_b − 1) ⊙ e)``
        with ``M = L − (L X0) C``; a GAM with λ chosen per dimension refits every row by GCV. Every row is
        computed on its own (one BLAS thread), so its bits do not depend on the batch; the identity row
        (all +1) adds zeros and gives the observed trajectory bit for bit.
        """
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self._x.size:
            raise SeegaanError(f"sign flips must have shape (nb, {self._x.size}), got {rows.shape}")
        null = self.null_model() if null is None else null
        e = null.residuals
        shift = rows - 1.0
        with self._one_blas_thread():
            if isinstance(self._op, np.ndarray):
                M = self._flip_map(null)
                return self.trajectory[None] + (M[None] * shift[:, None, :]) @ e
            return np.stack([self._op.trajectory(self._latents + null.project(s[:, None] * e))[0] for s in shift])

    def _flip_map(self, null: NullModel) -> np.ndarray:
        """``M = L − (L X0) C`` (K x n) of ``null`` (cached for the null model it was made for)."""
        cache = self.__dict__.get("_flip_map_cache")
        if cache is None or cache[0] is not null:
            L = self._op
            cache = (null, L - (L @ null.X0) @ null.C)
            object.__setattr__(self, "_flip_map_cache", cache)
        return cache[1]

    def _relabelled(self, rows: np.ndarray) -> np.ndarray:
        """Patient-label null: the trajectories refitted with the feature values ``x[idx]``.

        The design rows depend only on the feature value (and, for the GAM, on the edge knots min/max of x):
        where a permutation keeps min and max (every patient-label permutation does), ``X_perm = X[idx]``
        with the covariate columns left in place. GCV λ, or a permutation that moves the edge knots, refits
        from scratch.
        """
        W = self._latents
        x_perm = self._x[rows]
        if isinstance(self._op, np.ndarray) and self._Z is None and hasattr(self._spec, "closed_form"):
            # class means: the relabelled map in the same closed form as the observed one (the identity gives it)
            return np.stack([self._spec.closed_form(xb) @ W for xb in x_perm])
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
