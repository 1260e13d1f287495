"""Penalised B-spline GAM maths that reproduce pyGAM's ``LinearGAM(s(0))``, as linear maps.

pyGAM is the reference, never the engine: nothing here imports it. The tests compare every
quantity with pyGAM 0.12 (fitted values, predictions inside and outside the data range, edof, GCV,
the λ picked by ``gridsearch``).

What pyGAM does for ``LinearGAM(s(0))`` (read from its source, re-derived here):

* **Basis** (``utils.b_spline_basis`` with ``periodic=False``): x is rescaled to [0, 1] with
  ``offset = min(edge_knots)`` and ``scale = max - min`` (``scale = 1`` when x is constant). The
  knot vector is ``n_splines - spline_order + 1`` equally spaced knots on [0, 1], augmented by
  ``spline_order`` knots each side at the same spacing; the very last knot is moved right by 1e-9
  (which changes no basis value on [0, 1]). Inside [0, 1] (both ends included) the basis is the
  ordinary B-spline basis of degree ``spline_order`` on that knot vector; outside it each basis
  function continues as the straight line tangent to it at 0 or 1 (linear extrapolation). With
  ``spline_order = 0`` there is no extrapolation: rows outside [0, 1] are zero.
* **Design**: the spline columns, then one intercept column of ones (``fit_intercept=True`` adds the
  intercept term after ``s(0)``).
* **Penalty**: ``lam * D'D`` on the spline block, ``D`` the second-difference matrix
  (``penalties.derivative``), nothing on the intercept; then ``sqrt(EPS) * I`` on the whole diagonal
  ("improve condition"), where ``EPS = np.finfo(np.float64).eps``.
* **Fit** (``_pirls`` for a Gaussian identity-link model, which converges in one step):
  ``X = QR``; SVD ``[R; E] = U diag(d) V'`` with ``E'E = penalty``; coefficients
  ``V diag(1/d) U1' Q' y`` with ``U1`` the first ``rank`` rows of ``U``. Mathematically
  ``(X'X + S)^-1 X' y``. ``edof = trace(U1 U1')``, the trace of the influence matrix.
* **GCV** (``_estimate_GCV_UBRE``): ``n * RSS / (n - gamma * edof)**2`` with ``gamma = 1.4``;
  ``gridsearch`` fits ``np.logspace(-3, 3, 11)`` in order and keeps the first strictly smallest GCV.

This module follows the same QR + SVD route, so its maps agree with pyGAM's to ~1e-12 relative
(the remaining difference is rounding; see ``tests/interpolation/test_gam.py``). One deliberate difference: with
fewer observations than design columns (n < p) pyGAM truncates its SVD to n singular values and its
fit is no longer the penalised least-squares solution; here it still is.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.interpolate import BSpline

from seegaan._internal.errors import SeegaanError

__all__ = [
    "EPS",
    "RIDGE",
    "DEFAULT_LAMBDA",
    "DEFAULT_GAMMA",
    "DEFAULT_N_SPLINES",
    "DEFAULT_SPLINE_ORDER",
    "default_lambda_grid",
    "bspline_basis",
    "difference_penalty",
    "gam_design",
    "gam_penalty",
    "penalised_map",
    "penalised_predictions",
    "GamAutoSolver",
    "GamResponses",
]

EPS = float(np.finfo(np.float64).eps)
"""Machine epsilon of float64, as pyGAM's ``EPS``."""

RIDGE = float(np.sqrt(EPS))
"""The ridge pyGAM adds to every diagonal element of the penalty (~1.49e-8)."""

DEFAULT_LAMBDA = 0.6
"""pyGAM's default smoothing parameter ``lam``."""

DEFAULT_GAMMA = 1.4
"""pyGAM's GCV weight on the effective degrees of freedom."""

DEFAULT_N_SPLINES = 20
"""pyGAM's default number of B-spline basis functions of ``s(0)``."""

DEFAULT_SPLINE_ORDER = 3
"""pyGAM's default spline degree (cubic)."""

PenaltyFn = Callable[[float], np.ndarray]


def default_lambda_grid() -> np.ndarray:
    """Return pyGAM's default ``gridsearch`` grid, ``np.logspace(-3, 3, 11)`` (a fresh array)."""
    return np.logspace(-3, 3, 11)


# ----------------------------------------------------------------------------------------------
# basis, design and penalty
# ----------------------------------------------------------------------------------------------


def _check_spline_size(n_splines: int, spline_order: int) -> None:
    if int(spline_order) != spline_order or spline_order < 0:
        raise SeegaanError(f"spline_order must be an integer >= 0, got {spline_order!r}")
    if int(n_splines) != n_splines or n_splines < spline_order + 1:
        raise SeegaanError(
            f"n_splines must be an integer >= spline_order + 1 = {spline_order + 1}, "
            f"got {n_splines!r}; use more splines or a lower spline_order"
        )


def _unit_knots(n_splines: int, spline_order: int) -> np.ndarray:
    """Knot vector on the rescaled axis: uniform on [0, 1], ``spline_order`` more each side."""
    inner = np.linspace(0.0, 1.0, n_splines - spline_order + 1)
    step = inner[1] - inner[0]
    extra = np.arange(1, spline_order + 1) * step
    knots = np.concatenate([-extra[::-1], inner, 1.0 + extra])
    knots[-1] += 1e-9  # as pyGAM; no basis value on [0, 1] depends on the last knot
    return knots


def _rescale(x: np.ndarray, edge_knots) -> np.ndarray:
    edges = np.sort(np.asarray(edge_knots, dtype=np.float64).ravel())
    if edges.size < 2 or not np.all(np.isfinite(edges)):
        raise SeegaanError(f"edge_knots must hold two finite numbers (min, max), got {edge_knots!r}")
    offset = edges[0]
    scale = edges[-1] - edges[0]
    if scale == 0:  # constant feature: pyGAM keeps the scale at 1
        scale = 1.0
    return (x - offset) / scale


def bspline_basis(
    x, edge_knots, *, n_splines: int = DEFAULT_N_SPLINES, spline_order: int = DEFAULT_SPLINE_ORDER
) -> np.ndarray:
    """Evaluate pyGAM's B-spline basis, linearly extrapolated outside the edge knots.

    Parameters
    ----------
    x : array_like, shape (n,)
        Feature values (any real numbers; values outside ``edge_knots`` are extrapolated).
    edge_knots : array_like, shape (2,)
        ``(min, max)`` of the training feature values, as pyGAM's ``edge_knots_``.
    n_splines : int
        Number of basis functions (pyGAM default :data:`DEFAULT_N_SPLINES`); at least
        ``spline_order + 1``.
    spline_order : int
        Polynomial degree of the splines (pyGAM default 3, cubic).

    Returns
    -------
    basis : ndarray, shape (n, n_splines), float64
        Row ``i`` holds every basis function at ``x[i]``. Rows sum to 1 (inside and outside the
        edges for ``spline_order >= 1``).
    """
    _check_spline_size(n_splines, spline_order)
    x = np.asarray(x, dtype=np.float64).ravel()
    if not np.all(np.isfinite(x)):
        raise SeegaanError("the feature holds NaN or infinite values; drop or impute them first")
    u = _rescale(x, edge_knots)
    knots = _unit_knots(n_splines, spline_order)
    k = spline_order
    basis = np.zeros((u.size, n_splines))
    inside = (u >= 0.0) & (u <= 1.0)
    if inside.any():
        # scipy evaluates x == 1 (the last interior knot) from the interval on its left
        basis[inside] = BSpline.design_matrix(u[inside], knots, k).toarray()
    below, above = u < 0.0, u > 1.0
    if k > 0 and (below.any() or above.any()):
        splines = BSpline(knots, np.eye(n_splines), k)
        slopes = splines.derivative()
        ends = BSpline.design_matrix(np.array([0.0, 1.0]), knots, k).toarray()
        basis[below] = ends[0] + u[below, None] * slopes(0.0)
        basis[above] = ends[1] + (u[above, None] - 1.0) * slopes(1.0)
    return basis


def difference_penalty(n_splines: int, *, order: int = 2) -> np.ndarray:
    """Return the difference penalty ``D'D`` of pyGAM's ``penalties.derivative``.

    Parameters
    ----------
    n_splines : int
        Number of spline coefficients.
    order : int
        Difference order (2: squared second differences of adjacent coefficients).

    Returns
    -------
    penalty : ndarray, shape (n_splines, n_splines)
        Symmetric positive semi-definite; zero when ``order >= n_splines``.
    """
    if int(n_splines) != n_splines or n_splines < 1:
        raise SeegaanError(f"n_splines must be a positive integer, got {n_splines!r}")
    if int(order) != order or order < 0:
        raise SeegaanError(f"the difference order must be an integer >= 0, got {order!r}")
    diff = np.diff(np.eye(int(n_splines)), n=int(order), axis=0)
    return diff.T @ diff


def gam_design(
    x, edge_knots, *, n_splines: int = DEFAULT_N_SPLINES, spline_order: int = DEFAULT_SPLINE_ORDER
) -> np.ndarray:
    """Return pyGAM's model matrix for ``s(0)`` plus intercept: spline columns, then ones.

    Parameters
    ----------
    x, edge_knots, n_splines, spline_order
        As in :func:`bspline_basis`.

    Returns
    -------
    design : ndarray, shape (n, n_splines + 1)
    """
    basis = bspline_basis(x, edge_knots, n_splines=n_splines, spline_order=spline_order)
    return np.hstack([basis, np.ones((basis.shape[0], 1))])


def gam_penalty(lam: float, *, n_splines: int = DEFAULT_N_SPLINES, n_extra: int = 0) -> np.ndarray:
    """Return pyGAM's total penalty ``lam * blockdiag(D'D, 0) + sqrt(EPS) * I``.

    Parameters
    ----------
    lam : float
        Smoothing parameter (>= 0).
    n_splines : int
        Number of spline columns (the penalised block comes first).
    n_extra : int
        Unpenalised columns after the intercept (covariates appended to the design); they get only
        the ridge, like the intercept.

    Returns
    -------
    penalty : ndarray, shape (n_splines + 1 + n_extra, n_splines + 1 + n_extra)
    """
    lam = float(lam)
    if not np.isfinite(lam) or lam < 0:
        raise SeegaanError(f"the smoothing parameter lam must be a finite number >= 0, got {lam!r}")
    if int(n_extra) != n_extra or n_extra < 0:
        raise SeegaanError(f"n_extra must be an integer >= 0, got {n_extra!r}")
    p = int(n_splines) + 1 + int(n_extra)
    penalty = np.zeros((p, p))
    penalty[:n_splines, :n_splines] = lam * difference_penalty(n_splines, order=2)
    penalty[np.diag_indices(p)] += RIDGE
    return penalty


# ----------------------------------------------------------------------------------------------
# penalised least squares as a linear map (QR + SVD, the route pyGAM takes)
# ----------------------------------------------------------------------------------------------


def _as_matrix(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise SeegaanError(f"{name} must be a 2-D array, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise SeegaanError(f"{name} holds NaN or infinite values; drop or impute them first")
    return a


def _penalty_root(penalty: np.ndarray) -> np.ndarray:
    """Return ``E`` with ``E'E = penalty`` (upper Cholesky factor; eigen root if semi-definite)."""
    try:
        return np.linalg.cholesky(penalty).T
    except np.linalg.LinAlgError:
        vals, vecs = np.linalg.eigh((penalty + penalty.T) / 2)
        if vals.min() < -1e-10 * max(vals.max(), 1.0):
            raise SeegaanError(
                "the penalty matrix is not positive semi-definite; use a difference penalty plus a ridge (gam_penalty)"
            ) from None
        return np.sqrt(np.clip(vals, 0.0, None))[:, None] * vecs.T


class _Factor:
    """SVD of ``[R; E]`` for one penalty: ``coef = V diag(1/d) U1' z`` with ``z = Q'y``."""

    def __init__(self, r_factor: np.ndarray, penalty: np.ndarray, n_rows: int | None = None):
        p = r_factor.shape[1]
        if penalty.shape != (p, p):
            raise SeegaanError(
                f"the penalty is {penalty.shape[0]}x{penalty.shape[1]} but the design has {p}"
                " columns; pad the penalty for extra covariate columns"
            )
        stacked = np.vstack([r_factor, _penalty_root(penalty)])
        u, d, vt = np.linalg.svd(stacked, full_matrices=False)
        # numpy's matrix_rank rule: the tolerance grows with the larger side of the design (n rows), not p
        if d[-1] <= d[0] * max(p, n_rows or 0) * EPS:
            raise SeegaanError(
                "the penalised normal equations are singular; add a ridge to the penalty"
                " (gam_penalty does) or drop collinear covariates"
            )
        self.u1 = u[: r_factor.shape[0]]  # (rank, p): top block of U
        self.coef_map = (vt.T / d) @ self.u1.T  # (p, rank): z -> coefficients
        self.edof = float(np.sum(self.u1**2))  # trace(U1 U1')


def _qr(design: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q, r = np.linalg.qr(design, mode="reduced")
    return q, r


def penalised_map(X, X_grid, S) -> np.ndarray:
    """Return ``L = X_grid (X'X + S)^-1 X'``, the map from responses to predictions at the grid.

    Computed as pyGAM does, without forming ``X'X``: ``X = QR``, SVD ``[R; E] = U diag(d) V'`` with
    ``E'E = S``, then ``L = X_grid V diag(1/d) U1' Q'``. Agrees with pyGAM's fitted and predicted
    values to ~1e-12 relative.

    Parameters
    ----------
    X : array_like, shape (n, p)
        Design at the observations (e.g. :func:`gam_design`, optionally with covariate columns
        appended).
    X_grid : array_like, shape (K, p)
        Design at the K points where predictions are wanted (the same columns as ``X``).
    S : array_like, shape (p, p)
        Total penalty, ridge included (e.g. :func:`gam_penalty`).

    Returns
    -------
    L : ndarray, shape (K, n)
        ``L @ y`` is the penalised fit of ``y`` evaluated at ``X_grid``; works on (n, D) too.
    """
    X = _as_matrix(X, "X")
    X_grid = _as_matrix(X_grid, "X_grid")
    S = _as_matrix(S, "S")
    if X_grid.shape[1] != X.shape[1]:
        raise SeegaanError(
            f"X_grid has {X_grid.shape[1]} columns but X has {X.shape[1]}; build both with the same"
            " edge knots and covariates"
        )
    q, r = _qr(X)
    factor = _Factor(r, S, n_rows=X.shape[0])
    return (X_grid @ factor.coef_map) @ q.T


def penalised_predictions(designs, X_grid, S, Y) -> np.ndarray:
    """Return ``X_grid (X_b'X_b + S)^-1 X_b' Y`` for a stack of designs ``X_b`` sharing ``Y``.

    For refits under many designs (a permutation null that relabels the feature): per design one
    p x p Gram matrix, one p x D right-hand side and one p x p solve, instead of the n x p QR of
    :func:`penalised_map`. The only tiny eigenvalue of ``X'X + S`` for a spline design with an
    intercept is the ridge, along (intercept - sum of the spline columns); every row of the design
    and of ``X_grid`` sums to zero along it, so the solve's error there never reaches the
    predictions. On the bundled demo (n = 1,600, p = 21) they agree with :func:`penalised_map` to
    ~1e-14 relative; ``tests/interpolation/test_gam_null.py`` checks both and pyGAM.

    Every product and solve is done per design (stacked BLAS/LAPACK calls of one design each), so a
    design's result has the same bits whatever else is in the stack.

    Parameters
    ----------
    designs : ndarray, shape (nb, n, p)
        One design at the observations per refit.
    X_grid : ndarray, shape (K, p)
        Design at the K prediction points (the same columns).
    S : ndarray, shape (p, p)
        Total penalty, ridge included; must make every ``X_b'X_b + S`` non-singular.
    Y : ndarray, shape (n, D)
        Responses, shared by every design.

    Returns
    -------
    predictions : ndarray, shape (nb, K, D)
    """
    designs = np.asarray(designs, dtype=np.float64)
    if designs.ndim != 3 or designs.shape[2] != X_grid.shape[1] or designs.shape[1] != Y.shape[0]:
        raise SeegaanError(
            f"designs of shape {designs.shape} do not fit X_grid {X_grid.shape} and Y {Y.shape};"
            " give (nb, n, p) designs, a (K, p) grid design and (n, D) responses"
        )
    transposed = designs.transpose(0, 2, 1)
    gram = transposed @ designs + S
    try:
        coef = np.linalg.solve(gram, transposed @ Y)
    except np.linalg.LinAlgError:
        raise SeegaanError(
            "the penalised normal equations are singular; add a ridge to the penalty"
            " (gam_penalty does) or drop collinear covariates"
        ) from None
    return X_grid @ coef


# ----------------------------------------------------------------------------------------------
# λ by GCV, vectorised over response columns
# ----------------------------------------------------------------------------------------------


class GamResponses:
    """Responses validated once for many :class:`GamAutoSolver` calls (e.g. one per permutation).

    Holds the float64 responses and what a row permutation leaves unchanged: the column means and
    the centred (or plain) sums of squares. Build it with :meth:`GamAutoSolver.prepare`.

    Attributes
    ----------
    values : ndarray, shape (n, D)
    mean : ndarray, shape (D,)
    total_ss : ndarray, shape (D,)
        ``|y - ȳ|²`` when the solver's design holds the constant, else ``|y|²``.
    is_vector : bool
        Whether the responses were given as a 1-D array (results are then squeezed).
    """

    def __init__(self, values: np.ndarray, mean: np.ndarray, total_ss: np.ndarray, is_vector: bool):
        self.values = values
        self.mean = mean
        self.total_ss = total_ss
        self.is_vector = is_vector


class GamAutoSolver:
    """Per-column λ by GCV and the resulting trajectories, for many responses sharing one design.

    Everything that depends only on the design is computed once: the QR factor ``X = QR`` and, per
    candidate λ, the SVD of ``[R; E_λ]`` (coefficient map, influence matrix, edof) and the grid map
    ``X_grid V diag(1/d) U1'``. A call then costs one product ``Q'Y`` (n·rank·D multiply-adds) plus
    O(n_lam·rank²·D); with ``perm`` the rows of ``Q`` are permuted instead of copying ``Y``.

    RSS is split exactly as ``RSS = |(I - QQ')y|² + |(I - U1 U1') Q'y|²``. The first, λ-free term is
    taken as ``|y - ȳ|² - |Q'(y - ȳ)|²`` when the constant is in the column space of ``X`` (it is
    with an intercept column), which avoids cancellation for responses with a large mean; otherwise
    as ``|y|² - |Q'y|²``. The λ-dependent term is computed directly. GCV values agree with pyGAM's
    to ~1e-12 relative and pick the same λ.

    Parameters
    ----------
    X : array_like, shape (n, p)
        Design at the observations (spline columns, intercept, optional covariates).
    X_grid : array_like, shape (K, p)
        Design at the K trajectory points.
    lams : array_like, shape (n_lam,)
        Candidate smoothing parameters, in pyGAM's order (ties go to the first).
    penalty_fn : callable
        ``penalty_fn(lam) -> (p, p)`` total penalty, e.g. ``functools.partial(gam_penalty,
        n_splines=20)``.
    gamma : float
        GCV weight on the effective degrees of freedom (pyGAM: 1.4).

    Attributes
    ----------
    lams : ndarray, shape (n_lam,)
    edof : ndarray, shape (n_lam,)
        Effective degrees of freedom (trace of the influence matrix) per λ, as pyGAM's
        ``statistics_['edof']``.
    n_obs : int
    """

    def __init__(self, X, X_grid, lams, penalty_fn: PenaltyFn, *, gamma: float = DEFAULT_GAMMA):
        X = _as_matrix(X, "X")
        X_grid = _as_matrix(X_grid, "X_grid")
        if X_grid.shape[1] != X.shape[1]:
            raise SeegaanError(
                f"X_grid has {X_grid.shape[1]} columns but X has {X.shape[1]}; build both with the"
                " same edge knots and covariates"
            )
        lams = np.asarray(lams, dtype=np.float64).ravel()
        if lams.size == 0 or not np.all(np.isfinite(lams)):
            raise SeegaanError("give at least one finite smoothing parameter (lams)")
        gamma = float(gamma)
        if not gamma >= 1.0:
            raise SeegaanError(f"gamma must be >= 1 (pyGAM uses 1.4), got {gamma!r}")
        self.lams = lams
        self.gamma = gamma
        self.n_obs = X.shape[0]
        q, r = _qr(X)
        self._qt = np.ascontiguousarray(q.T)  # (rank, n): Q' laid out for the Q'Y product
        factors = [_Factor(r, _as_matrix(penalty_fn(lam), "penalty"), n_rows=self.n_obs) for lam in lams]
        self.edof = np.array([f.edof for f in factors])
        rank = r.shape[0]
        # (n_lam, rank, rank): I - U1 U1', the residual operator in Q coordinates
        self._resid = np.stack([np.eye(rank) - f.u1 @ f.u1.T for f in factors])
        # (n_lam, K, rank): z -> trajectory at the grid
        self._grid = np.stack([X_grid @ f.coef_map for f in factors])
        # (n_lam, p, rank): z -> coefficients
        self._coef = np.stack([f.coef_map for f in factors])
        self._q_ones = q.sum(axis=0)  # Q'1
        # whether the constant lies in the column space of X (an intercept column)
        self._centred = bool(np.sum((1.0 - q @ self._q_ones) ** 2) <= 1e-20 * self.n_obs)

    # -- responses -------------------------------------------------------------------------------

    def prepare(self, Y) -> GamResponses:
        """Validate ``Y`` (shape (n, D) or (n,)) once and keep its permutation-invariant sums.

        Pass the result instead of ``Y`` when the same responses are refitted under many
        permutations: the per-call cost then drops to the ``Q'Y`` product and O(n_lam·rank²·D).
        """
        if isinstance(Y, GamResponses):
            return Y
        values = np.asarray(Y)
        is_vector = values.ndim == 1
        if is_vector:
            values = values[:, None]
        if values.ndim != 2 or values.shape[0] != self.n_obs:
            raise SeegaanError(
                f"the responses must have {self.n_obs} rows (one per observation), got shape {np.shape(Y)}"
            )
        values = np.ascontiguousarray(values, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise SeegaanError("the responses hold NaN or infinite values; drop or impute them first")
        mean = values.mean(axis=0)
        if self._centred:
            centred = values - mean
            total_ss = np.einsum("ij,ij->j", centred, centred)
        else:
            total_ss = np.einsum("ij,ij->j", values, values)
        return GamResponses(values, mean, total_ss, is_vector)

    def _inverse(self, perm) -> np.ndarray:
        """Validate a row permutation and return its inverse."""
        perm = np.asarray(perm)
        if (
            perm.shape != (self.n_obs,)
            or not np.issubdtype(perm.dtype, np.integer)
            or perm.min() < 0
            or perm.max() >= self.n_obs
            or np.any(np.bincount(perm, minlength=self.n_obs) != 1)
        ):
            raise SeegaanError(f"perm must be a permutation of 0..{self.n_obs - 1} (one index per observation)")
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(self.n_obs)
        return inverse

    def _projection(self, resp: GamResponses, perm) -> np.ndarray:
        """``Q' y[perm]`` for every column, shape (rank, D), without copying the responses.

        ``Q' y[perm] = sum_i Q[i] y[perm[i]] = Q'[:, perm^-1] y``.
        """
        if perm is None:
            return self._qt @ resp.values
        return self._qt[:, self._inverse(perm)] @ resp.values

    def _gcv_from(self, resp: GamResponses, z: np.ndarray) -> np.ndarray:
        """GCV (n_lam, D) from ``z = Q'y``; mean and total SS are permutation-invariant."""
        if self._centred:
            zc = z - self._q_ones[:, None] * resp.mean
            base = resp.total_ss - np.einsum("ij,ij->j", zc, zc)
        else:
            base = resp.total_ss - np.einsum("ij,ij->j", z, z)
        base = np.maximum(base, 0.0)  # |(I - QQ')y|², never negative
        fit_resid = self._resid @ z  # (n_lam, rank, D)
        rss = base + np.einsum("lrd,lrd->ld", fit_resid, fit_resid)
        n = self.n_obs
        return n * rss / (n - self.gamma * self.edof)[:, None] ** 2

    @staticmethod
    def _pick(maps: np.ndarray, z: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Apply ``maps[index[j]]`` (n_lam, m, rank) to column ``j`` of ``z`` (rank, D) -> (m, D)."""
        out = np.empty((maps.shape[1], z.shape[1]))
        for lam_i in np.unique(index):
            cols = np.flatnonzero(index == lam_i)
            out[:, cols] = maps[lam_i] @ z[:, cols]
        return out

    # -- public ----------------------------------------------------------------------------------

    def gcv(self, Y, *, perm=None) -> np.ndarray:
        """Return GCV scores of ``Y[perm]``, shape (n_lam, D) (or (n_lam,) for a 1-D ``Y``).

        Parameters
        ----------
        Y : array_like, shape (n, D) or (n,), or GamResponses
            Responses, one row per observation.
        perm : array_like of int, shape (n,), optional
            Row permutation: the responses used are ``Y[perm]``.
        """
        resp = self.prepare(Y)
        scores = self._gcv_from(resp, self._projection(resp, perm))
        return scores[:, 0] if resp.is_vector else scores

    def select(self, Y, *, perm=None) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(lam_index (D,), gcv (n_lam, D))``: per column the first λ with smallest GCV."""
        scores = self.gcv(Y, perm=perm)
        return np.argmin(scores, axis=0), scores

    def trajectory(self, Y, *, perm=None) -> tuple[np.ndarray, np.ndarray]:
        """Fit every column of ``Y[perm]`` with its GCV-chosen λ and evaluate it at the grid.

        Parameters
        ----------
        Y : array_like, shape (n, D) or (n,), or GamResponses
            Responses (e.g. latent dimensions), one row per observation. Pass
            ``solver.prepare(Y)`` when calling many times with the same ``Y``.
        perm : array_like of int, shape (n,), optional
            Row permutation: the responses used are ``Y[perm]`` (permutation null), computed by
            permuting the rows of ``Q`` instead of copying ``Y``.

        Returns
        -------
        traj : ndarray, shape (K, D)
            Fitted curves at the grid (``(K,)`` for a 1-D ``Y``).
        lam_index : ndarray of int, shape (D,)
            Index into ``lams`` of each column's λ (a scalar for a 1-D ``Y``).
        """
        resp = self.prepare(Y)
        z = self._projection(resp, perm)
        index = np.argmin(self._gcv_from(resp, z), axis=0)
        traj = self._pick(self._grid, z, index)
        return (traj[:, 0], index[0]) if resp.is_vector else (traj, index)

    def trajectories(self, Y, perms, *, chunk: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`trajectory` for many row permutations at once (same results, fewer BLAS calls).

        The ``Q'Y`` products of up to ``chunk`` permutations are done as one matrix product.

        Parameters
        ----------
        Y : array_like, shape (n, D), or GamResponses
            Responses, one row per observation.
        perms : array_like of int, shape (B, n)
            One row permutation per row; permutation ``b`` uses ``Y[perms[b]]``.
        chunk : int
            Permutations per matrix product (memory ~ chunk * rank * n floats).

        Returns
        -------
        traj : ndarray, shape (B, K, D)
        lam_index : ndarray of int, shape (B, D)
        """
        resp = self.prepare(Y)
        perms = np.asarray(perms)
        if perms.ndim != 2 or perms.shape[1] != self.n_obs:
            raise SeegaanError(f"perms must have shape (B, {self.n_obs}), one permutation per row; got {perms.shape}")
        chunk = max(1, int(chunk))
        rank = self._qt.shape[0]
        n_perm, n_cols = perms.shape[0], resp.values.shape[1]
        traj = np.empty((n_perm, self._grid.shape[1], n_cols))
        index = np.empty((n_perm, n_cols), dtype=np.intp)
        for start in range(0, n_perm, chunk):
            block = perms[start : start + chunk]
            stacked = np.concatenate([self._qt[:, self._inverse(p)] for p in block])
            z_all = (stacked @ resp.values).reshape(len(block), rank, n_cols)
            for offset, z in enumerate(z_all):
                b = start + offset
                index[b] = np.argmin(self._gcv_from(resp, z), axis=0)
                traj[b] = self._pick(self._grid, z, index[b])
        return traj, index

    def coefficients(self, Y, *, perm=None) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(coef (p, D), lam_index (D,))`` of the GCV-chosen fits of ``Y[perm]``."""
        resp = self.prepare(Y)
        z = self._projection(resp, perm)
        index = np.argmin(self._gcv_from(resp, z), axis=0)
        coef = self._pick(self._coef, z, index)
        return (coef[:, 0], index[0]) if resp.is_vector else (coef, index)
