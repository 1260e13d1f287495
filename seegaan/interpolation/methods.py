"""One class per interpolation method, behind a small protocol, and the registry that names them.

Every method is a penalised least-squares fit, hence a linear map of the latents: with the design ``X`` of
the analysed images (n x p), the design ``X_grid`` of the K grid values (K x p) and a penalty ``S``, the
trajectory is ``L @ W`` with ``L = X_grid (X'X + S)^-1 X'``. A method says how its design and penalty
are built from the feature values (:meth:`Method.base`, :meth:`Method.penalty`); everything else --
covariates, the operator, the null trajectories -- is shared. A new method is a subclass registered in
:data:`REGISTRY` (its name then also goes into :data:`seegaan._internal.choices.METHODS`).

``class-mean``
    two indicator columns (level A, level B); grid rows ``(1 - t, t)`` for ``t`` evenly spaced in [0, 1]:
    linear interpolation from the mean latent of A to the mean latent of B.
``linear``
    ``[1, x]``: simple linear regression of every latent dimension on the feature.
``gam``
    pyGAM's ``LinearGAM(s(0))``: 20 cubic B-splines with edge knots at min/max of ``x``, a
    second-difference penalty with λ = 0.6, an intercept and a sqrt(EPS) ridge. ``lam=None`` ("auto")
    picks λ per latent dimension by pyGAM's GCV (gamma 1.4) over ``np.logspace(-3, 3, 11)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, cast

import numpy as np

from seegaan._internal.errors import SeegaanError
from seegaan.interpolation import gam as _gam


@dataclass(frozen=True)
class Method:
    """The protocol: what defines the map from feature values to ``L`` (all but the feature values).

    Class attributes a method sets: ``name`` (its registry key), ``categorical`` (fitted on two groups'
    0/1 codes rather than on a numeric feature: its sign-flip null pools the residual variance within
    each class, else it smooths it along the feature), ``data_knots`` (its design depends on the extremes
    of the feature, so a relabelling that moves them must refit from scratch).
    """

    name: ClassVar[str] = ""
    categorical: ClassVar[bool] = False
    data_knots: ClassVar[bool] = False

    grid_t: np.ndarray  # K grid values on the transformed scale (class-mean: t in [0, 1])

    #: the fixed smoothing parameter (None: chosen per latent dimension) -- only a GAM has one
    lam: float | None = 0.0

    @classmethod
    def from_options(cls, grid_t: np.ndarray, *, gam_splines: int = 20, gam_lam: float | None = 0.6) -> Method:
        """The method on the grid ``grid_t``, given the options of :func:`seegaan.interpolate` it takes."""
        return cls(grid_t)

    def base(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Design of the images (n x p) and of the grid (K x p), without covariates."""
        raise NotImplementedError

    def smoothing(self, x: np.ndarray, Z: np.ndarray | None, op, lam_idx: np.ndarray | None):
        """``(lam, edf)`` of a smoother (the λ used and its effective degrees of freedom); ``(None, None)``."""
        return None, None

    def penalty(self, lam: float | None, n_cov: int) -> np.ndarray:
        """The penalty ``S`` of the design with ``n_cov`` covariate columns appended (none: zeros)."""
        return np.zeros((2 + n_cov, 2 + n_cov))

    def identifiable(self, F: np.ndarray) -> np.ndarray:
        """The columns of the feature's design that covariates must not be collinear with."""
        return F

    def design(self, x: np.ndarray, Z: np.ndarray | None):
        X, Xg = self.base(x)
        if Z is None or Z.shape[1] == 0:
            return X, Xg
        return np.hstack([X, Z]), np.hstack([Xg, np.zeros((Xg.shape[0], Z.shape[1]))])

    def operator(self, x: np.ndarray, Z: np.ndarray | None):
        """Return either ``L`` (K x n) or an auto-λ solver with ``.trajectory(Y)``."""
        X, Xg = self.design(x, Z)
        return _gam.penalised_map(X, Xg, self.penalty(self.lam, 0 if Z is None else Z.shape[1]))


@dataclass(frozen=True)
class ClassMean(Method):
    name: ClassVar[str] = "class-mean"
    categorical: ClassVar[bool] = True

    def base(self, x):
        X = np.column_stack([x == 0, x == 1]).astype(np.float64)
        t = self.grid_t
        return X, np.column_stack([1.0 - t, t])

    def operator(self, x, Z):
        """Without covariates the map in closed form, ``L[k, i] = (1 − t_k)/n_A`` or ``t_k/n_B``: its entries
        are equal within a group, so a rearrangement within the groups gives the same map bit for bit (the
        exact ties of a permutation test) and a relabelled cohort's map is computed the same way."""
        if Z is not None and Z.shape[1]:
            return super().operator(x, Z)
        return self.closed_form(x)

    def closed_form(self, x: np.ndarray) -> np.ndarray:
        """``L`` (K x n) of class codes ``x`` (0/1): group means interpolated along the grid."""
        b = np.asarray(x) == 1
        t = np.asarray(self.grid_t, np.float64)
        n_b = int(b.sum())
        n_a = b.size - n_b
        return np.where(b[None], t[:, None] / n_b, (1.0 - t)[:, None] / n_a)


@dataclass(frozen=True)
class Linear(Method):
    name: ClassVar[str] = "linear"

    def base(self, x):
        return (np.column_stack([np.ones_like(x), x]), np.column_stack([np.ones_like(self.grid_t), self.grid_t]))


@dataclass(frozen=True)
class Gam(Method):
    name: ClassVar[str] = "gam"
    data_knots: ClassVar[bool] = True

    n_splines: int = 20
    spline_order: int = 3
    lam: float | None = 0.6  # None = auto (GCV per latent dimension)
    lams: np.ndarray = field(default_factory=_gam.default_lambda_grid)
    gamma: float = 1.4

    def base(self, x):
        knots = np.array([np.min(x), np.max(x)])
        return (
            _gam.gam_design(x, knots, n_splines=self.n_splines, spline_order=self.spline_order),
            _gam.gam_design(self.grid_t, knots, n_splines=self.n_splines, spline_order=self.spline_order),
        )

    @classmethod
    def from_options(cls, grid_t, *, gam_splines=20, gam_lam=0.6):
        if int(gam_splines) <= cls.spline_order:
            raise SeegaanError(f"--gam-splines must be larger than the spline order 3 (got {gam_splines})")
        return cls(grid_t, n_splines=int(gam_splines), lam=gam_lam)

    def penalty(self, lam, n_cov):
        return _gam.gam_penalty(lam, n_splines=self.n_splines, n_extra=n_cov)

    def identifiable(self, F):
        return F[:, :-1]  # the intercept column of the B-spline design

    def operator(self, x, Z):
        if self.lam is not None:
            return super().operator(x, Z)
        X, Xg = self.design(x, Z)
        k = 0 if Z is None else Z.shape[1]
        return _gam.GamAutoSolver(X, Xg, self.lams, lambda lam: self.penalty(lam, k), gamma=self.gamma)

    def edf(self, x: np.ndarray, Z: np.ndarray | None, op, lam_idx: np.ndarray | None = None):
        """Effective degrees of freedom, the trace of ``X (X'X + S)^-1 X'``: a float, or with GCV λ one value
        per latent dimension (``op.edof`` at the chosen λ indices ``lam_idx``)."""
        if self.lam is None:
            return op.edof[lam_idx]
        X = self.design(x, Z)[0]
        r = cast(np.ndarray, np.linalg.qr(X, mode="r"))
        return _gam._Factor(r, self.penalty(self.lam, 0 if Z is None else Z.shape[1])).edof

    def smoothing(self, x, Z, op, lam_idx):
        lam = self.lams[lam_idx] if lam_idx is not None else self.lam
        return lam, self.edf(x, Z, op, lam_idx)


#: the interpolation methods by name
REGISTRY: dict[str, type[Method]] = {m.name: m for m in (ClassMean, Linear, Gam)}


def apply(op, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Trajectory (K x D) of operator ``op`` applied to responses ``Y`` (n x D), and the λ indices."""
    if isinstance(op, np.ndarray):
        return op @ Y, None
    traj, idx = op.trajectory(Y)
    return traj, idx
