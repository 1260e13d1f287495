"""The GAM maths of ``seegaan.interpolation.gam`` against pyGAM 0.12 (the reference, never the engine)."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

from seegaan import SeegaanError
from seegaan.interpolation import gam as G

pygam = pytest.importorskip("pygam")
from pygam import LinearGAM, l, s  # noqa: E402
from pygam.penalties import derivative  # noqa: E402
from pygam.utils import b_spline_basis  # noqa: E402

TOL = 1e-8


def _feature(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "uniform":
        return rng.uniform(-3.0, 7.0, n)
    if kind == "lognormal":  # skewed: few points in the right tail
        return rng.lognormal(0.0, 1.0, n)
    if kind == "ties":  # heavy ties, e.g. an integer age
        return rng.integers(40, 60, n).astype(float)
    raise ValueError(kind)


def _grid(x: np.ndarray, k: int = 10) -> np.ndarray:
    """Grid between the 5th and 95th percentiles, the edges, and points beyond both edges."""
    lo, hi = np.percentile(x, [5, 95])
    span = x.max() - x.min()
    outside = [x.min() - 0.5 * span, x.min() - 1e-3 * span, x.max() + 1e-3 * span, x.max() + span]
    return np.concatenate([np.linspace(lo, hi, k), [x.min(), x.max()], outside])


def _assert_close(actual, desired, tol=TOL):
    desired = np.asarray(desired, dtype=float)
    scale = max(1.0, float(np.max(np.abs(desired))))
    np.testing.assert_allclose(actual, desired, rtol=0, atol=tol * scale)


def _responses(x: np.ndarray, n_cols: int, rng: np.random.Generator) -> np.ndarray:
    """Columns from pure noise to smooth signals, with offsets, so GCV picks many different λ."""
    z = (x - x.mean()) / x.std()
    cols = []
    for j in range(n_cols):
        amp = [0.0, 0.3, 1.0, 3.0][j % 4]
        freq = [0.5, 1.0, 2.0, 4.0, 8.0][j % 5]
        offset = [0.0, 10.0, -50.0][j % 3]
        noise = [0.1, 1.0][j % 2]
        cols.append(offset + amp * np.sin(freq * z) + noise * rng.normal(size=x.size))
    return np.column_stack(cols)


# ---------------------------------------------------------------------------------------------
# basis and penalty
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "kind"), [(10, "uniform"), (11, "lognormal"), (12, "ties")])
@pytest.mark.parametrize(("n_splines", "order"), [(20, 3), (8, 3), (12, 2), (5, 1), (6, 0)])
def test_basis_matches_pygam(seed, kind, n_splines, order):
    rng = np.random.default_rng(seed)
    x = _feature(kind, 150, rng)
    edges = (x.min(), x.max())
    pts = np.concatenate([x, _grid(x)])
    ours = G.bspline_basis(pts, edges, n_splines=n_splines, spline_order=order)
    ref = b_spline_basis(pts, edges, n_splines=n_splines, spline_order=order, sparse=False, periodic=False)
    assert ours.shape == (pts.size, n_splines)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    if order > 0:  # a partition of unity everywhere, extrapolated rows included
        np.testing.assert_allclose(ours.sum(axis=1), 1.0, atol=1e-12)


def test_basis_is_linear_outside_the_edges():
    x = np.linspace(2.0, 5.0, 50)
    far = np.array([-10.0, -5.0, 0.0, 10.0, 15.0, 20.0])
    basis = G.bspline_basis(far, (2.0, 5.0))
    # three collinear points per side: second differences vanish
    np.testing.assert_allclose(basis[0] - 2 * basis[1] + basis[2], 0.0, atol=1e-12)
    np.testing.assert_allclose(basis[3] - 2 * basis[4] + basis[5], 0.0, atol=1e-12)
    # and the lines meet the curve at the edges
    inside = G.bspline_basis(x, (2.0, 5.0))
    near = G.bspline_basis([2.0 - 1e-7, 5.0 + 1e-7], (2.0, 5.0))
    np.testing.assert_allclose(near, inside[[0, -1]], atol=1e-6)


@pytest.mark.parametrize("n_splines", [1, 2, 3, 8, 20])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_difference_penalty_matches_pygam(n_splines, order):
    ref = derivative(n_splines, None, derivative=order).toarray()
    np.testing.assert_array_equal(G.difference_penalty(n_splines, order=order), ref)


def test_gam_penalty_layout():
    pen = G.gam_penalty(2.5, n_splines=6, n_extra=2)
    assert pen.shape == (9, 9)
    np.testing.assert_allclose(pen - pen.T, 0.0)
    # intercept and extra columns carry only the ridge
    np.testing.assert_array_equal(pen[6:, :], np.diag(np.full(9, G.RIDGE))[6:, :])
    np.testing.assert_allclose(pen[:6, :6], 2.5 * G.difference_penalty(6) + G.RIDGE * np.eye(6), rtol=0, atol=0)
    assert G.RIDGE == np.sqrt(np.finfo(np.float64).eps)


# ---------------------------------------------------------------------------------------------
# fixed λ: fitted values, predictions, edof, GCV
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["uniform", "lognormal"])
@pytest.mark.parametrize(("lam", "n_splines"), [(0.6, 20), (1e-3, 20), (250.0, 20), (0.6, 7)])
def test_fixed_lambda_matches_pygam(seed, kind, lam, n_splines):
    rng = np.random.default_rng(seed)
    x = _feature(kind, 200, rng)
    y = 5.0 + np.sin(x) + rng.normal(0.0, 0.5, x.size)
    grid = _grid(x)
    gam = LinearGAM(s(0, n_splines=n_splines, lam=lam)).fit(x, y)

    edges = (x.min(), x.max())
    design = G.gam_design(x, edges, n_splines=n_splines)
    design_grid = G.gam_design(grid, edges, n_splines=n_splines)
    penalty = G.gam_penalty(lam, n_splines=n_splines)

    _assert_close(G.penalised_map(design, design, penalty) @ y, gam.predict(x))
    _assert_close(G.penalised_map(design, design_grid, penalty) @ y, gam.predict(grid))

    solver = G.GamAutoSolver(design, design_grid, [lam], functools.partial(G.gam_penalty, n_splines=n_splines))
    np.testing.assert_allclose(solver.edof[0], gam.statistics_["edof"], rtol=TOL)
    np.testing.assert_allclose(solver.gcv(y)[0], gam.statistics_["GCV"], rtol=TOL)
    coef, _ = solver.coefficients(y)
    _assert_close(design_grid @ coef, gam.predict(grid))


def test_constant_feature_matches_pygam():
    rng = np.random.default_rng(3)
    x = np.full(60, 2.0)
    y = rng.normal(size=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gam = LinearGAM(s(0)).fit(x, y)
    grid = np.array([0.5, 2.0, 3.5])
    edges = (2.0, 2.0)
    L = G.penalised_map(G.gam_design(x, edges), G.gam_design(grid, edges), G.gam_penalty(0.6))
    _assert_close(L @ y, gam.predict(grid))


def test_extra_unpenalised_covariate_matches_pygam():
    """A covariate column after the intercept, with only the ridge, equals pyGAM's l(1, lam=0)."""
    rng = np.random.default_rng(4)
    n = 180
    x = _feature("lognormal", n, rng)
    cov = rng.normal(size=n)
    y = np.cos(x) + 0.7 * cov + rng.normal(0.0, 0.3, n)
    gam = LinearGAM(s(0) + l(1, lam=0.0)).fit(np.column_stack([x, cov]), y)

    grid = _grid(x)
    grid_cov = rng.normal(size=grid.size)
    edges = (x.min(), x.max())
    design = np.column_stack([G.gam_design(x, edges), cov])
    design_grid = np.column_stack([G.gam_design(grid, edges), grid_cov])
    L = G.penalised_map(design, design_grid, G.gam_penalty(0.6, n_extra=1))
    _assert_close(L @ y, gam.predict(np.column_stack([grid, grid_cov])))


def test_penalised_map_acts_on_columns():
    rng = np.random.default_rng(5)
    x = rng.uniform(size=120)
    Y = rng.normal(size=(120, 4))
    design = G.gam_design(x, (x.min(), x.max()))
    L = G.penalised_map(design, design[:7], G.gam_penalty(0.6))
    assert L.shape == (7, 120)
    direct = np.linalg.solve(design.T @ design + G.gam_penalty(0.6), design.T @ Y)
    np.testing.assert_allclose(L @ Y, design[:7] @ direct, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# λ by GCV (pyGAM's gridsearch)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "kind"), [(0, "uniform"), (1, "lognormal")])
def test_gridsearch_matches_pygam(seed, kind):
    rng = np.random.default_rng(seed)
    n, n_cols = 200, 20
    x = _feature(kind, n, rng)
    Y = _responses(x, n_cols, rng)
    grid = _grid(x)
    edges = (x.min(), x.max())
    lams = G.default_lambda_grid()
    design, design_grid = G.gam_design(x, edges), G.gam_design(grid, edges)

    solver = G.GamAutoSolver(design, design_grid, lams, G.gam_penalty)
    traj, index = solver.trajectory(Y)
    chosen, gcv = solver.select(Y)
    np.testing.assert_array_equal(chosen, index)
    assert traj.shape == (grid.size, n_cols) and gcv.shape == (lams.size, n_cols)

    for j in range(n_cols):
        gam = LinearGAM(s(0))
        scores = gam.gridsearch(x[:, None], Y[:, j], progress=False, return_scores=True)
        ref_lams = [float(np.ravel(m.lam)[0]) for m in scores]
        np.testing.assert_allclose(ref_lams, lams)
        np.testing.assert_allclose(gcv[:, j], list(scores.values()), rtol=TOL)
        assert lams[index[j]] == pytest.approx(float(np.ravel(gam.lam)[0]), rel=1e-12)
        _assert_close(traj[:, j], gam.predict(grid))
    # the test data reach several λ, both ends of the grid included
    assert len(np.unique(index)) >= 4


def test_ties_go_to_the_first_lambda():
    rng = np.random.default_rng(6)
    x = rng.uniform(size=80)
    Y = rng.normal(size=(80, 5))
    design = G.gam_design(x, (x.min(), x.max()))
    best, gcv = G.GamAutoSolver(design, design, [0.6, 0.6, 0.6], G.gam_penalty).select(Y)
    np.testing.assert_array_equal(gcv[0], gcv[2])
    np.testing.assert_array_equal(best, 0)


def test_large_mean_does_not_change_the_choice():
    """RSS uses centred sums: a large mean gets pyGAM's GCV, not cancellation noise."""
    rng = np.random.default_rng(7)
    n = 200
    x = _feature("uniform", n, rng)
    y = 1e4 + np.sin(x) + rng.normal(0.0, 0.2, n)
    design = G.gam_design(x, (x.min(), x.max()))
    solver = G.GamAutoSolver(design, design, G.default_lambda_grid(), G.gam_penalty)
    _, gcv = solver.select(y[:, None])
    scores = LinearGAM(s(0)).gridsearch(x[:, None], y, progress=False, return_scores=True)
    np.testing.assert_allclose(gcv[:, 0], list(scores.values()), rtol=1e-7)


def test_permutation_argument_equals_permuted_copy():
    rng = np.random.default_rng(8)
    n, n_cols = 150, 12
    x = _feature("lognormal", n, rng)
    Y = _responses(x, n_cols, rng)
    edges = (x.min(), x.max())
    solver = G.GamAutoSolver(
        G.gam_design(x, edges),
        G.gam_design(_grid(x), edges),
        G.default_lambda_grid(),
        G.gam_penalty,
    )
    prepared = solver.prepare(Y)
    for _ in range(3):
        perm = rng.permutation(n)
        traj_copy, idx_copy = solver.trajectory(Y[perm])
        traj_perm, idx_perm = solver.trajectory(prepared, perm=perm)
        np.testing.assert_array_equal(idx_perm, idx_copy)
        np.testing.assert_allclose(traj_perm, traj_copy, rtol=0, atol=1e-10)
        np.testing.assert_allclose(solver.gcv(Y, perm=perm), solver.gcv(Y[perm]), rtol=1e-12)
    # a 1-D response gives 1-D results equal to the matching column
    traj1, idx1 = solver.trajectory(Y[:, 3])
    traj_all, idx_all = solver.trajectory(Y)
    assert traj1.shape == (traj_all.shape[0],) and idx1 == idx_all[3]
    np.testing.assert_allclose(traj1, traj_all[:, 3], atol=1e-12)


def test_solver_without_intercept_uses_plain_sums():
    """Without a constant in the design the λ-free RSS part is |y|² - |Q'y|²; still exact."""
    rng = np.random.default_rng(9)
    n = 120
    X = rng.normal(size=(n, 4))
    Y = X @ rng.normal(size=(4, 3)) + rng.normal(size=(n, 3)) + 3.0
    lams = [0.1, 10.0]
    pen = lambda lam: lam * np.eye(4)  # noqa: E731
    _, gcv = G.GamAutoSolver(X, X, lams, pen).select(Y)
    for i, lam in enumerate(lams):
        L = G.penalised_map(X, X, pen(lam))
        rss = np.sum((Y - L @ Y) ** 2, axis=0)
        edof = np.trace(L)
        np.testing.assert_allclose(gcv[i], n * rss / (n - 1.4 * edof) ** 2, rtol=1e-10)


# ---------------------------------------------------------------------------------------------
# errors a caller can make
# ---------------------------------------------------------------------------------------------


def test_errors_are_one_line_seegaan_errors():
    x = np.linspace(0, 1, 30)
    design = G.gam_design(x, (0, 1))
    with pytest.raises(SeegaanError, match="n_splines"):
        G.bspline_basis(x, (0, 1), n_splines=3, spline_order=3)
    with pytest.raises(SeegaanError, match="NaN"):
        G.bspline_basis([0.1, np.nan], (0, 1))
    with pytest.raises(SeegaanError, match="columns"):
        G.penalised_map(design, design[:, :-1], G.gam_penalty(0.6))
    with pytest.raises(SeegaanError, match="pad the penalty"):
        G.penalised_map(np.column_stack([design, x]), design[:, :1].repeat(22, 1), G.gam_penalty(0.6))
    with pytest.raises(SeegaanError, match="singular"):
        G.penalised_map(design, design, np.zeros((21, 21)))
    solver = G.GamAutoSolver(design, design[:3], [0.6, 6.0], G.gam_penalty)
    with pytest.raises(SeegaanError, match="rows"):
        solver.trajectory(np.zeros((29, 2)))
    with pytest.raises(SeegaanError, match="permutation"):
        solver.trajectory(np.zeros((30, 2)), perm=np.zeros(30, dtype=int))
    with pytest.raises(SeegaanError, match="gamma"):
        G.GamAutoSolver(design, design[:3], [0.6], G.gam_penalty, gamma=0.5)


def test_batched_permutations_equal_single_calls():
    rng = np.random.default_rng(10)
    n, n_cols = 140, 9
    x = _feature("uniform", n, rng)
    Y = _responses(x, n_cols, rng)
    edges = (x.min(), x.max())
    solver = G.GamAutoSolver(
        G.gam_design(x, edges),
        G.gam_design(_grid(x), edges),
        G.default_lambda_grid(),
        G.gam_penalty,
    )
    perms = np.stack([rng.permutation(n) for _ in range(7)])
    traj, index = solver.trajectories(Y, perms, chunk=3)
    assert traj.shape == (7, _grid(x).size, n_cols) and index.shape == (7, n_cols)
    for b, perm in enumerate(perms):
        single, single_index = solver.trajectory(Y, perm=perm)
        np.testing.assert_array_equal(index[b], single_index)
        np.testing.assert_allclose(traj[b], single, rtol=0, atol=1e-10)
    with pytest.raises(SeegaanError, match="perms must have shape"):
        solver.trajectories(Y, perms[:, :-1])


def test_fewer_observations_than_columns_is_exact_penalised_least_squares():
    """n < p: pyGAM truncates its SVD; this module keeps the exact solution of (X'X + S) b = X'y."""
    rng = np.random.default_rng(11)
    x = rng.uniform(size=12)
    y = rng.normal(size=12)
    design = G.gam_design(x, (x.min(), x.max()))
    penalty = G.gam_penalty(0.6)
    direct = design @ np.linalg.solve(design.T @ design + penalty, design.T @ y)
    np.testing.assert_allclose(G.penalised_map(design, design, penalty) @ y, direct, atol=1e-9)
    solver = G.GamAutoSolver(design, design, [0.6], G.gam_penalty)
    hat = design @ np.linalg.solve(design.T @ design + penalty, design.T)
    np.testing.assert_allclose(solver.edof[0], np.trace(hat), rtol=1e-9)


def test_interpolation_edf_is_the_hat_matrix_trace_and_pygams_edof():
    """``InterpolationResult.edf`` = trace(X (X'X + S)^-1 X') = pyGAM's ``statistics_['edof']``."""
    import pandas as pd

    import seegaan

    rng = np.random.default_rng(11)
    n, lam, n_splines = 60, 2.0, 8
    x = rng.uniform(0, 10, n)
    y = np.sin(x) + rng.normal(0, 0.3, n)
    table = pd.DataFrame({"image_id": [f"i{i}" for i in range(n)], "patient_id": [f"p{i}" for i in range(n)], "x": x})
    res = seegaan.interpolate(
        seegaan.create_cohort(np.column_stack([y, -y]).astype(np.float32), table),
        feature="x",
        method="gam",
        gam_lam=lam,
        gam_splines=n_splines,
    )
    X = G.gam_design(x, [x.min(), x.max()], n_splines=n_splines)
    S = G.gam_penalty(lam, n_splines=n_splines)
    hat = X @ np.linalg.solve(X.T @ X + S, X.T)
    assert res.edf == pytest.approx(np.trace(hat), rel=1e-9)
    ref = LinearGAM(s(0, n_splines=n_splines, lam=lam)).fit(x[:, None], y)
    assert res.edf == pytest.approx(ref.statistics_["edof"], rel=1e-9)
    assert 2 < res.edf < n_splines + 1
