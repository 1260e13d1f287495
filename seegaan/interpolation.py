"""Trajectories through latent space along a clinical feature.

Every interpolator here is a penalised least-squares fit, hence a linear map: with the design ``X`` of
the analysed images (n x p), the design ``X_grid`` of the K grid values (K x p) and a penalty ``S``,
the trajectory is ``L @ W`` with ``L = X_grid (X'X + S)^-1 X'`` (K x n), for

``class-mean``
    two indicator columns (level A, level B); grid rows ``(1 - t, t)`` for ``t`` evenly spaced in [0, 1]:
    linear interpolation from the mean latent of A to the mean latent of B.
``linear``
    ``[1, x]``: simple linear regression of every latent dimension on the feature.
``gam``
    pyGAM's ``LinearGAM(s(0))``: 20 cubic B-splines with edge knots at min/max of ``x``, a
    second-difference penalty with λ = 0.6, an intercept and a sqrt(EPS) ridge. ``lam="auto"`` picks λ
    per latent dimension by pyGAM's GCV (gamma 1.4) over ``np.logspace(-3, 3, 11)``.

Covariates (``adjust``) are appended to the design as centred, unpenalised columns and set to their
mean on the grid; the permutation null then follows Freedman–Lane (residuals of the covariate-only model
are permuted).

Refused before any fitting (one line each): covariates that are collinear with the feature's columns or
with each other (numerical rank of the column-normalised design, NumPy's ``matrix_rank`` rule
``max(n, p) * eps * s_max``), an explicit grid with all values equal, and a GAM grid outside the observed
feature range (outside its edge knots the GAM only continues its end slopes: no data support it). A
linear grid that extrapolates by more than 10% of the observed range gets a note.

Numeric class-mean levels are compared as numbers and shown exactly (``20190405``, ``0.1``), never
rounded.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import xarray as xr

from seegaan import _gam
from seegaan._choices import METHODS, TRANSFORMS, Method, Transform
from seegaan._errors import SeegaanError
from seegaan._summary import Summary
from seegaan.cohort import (feature_kind, feature_missing, get_feature, validate_cohort)


# --------------------------------------------------------------------------------------------------
# designs
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Spec:
    """What defines the map from feature values to L (everything but the feature values themselves)."""

    method: str
    grid_t: np.ndarray  # K grid values on the transformed scale (class-mean: t in [0, 1])
    n_splines: int = 20
    spline_order: int = 3
    lam: float | None = 0.6  # None = auto (GCV per latent dimension)
    lams: np.ndarray = field(default_factory=_gam.default_lambda_grid)
    gamma: float = 1.4

    def base(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Design of the images and of the grid, without covariates."""
        if self.method == "class-mean":
            X = np.column_stack([x == 0, x == 1]).astype(np.float64)
            t = self.grid_t
            return X, np.column_stack([1.0 - t, t])
        if self.method == "linear":
            return (np.column_stack([np.ones_like(x), x]),
                    np.column_stack([np.ones_like(self.grid_t), self.grid_t]))
        knots = np.array([np.min(x), np.max(x)])
        return (_gam.gam_design(x, knots, n_splines=self.n_splines, spline_order=self.spline_order),
                _gam.gam_design(self.grid_t, knots, n_splines=self.n_splines,
                                spline_order=self.spline_order))

    def penalty(self, lam: float, n_cov: int) -> np.ndarray:
        if self.method != "gam":
            return np.zeros((2 + n_cov, 2 + n_cov))
        return _gam.gam_penalty(lam, n_splines=self.n_splines, n_extra=n_cov)

    def design(self, x: np.ndarray, Z: np.ndarray | None):
        X, Xg = self.base(x)
        if Z is None or Z.shape[1] == 0:
            return X, Xg
        return np.hstack([X, Z]), np.hstack([Xg, np.zeros((Xg.shape[0], Z.shape[1]))])

    def operator(self, x: np.ndarray, Z: np.ndarray | None):
        """Return either ``L`` (K x n) or an auto-λ solver with ``.trajectory(Y)``."""
        X, Xg = self.design(x, Z)
        k = 0 if Z is None else Z.shape[1]
        if self.lam is None:
            return _gam.GamAutoSolver(X, Xg, self.lams, lambda lam: self.penalty(lam, k), gamma=self.gamma)
        return _gam.penalised_map(X, Xg, self.penalty(self.lam, k))


def _apply(op, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Trajectory (K x D) of operator ``op`` applied to responses ``Y`` (n x D), and the λ indices."""
    if isinstance(op, np.ndarray):
        return op @ Y, None
    traj, idx = op.trajectory(Y)
    return traj, idx


# --------------------------------------------------------------------------------------------------
# result
# --------------------------------------------------------------------------------------------------
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
    _spec: _Spec = field(repr=False)
    _x: np.ndarray = field(repr=False)
    _Z: np.ndarray | None = field(repr=False)
    _op: object = field(repr=False)
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
        return xr.DataArray(self.trajectory.astype(np.float32), dims=("step", "latent"),
                            coords={"feature_value": ("step", self.grid)}, name="w",
                            attrs={"feature": self.feature, "method": self.method})

    def summary(self) -> Summary:
        lines = [("feature", self.feature), ("method", self.method), ("transform", self.transform),
                 ("images used", str(self.image_index.size)),
                 ("images left out (missing)", str(self.n_missing)),
                 ("patients", str(len(np.unique(self.patient_ids)))),
                 ("steps", str(self.n_steps)),
                 ("grid", ", ".join(f"{g:.4g}" for g in self.grid))]
        if self.levels:
            lines.append(("levels", f"{self.levels[0]} -> {self.levels[1]}"))
        if self.method == "gam":
            lines.append(("splines", str(self.n_splines)))
            if isinstance(self.lam, np.ndarray):
                vals, counts = np.unique(self.lam, return_counts=True)
                lines.append(("lambda (GCV per dim)", ", ".join(f"{v:g}: {c}" for v, c in zip(vals, counts))))
            else:
                lines.append(("lambda", f"{self.lam:g}"))
            if isinstance(self.edf, np.ndarray):
                lines.append(("effective df (per dim)", f"median {np.median(self.edf):.3g}, "
                                                        f"range {self.edf.min():.3g}-{self.edf.max():.3g}"))
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
        the relabelled design ``X[idx]`` (:func:`seegaan._gam.penalised_predictions`), not an n x p QR.

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
            return np.stack([_apply(self._op, fitted + resid[idx])[0] for idx in rows])

    # ---- the pivot of the null lines (linear trajectories without covariates) ---------------------
    def _check_pivot(self) -> None:
        if self.method != "linear" or self._Z is not None:
            why = "with covariates" if self._Z is not None else f"for a {self.method} trajectory"
            raise SeegaanError(f"--null-pivot x0 needs a linear trajectory without covariates (got one {why}); "
                               "use --null-pivot mean")

    def slopes(self, rows: np.ndarray, scheme: str) -> np.ndarray:
        """(nb, D) float64: the OLS slope of the latents on the feature under every permutation row.

        Which feature value each latent is paired with follows the scheme
        (:func:`seegaan._welch.feature_per_latent`: patient-label gathers ``x[idx]`` -- its mean changes
        when patients have different numbers of images --, image/whole-block scatter); per row
        ``a = x_b − x̄_b``, ``b* = (a @ W) / Σ a²`` with the scalar sums ``math.fsum`` and one product per row
        on one BLAS thread, so a row's bits never depend on the batch it sits in, and the identity gives
        the observed slope under every scheme.
        """
        import math

        from seegaan._welch import feature_per_latent

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
        import math

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
        elif self._spec.method == "gam":
            gather = (x_perm.min(axis=1) == self._x.min()) & (x_perm.max(axis=1) == self._x.max())
        out = np.empty((rows.shape[0], self._spec.grid_t.size, W.shape[1]))
        for b in np.flatnonzero(~gather):
            out[b] = _apply(self._spec.operator(x_perm[b], self._Z), W)[0]
        if gather.any():
            X, X_grid = self._design
            designs = X[rows[gather]]
            n_cov = 0 if self._Z is None else self._Z.shape[1]
            if n_cov:
                designs[:, :, X.shape[1] - n_cov:] = self._Z  # covariates stay with their images
            out[gather] = _gam.penalised_predictions(designs, X_grid, self._spec.penalty(self._spec.lam, n_cov), W)
        return out

    def _one_blas_thread(self):
        """A context that limits the BLAS pools to one thread (a cached threadpoolctl controller)."""
        controller = self.__dict__.get("_blas_controller")
        if controller is None:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:  # pragma: no cover - a declared dependency
                return contextlib.nullcontext()
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
    import math

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


# --------------------------------------------------------------------------------------------------
# the public function
# --------------------------------------------------------------------------------------------------
def _parse_levels(levels) -> tuple[str, str] | None:
    if levels is None:
        return None
    if isinstance(levels, str):
        levels = [s.strip() for s in levels.split(",")]
    levels = tuple(str(v) for v in levels)
    if len(levels) != 2 or not all(levels):
        raise SeegaanError(f"levels must name exactly two groups 'A,B' (got {','.join(levels)})")
    if levels[0] == levels[1]:
        raise SeegaanError(f"levels must name two different groups (got {levels[0]} twice)")
    return levels


def _num_label(v: float) -> str:
    """An exact label for a numeric level: ``20190405`` for integral values, else the shortest repr."""
    v = float(v)
    if v.is_integer() and abs(v) < 2.0 ** 53:
        return str(int(v))
    return repr(v)


#: A linear grid may extrapolate this fraction of the observed range without a note.
EXTRAPOLATION_NOTE = 0.10
#: GAMs with fewer images per effective degree of freedom than this get a note.
IMAGES_PER_EDF = 30


def _check_explicit_grid(g: np.ndarray) -> None:
    if g.size < 2:
        raise SeegaanError("an explicit grid needs at least two values")
    if not np.isfinite(g).all():
        raise SeegaanError("grid values must be finite numbers")
    if np.ptp(g) == 0:
        raise SeegaanError(f"the grid values are all equal ({_num_label(g[0])}); give at least two different "
                           "values, e.g. --grid 40,80")


def _check_range(method: str, grid_units: np.ndarray, grid_t: np.ndarray, x: np.ndarray, feature: str,
                 transform: str) -> str | None:
    """Refuse a GAM grid outside the observed feature range; return a note for a far-extrapolating linear one."""
    lo, hi = float(x.min()), float(x.max())
    span = hi - lo
    slack = 1e-9 * max(span, abs(lo), abs(hi))  # log/exp round trips of the edge values
    below, above = lo - float(grid_t.min()), float(grid_t.max()) - hi
    if max(below, above) <= slack:
        return None
    shown = (np.exp([lo, hi]) if transform == "log" else np.array([lo, hi]))
    observed = f"{shown[0]:.6g} to {shown[1]:.6g}"
    if method == "gam":
        raise SeegaanError(f"the grid ({grid_units.min():.6g} to {grid_units.max():.6g}) leaves the observed "
                           f"range of {feature!r} ({observed}); a GAM has no data beyond it (it only continues "
                           "its end slopes): keep the grid inside it, or use --method linear")
    if max(below, above) > EXTRAPOLATION_NOTE * span:
        return (f"the grid ({grid_units.min():.6g} to {grid_units.max():.6g}) extrapolates the linear fit "
                f"beyond the observed range of {feature!r} ({observed}) by more than "
                f"{EXTRAPOLATION_NOTE:.0%} of that range; the ends of the trajectory rest on no data")
    return None


def _rank(M: np.ndarray) -> int:
    """Numerical rank with NumPy's ``matrix_rank`` tolerance ``max(n, p) * eps * s_max``."""
    if M.size == 0:
        return 0
    sv = np.linalg.svd(M, compute_uv=False)
    return int(np.sum(sv > max(M.shape) * np.finfo(np.float64).eps * sv[0])) if sv[0] > 0 else 0


def _unit_columns(M: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(M, axis=0)
    return M / np.where(norms > 0, norms, 1.0)


def _check_covariates(F: np.ndarray, Z: np.ndarray, owners: Sequence[str], feature: str) -> None:
    """Refuse covariates that are constant, or collinear with the feature's columns ``F`` or each other.

    The design ``[F, Z]`` (columns scaled to unit length, so units do not matter) must have rank
    ``rank(F) + columns of Z``; ``owners[j]`` names the covariate of column ``j`` of ``Z``.
    """
    flat = [name for j, name in enumerate(owners) if np.ptp(Z[:, j]) == 0]
    if flat:
        names = ", ".join(dict.fromkeys(flat))
        raise SeegaanError(f"covariate(s) {names} are constant among the images analysed (a single value, or "
                           "a level none of them has); drop them from --adjust")
    Fu, Zu = _unit_columns(F), _unit_columns(Z - Z.mean(axis=0))
    full = _rank(np.hstack([Fu, Zu]))
    if full == _rank(Fu) + Z.shape[1]:
        return
    # which covariates: those with weight in a null vector of Z once the feature's columns are projected out
    u, sv, _ = np.linalg.svd(Fu, full_matrices=False)
    basis = u[:, sv > max(Fu.shape) * np.finfo(np.float64).eps * sv[0]]
    resid = Zu - basis @ (basis.T @ Zu)
    _, rsv, rvt = np.linalg.svd(resid, full_matrices=False)
    tol = max(resid.shape) * np.finfo(np.float64).eps * max(1.0, rsv[0] if rsv.size else 0.0)
    null = rvt[rsv <= tol]
    involved = [owners[j] for j in range(Z.shape[1]) if null.size and np.max(np.abs(null[:, j])) > 1e-6]
    names = ", ".join(dict.fromkeys(involved)) or ", ".join(dict.fromkeys(owners))
    what = f"the feature {feature!r}" if full < _rank(Fu) + _rank(Zu) else "each other"
    raise SeegaanError(f"covariate(s) {names} are collinear with {what} among the images analysed, so the "
                       "trajectory is not identifiable; drop them from --adjust")


def _gam_edf(X: np.ndarray, S: np.ndarray) -> float:
    """Effective degrees of freedom of a penalised fit: trace of the hat matrix ``X (X'X + S)^-1 X'``."""
    r = np.linalg.qr(X, mode="r")
    return _gam._Factor(r, S).edof


def _grid(x: np.ndarray, steps: int, grid, transform: str, feature: str) -> tuple[np.ndarray, np.ndarray]:
    """Grid in feature units and on the transformed scale."""
    if grid is not None:
        g = grid
        if transform == "log" and (g <= 0).any():
            raise SeegaanError(f"--transform log needs positive grid values for {feature}")
        return g, (np.log(g) if transform == "log" else g)
    lo, hi = np.percentile(x, [5, 95])
    gt = np.linspace(lo, hi, steps)
    return (np.exp(gt) if transform == "log" else gt), gt


def _parse_grid(grid) -> np.ndarray | None:
    """Explicit grid values from numbers or a string ``"v1,v2,..."``."""
    if grid is None:
        return None
    if isinstance(grid, str):
        try:
            return np.array([float(v) for v in grid.split(",")])
        except ValueError:
            raise SeegaanError(f"--grid must be comma-separated numbers, not {grid!r}") from None
    try:
        return np.asarray(grid, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise SeegaanError(f"--grid must be numbers, not {grid!r}") from None


def _parse_lam(gam_lam) -> float | None:
    """The GAM smoothing parameter: a positive number, or None for ``"auto"`` (GCV per latent dimension)."""
    if isinstance(gam_lam, str) and gam_lam.strip().lower() == "auto":
        return None
    try:
        lam = float(gam_lam)
    except (TypeError, ValueError):
        raise SeegaanError(f"--gam-lam must be a positive number or 'auto', not {gam_lam!r}") from None
    if not lam > 0:
        raise SeegaanError(f"--gam-lam must be a positive number or 'auto', not {gam_lam!r}")
    return lam


def _covariates(cohort: xr.Dataset, adjust: Sequence[str],
                rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Covariate matrix (dummy-coded categoricals), the mask of rows with all present, each column's covariate."""
    cols, ok, owners = [], np.ones(rows.size, bool), []
    for name in adjust:
        values = get_feature(cohort, name)[rows]
        miss = feature_missing(values)
        ok &= ~miss
        kind = feature_kind(values)
        if kind == "numeric":
            cols.append(values.astype(float)[:, None])
            owners.append(name)
        else:
            levels = sorted(set(map(str, values[~miss])))
            if len(levels) < 2:
                raise SeegaanError(f"covariate {name!r} has fewer than two levels; drop it from --adjust")
            cols.append(np.column_stack([(values.astype(str) == lv).astype(float) for lv in levels[1:]]))
            owners += [name] * (len(levels) - 1)
    Z = np.hstack(cols) if cols else np.zeros((rows.size, 0))
    return Z, ok, owners


def interpolate(cohort: xr.Dataset, *, feature: str, method: Method = "auto",
                levels: str | Sequence[str] | None = None, steps: int = 8, grid=None,
                transform: Transform = "none", gam_lam: float | str = 0.6,
                gam_splines: int = 20, adjust: Sequence[str] | str | None = None) -> InterpolationResult:
    """Fit a trajectory through latent space along ``feature``.

    Parameters
    ----------
    cohort : xarray.Dataset
        A latent cohort (``w`` with dims ("image", "latent") and clinical coordinates).
    feature : str
        Clinical coordinate to move along.
    method : {"auto", "class-mean", "linear", "gam"}
        ``auto`` picks class-mean for boolean/categorical features (and numeric ones with two distinct
        values) and gam for numeric ones.
    levels : "A,B" or (A, B), optional
        Class-mean only: the two groups, from A to B. Default: False -> True for booleans, the two levels
        in sorted order otherwise.
    steps : int
        Number of grid values K (>= 2), evenly spaced between the 5th and 95th percentiles.
    grid : array-like or "v1,v2,...", optional
        Explicit grid values in the feature's units (overrides ``steps``).
    transform : {"none", "log"}
        Fit on log(feature) (e.g. BNPP); the grid is evenly spaced on that scale.
    gam_lam : float, "auto" or a string of either
        GAM smoothing parameter (> 0); "auto" chooses λ per latent dimension by GCV.
    gam_splines : int
        Number of B-splines of the GAM.
    adjust : list of str or "A,B", optional
        Covariates to adjust for (Freedman–Lane under permutation).

    Returns
    -------
    InterpolationResult
    """
    validate_cohort(cohort)
    values = get_feature(cohort, feature)
    if method not in METHODS:
        raise SeegaanError(f"unknown method {method!r}; use {', '.join(METHODS)}")
    if transform not in TRANSFORMS:
        raise SeegaanError(f"unknown transform {transform!r}; use {', '.join(TRANSFORMS)}")
    grid = _parse_grid(grid)
    if grid is not None:
        _check_explicit_grid(grid)
    if grid is None and not (isinstance(steps, (int, np.integer)) and steps >= 2):
        raise SeegaanError(f"--steps must be an integer of at least 2 (got {steps!r})")
    gam_lam = _parse_lam(gam_lam)
    if isinstance(adjust, str):
        adjust = [a.strip() for a in adjust.split(",") if a.strip()]
    adjust = tuple(adjust or ())
    if feature in adjust:
        raise SeegaanError(f"{feature!r} cannot be both the feature and a covariate")
    levels = _parse_levels(levels)
    kind = feature_kind(values)
    missing = feature_missing(values)
    n_distinct = len(np.unique(values[~missing].astype(str))) if (~missing).any() else 0
    if method == "auto":
        method = "class-mean" if (kind != "numeric" or n_distinct == 2 or levels) else "gam"

    rows = np.flatnonzero(~missing)
    notes: list[str] = []
    if method == "class-mean":
        # numeric levels are compared as numbers and labelled exactly (never rounded for display)
        present = values[rows].astype(str) if kind != "numeric" else values[rows].astype(np.float64)
        uniq = np.unique(present)  # sorted: numerically for numbers
        found = [str(v) for v in uniq] if kind != "numeric" else [_num_label(v) for v in uniq]
        if levels is None:
            if len(found) < 2:
                raise SeegaanError(f"feature {feature!r} has fewer than two groups ({', '.join(found) or 'none'}); "
                                   "class-mean needs two")
            if len(found) > 2:  # the two most frequent levels, most frequent first (ties: value order)
                _, counts = np.unique(present, return_counts=True)
                order = sorted(range(len(uniq)), key=lambda i: (-counts[i], i))
                chosen = (uniq[order[0]], uniq[order[1]])
                levels = (found[order[0]], found[order[1]])
                notes.append(f"{feature!r} has {len(found)} levels ({', '.join(found[:8])}); comparing the two "
                             f"most frequent, {levels[0]} -> {levels[1]}; choose others with --levels A,B")
            else:
                levels = ("False", "True") if kind == "boolean" else (found[0], found[1])
                chosen = (levels[0], levels[1]) if kind != "numeric" else (uniq[0], uniq[1])
        else:
            chosen = []
            for lv in levels:
                if kind == "numeric":
                    try:
                        value = float(lv)
                    except ValueError:
                        value = None
                    hit = value is not None and bool(np.any(uniq == value))
                else:
                    value, hit = lv, lv in found
                if not hit:
                    raise SeegaanError(f"level {lv!r} is not a value of {feature!r}; "
                                       f"levels: {', '.join(found[:12])}")
                chosen.append(value)
            if kind == "numeric":
                if chosen[0] == chosen[1]:
                    raise SeegaanError(f"levels {levels[0]} and {levels[1]} are the same number; "
                                       "name two different groups")
                levels = (_num_label(chosen[0]), _num_label(chosen[1]))
        keep = (present == chosen[0]) | (present == chosen[1])
        rows = rows[keep]
        x = (present[keep] == chosen[1]).astype(np.float64)
        for lv, value in zip(levels, chosen):
            if not np.any(present[keep] == value):
                raise SeegaanError(f"level {lv!r} of {feature!r} has no images")
        grid_units = grid_t = np.linspace(0.0, 1.0, int(steps)) if grid is None else grid
        if grid is not None and (grid_t.min() < 0 or grid_t.max() > 1):
            raise SeegaanError("class-mean grid values are fractions between the two means (0 to 1)")
        if transform != "none":
            raise SeegaanError("--transform applies to numeric features; class-mean takes none")
    else:
        if kind != "numeric":
            raise SeegaanError(f"feature {feature!r} is {kind}; use --method class-mean (or auto)")
        x = values[rows].astype(np.float64)
        if transform == "log":
            if (x <= 0).any():
                raise SeegaanError(f"--transform log needs positive values, but {feature!r} has "
                                   f"{int((x <= 0).sum())} value(s) <= 0")
            x = np.log(x)
        distinct = np.unique(x).size
        if distinct < 2:
            raise SeegaanError(f"feature {feature!r} has fewer than two distinct values; nothing to fit")
        if method == "gam" and distinct < int(gam_splines):
            raise SeegaanError(f"feature {feature!r} has {distinct} distinct values, fewer than the "
                               f"{gam_splines} splines of the GAM; use --method linear or fewer --gam-splines")
        grid_units, grid_t = _grid(x, int(steps), grid, transform, feature)
        note = _check_range(method, grid_units, grid_t, x, feature, transform)
        if note:
            notes.append(note)

    if method == "gam":
        if int(gam_splines) <= 3:
            raise SeegaanError(f"--gam-splines must be larger than the spline order 3 (got {gam_splines})")
        spec = _Spec("gam", grid_t, n_splines=int(gam_splines), lam=gam_lam)
    else:
        spec = _Spec(method, grid_t, lam=0.0)

    Z = None
    if adjust:
        Zall, ok, owners = _covariates(cohort, adjust, rows)
        rows, x, Zall = rows[ok], x[ok], Zall[ok]
        if rows.size >= 3:
            F = spec.base(x)[0]
            _check_covariates(F[:, :-1] if method == "gam" else F, Zall, owners, feature)
        Z = Zall - Zall.mean(axis=0)
    # images of other classes are not "missing": count only absent feature/covariate values
    n_missing = int(missing.sum()) + (int((~ok).sum()) if adjust else 0)
    if rows.size < 3:
        raise SeegaanError(f"only {rows.size} image(s) have {feature!r}; at least 3 are needed")

    W = cohort["w"].values[rows].astype(np.float64)
    op = spec.operator(x, Z)
    traj, lam_idx = _apply(op, W)
    lam_out = edf = None
    if method == "gam":
        lam_out = spec.lams[lam_idx] if lam_idx is not None else spec.lam
        if lam_idx is not None:
            edf = op.edof[lam_idx]
        else:
            X = spec.design(x, Z)[0]
            edf = _gam_edf(X, spec.penalty(spec.lam, 0 if Z is None else Z.shape[1]))
        worst = float(np.max(edf))
        if rows.size < IMAGES_PER_EDF * worst:
            uses = "uses" if np.ndim(edf) == 0 else "uses up to"
            fewer = " or fewer splines (--gam-splines 6)" if int(gam_splines) > 6 else ""
            notes.append(f"the GAM {uses} {worst:.1f} effective degrees of freedom for {rows.size} images; "
                         f"consider --method linear{fewer}")
    return InterpolationResult(
        feature=feature, method=method, transform=transform, levels=levels if method == "class-mean" else None,
        grid=np.asarray(grid_units, dtype=np.float64), trajectory=traj,
        L=op if isinstance(op, np.ndarray) else None, lam=lam_out, image_index=rows, n_missing=n_missing,
        covariates=adjust, n_splines=spec.n_splines if method == "gam" else None, cohort=cohort,
        _spec=spec, _x=x, _Z=Z, _op=op, notes=tuple(notes), edf=edf)
