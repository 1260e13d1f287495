"""seegaan.stats.standard_errors: delta-method linearisation and per-permutation Welch / HC standard errors (issue
#11)."""

import numpy as np
import pytest

from seegaan.stats import standard_errors as _welch

try:  # the statistics are moving into seegaan.stats
    from seegaan.stats.permutation import draw_permutations
except ImportError:  # pragma: no cover
    from seegaan.permutation import draw_permutations

from seegaan.testing.decoders import linear8, planted


def _latents(n=30, D=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, D)) * rng.uniform(0.5, 2.0, D) + rng.standard_normal(D)


@pytest.mark.parametrize("along", ["axes", "images"])
def test_linearisation_equals_exact_jacobian_product_for_a_linear_decoder(along):
    W = _latents()
    u = _welch.linearise(linear8, W, along=along)
    exact = (W - W.mean(axis=0)) @ linear8.A.astype(np.float64)  # J = A' for decode = w @ A
    assert u.shape == (30, 64)
    np.testing.assert_allclose(u, exact, rtol=0, atol=2e-4 * np.abs(exact).max())
    J = _welch.jacobian(linear8, W.mean(axis=0))
    np.testing.assert_allclose(J, linear8.A.T, atol=2e-4)


def test_per_step_linearisation_and_nonlinear_decoder():
    W = _latents(n=20)
    traj = np.stack([W.mean(0) + s * np.eye(8)[0] for s in (0.0, 1.0, 2.0)])
    U = _welch.linearise(planted, W, at=traj)
    assert U.shape == (3, 20, 64)
    for k in range(3):  # against a central difference with a much larger step (smooth decoder: close)
        ref = _welch.linearise(planted, W, at=traj[k], along="images", h=1e-2)
        np.testing.assert_allclose(U[k], ref, atol=1e-3 * np.abs(ref).max())
    # the axes and the per-image directions agree for a nonlinear decoder too
    np.testing.assert_allclose(
        _welch.linearise(planted, W, along="axes"), _welch.linearise(planted, W, along="images"), atol=1e-3
    )


def _direct_se(u, groups, rows, scheme):
    """Per-permutation Welch SE from np.var, with the group of each latent by the plan convention."""
    out = []
    for idx in rows:
        if scheme == "patient-label":
            g = groups[idx]  # image i (and its latent) carries the label of image idx[i]
        else:
            g = np.empty_like(groups)
            g[idx] = groups  # latent idx[i] lands in image i's group
        uA, uB = u[g == 0], u[g == 1]
        out.append(np.sqrt(np.var(uA, axis=0, ddof=1) / len(uA) + np.var(uB, axis=0, ddof=1) / len(uB)))
    return np.array(out)


@pytest.mark.parametrize("scheme", ["image", "whole-block", "patient-label"])
def test_se_from_group_sums_equals_direct_computation(scheme):
    rng = np.random.default_rng(3)
    n_pat, per = 15, 2
    pid = np.repeat([f"p{i}" for i in range(n_pat)], per)
    if scheme == "image":
        pid = np.array([f"p{i}" for i in range(n_pat * per)])
    n = pid.size
    groups = np.repeat(rng.random(n // per if scheme != "image" else n) < 0.4, per if scheme != "image" else 1).astype(
        int
    )
    groups[:2], groups[-2:] = 0, 1
    u = rng.standard_normal((n, 12)) * (1 + 2 * groups[:, None])
    plan = draw_permutations(pid, 25, feature=groups, scheme=scheme, seed=1)
    rows = np.vstack([np.arange(n), plan.indices])
    se = _welch.welch_se(u, groups, rows, scheme, batch_size=7)
    np.testing.assert_allclose(se, _direct_se(u, groups, rows, scheme), rtol=1e-10)
    # the group sizes follow the plan; the observed row is the identity under every scheme
    np.testing.assert_allclose(se[0], _direct_se(u, groups, np.arange(n)[None], "image")[0], rtol=1e-10)


def test_group_indicator_conventions():
    groups = np.array([0, 0, 1, 1, 1])
    idx = np.array([[4, 3, 2, 1, 0]])
    # image i receives latent idx[i] and keeps its group: latent 4 -> image 0 (group 0)
    np.testing.assert_array_equal(_welch.group_indicator(groups, idx, "image")[0], [1, 1, 1, 0, 0])
    # patient-label: image i receives the label of image idx[i]
    np.testing.assert_array_equal(_welch.group_indicator(groups, idx, "patient-label")[0], [1, 1, 1, 0, 0])
    idx = np.array([[1, 2, 3, 4, 0]])
    np.testing.assert_array_equal(_welch.group_indicator(groups, idx, "whole-block")[0], [1, 0, 0, 1, 1])
    np.testing.assert_array_equal(_welch.group_indicator(groups, idx, "patient-label")[0], [0, 1, 1, 1, 0])


def test_batch_size_invariance_and_step_scaling():
    rng = np.random.default_rng(4)
    n = 40
    groups = (np.arange(n) < 10).astype(int)
    u = rng.standard_normal((n, 16))
    rows = draw_permutations(np.arange(n).astype(str), 50, seed=2).indices
    t = np.linspace(0, 1, 5)
    ref = _welch.welch_se(u, groups, rows, "image", t=t, batch_size=50)
    assert ref.shape == (50, 5, 16)
    for bs in (1, 3, 17):
        np.testing.assert_array_equal(_welch.welch_se(u, groups, rows, "image", t=t, batch_size=bs), ref)
    np.testing.assert_allclose(ref[:, 2], 0.5 * ref[:, 4])
    assert not ref[:, 0].any()
    # per-step terms with one J reproduce |t_k - t_0| x the plain SE
    a, b = _welch.class_mean_terms(np.broadcast_to(u, (5, n, 16)), t)
    np.testing.assert_allclose(_welch.welch_se((a, b), groups, rows, "image", batch_size=9), ref, atol=1e-12)


def test_zero_variance_pixels_are_untestable():
    rng = np.random.default_rng(5)
    n = 20
    groups = (np.arange(n) % 3 == 0).astype(int)
    u = rng.standard_normal((n, 6))
    u[:, 2] = 0.0  # the decoder ignores this pixel
    u[:, 4] = 1e-3  # constant: no spread in either group
    rows = np.vstack([np.arange(n), draw_permutations(np.arange(n).astype(str), 10, seed=0).indices])
    se = _welch.welch_se(u, groups, rows, "image")
    assert (se[:, 2] == 0).all() and (se[:, 4] == 0).all() and (se[:, [0, 1, 3, 5]] > 0).all()
    scale = _welch.inverse_se(se)
    assert (scale[:, [2, 4]] == 0).all() and np.isfinite(scale).all()
    assert np.isfinite(_welch.hc_se(u, np.ones((1, n)) / n, rows, "image")).all()


def test_hc_se_of_a_class_mean_map_is_the_pooled_residual_sandwich():
    rng = np.random.default_rng(6)
    n = 30
    groups = (np.arange(n) < 8).astype(int)
    u = rng.standard_normal((n, 5)) * (1 + groups[:, None])
    nA, nB = (groups == 0).sum(), (groups == 1).sum()
    C = np.vstack([np.zeros(n), np.where(groups == 1, 1.0 / nB, -1.0 / nA)])  # step 1 - step 0 of class-mean
    rows = np.vstack([np.arange(n), draw_permutations(np.arange(n).astype(str), 20, seed=3).indices])
    se = _welch.hc_se(u, C, rows, "image", batch_size=6)
    r2 = (u - u.mean(0)) ** 2
    for b, idx in enumerate(rows):
        g = np.empty_like(groups)
        g[idx] = groups
        want = np.sqrt(n / (n - 1) * (r2[g == 1].sum(0) / nB**2 + r2[g == 0].sum(0) / nA**2))
        np.testing.assert_allclose(se[b, 1], want, rtol=1e-10)
    assert not se[:, 0].any()


def test_welch_df_and_t_to_z():
    from scipy import stats

    rng = np.random.default_rng(7)
    n = 36
    groups = (np.arange(n) < 9).astype(int)
    u = rng.standard_normal((n, 4)) * (1 + 2 * groups[:, None])
    rows = np.vstack([np.arange(n), draw_permutations(np.arange(n).astype(str), 6, seed=5).indices])
    se, dof = _welch.welch_se(u, groups, rows, "image", df=True, batch_size=4)
    for b, idx in enumerate(rows):
        g = np.empty_like(groups)
        g[idx] = groups
        vA = np.var(u[g == 0], axis=0, ddof=1) / (g == 0).sum()
        vB = np.var(u[g == 1], axis=0, ddof=1) / (g == 1).sum()
        want = (vA + vB) ** 2 / (vA**2 / ((g == 0).sum() - 1) + vB**2 / ((g == 1).sum() - 1))
        np.testing.assert_allclose(dof[b], want, rtol=1e-10)
    t = np.array([0.5, 2.5, 6.0, 30.0])
    z = _welch.t_to_z(t, np.array([5.0, 12.0, 40.0, 8.0]))
    np.testing.assert_allclose(z, stats.norm.isf(stats.t.sf(t, [5, 12, 40, 8])), rtol=1e-6)
    assert (z < t).all()  # heavier tails: the same t is less extreme
    assert np.isneginf(_welch.t_to_z(np.array([np.nan, 1.0]), np.array([10.0, np.nan]))).all()


# --------------------------------------------------------------------------------------------------
# numeric features: HC SE of the permuted fit (issue #11 item 2)
# --------------------------------------------------------------------------------------------------
def _numeric_case(scheme, seed=8):
    """Latents and feature with the spread growing along x; patients of 1-3 images for patient-label."""
    rng = np.random.default_rng(seed)
    if scheme == "image":
        pid = np.arange(36)
    else:
        pid = np.repeat(np.arange(15), np.tile([1, 2, 3], 5))
    n = pid.size
    x = rng.uniform(20, 90, pid.max() + 1)[pid]
    u = (rng.standard_normal((n, 7)) + 0.7 * rng.standard_normal((pid.max() + 1, 7))[pid]) * (1 + x[:, None] / 40)
    u[:, 5] = 0.25  # a constant pixel: untestable
    plan = draw_permutations(pid.astype(str), 12, feature=x, seed=3)
    assert plan.scheme == scheme
    return u, x, pid, np.vstack([np.arange(n), plan.indices])


def _permuted_pairs(u, x, idx, scheme):
    """(response, regressor) of the permuted regression, built the way the engine builds its null."""
    if scheme == "patient-label":
        return u, x[idx]  # latents stay, image i carries the feature of image idx[i]
    return u[idx], x  # image i receives latent idx[i], keeps its feature


@pytest.mark.parametrize("scheme", ["image", "patient-label"])
@pytest.mark.parametrize("hc", ["HC0", "HC1", "HC2", "HC3"])
def test_slope_se_equals_statsmodels_per_permutation(scheme, hc):
    sm = pytest.importorskip("statsmodels.api")
    u, x, _, rows = _numeric_case(scheme)
    se, b = _welch.slope_se(u, x, rows, scheme, hc=hc, slope=True, batch_size=5)
    assert se.shape == b.shape == (rows.shape[0], u.shape[1])
    for r, idx in enumerate(rows):
        y, xx = _permuted_pairs(u, x, idx, scheme)
        for m in (0, 3, 6):
            fit = sm.OLS(y[:, m], sm.add_constant(xx)).fit(cov_type=hc)
            np.testing.assert_allclose(se[r, m], fit.bse[1], rtol=2e-6)
            np.testing.assert_allclose(b[r, m], fit.params[1], rtol=0, atol=1e-5 * fit.bse[1])  # fixed-point 2**-22
    assert not se[:, 5].any()  # zero-variance pixel: se 0 in every row
    assert (se[:, [0, 1, 2, 3, 4, 6]] > 0).all()


def test_cluster_robust_slope_se_patient_label():
    sm = pytest.importorskip("statsmodels.api")
    u, x, pid, rows = _numeric_case("patient-label")
    se0 = _welch.slope_se(u, x, rows, "patient-label", hc="HC0", clusters=pid, batch_size=4)
    se3 = _welch.slope_se(u, x, rows, "patient-label", hc="HC3", clusters=pid, batch_size=4)
    for r, idx in enumerate(rows):
        y, xx = _permuted_pairs(u, x, idx, "patient-label")
        X = sm.add_constant(xx)
        for m in (0, 4):
            fit = sm.OLS(y[:, m], X).fit(cov_type="cluster", cov_kwds={"groups": pid, "use_correction": False})
            np.testing.assert_allclose(se0[r, m], fit.bse[1], rtol=2e-6)
            # CR3 by its definition: cluster residuals (I - H_pp)^-1 e_p in the sandwich
            bread = np.linalg.inv(X.T @ X)
            e = y[:, m] - X @ (bread @ X.T @ y[:, m])
            meat = np.zeros((2, 2))
            for p in np.unique(pid):
                rows_p = pid == p
                Hpp = X[rows_p] @ bread @ X[rows_p].T
                s = X[rows_p].T @ np.linalg.solve(np.eye(rows_p.sum()) - Hpp, e[rows_p])
                meat += np.outer(s, s)
            np.testing.assert_allclose(se3[r, m], np.sqrt((bread @ meat @ bread)[1, 1]), rtol=2e-6)
    with pytest.raises(ValueError, match="constant within every cluster"):  # image-level feature
        _welch.slope_se(u, x + np.arange(x.size), rows, "patient-label", clusters=pid)


def test_slope_se_image_and_whole_block_move_the_feature_inversely():
    rng = np.random.default_rng(9)
    n = 24
    x = rng.uniform(0, 1, n)
    u = rng.standard_normal((n, 5))
    rows = np.vstack([np.arange(n), rng.permutation(n), rng.permutation(n)])
    inv = np.argsort(rows, axis=1)
    np.testing.assert_array_equal(_welch.feature_per_latent(x, rows, "image"), x[inv])
    np.testing.assert_array_equal(_welch.feature_per_latent(x, rows, "whole-block"), x[inv])
    # moving the latents by idx equals moving the feature by idx^-1 (same regression pairs)
    a = _welch.slope_se(u, x, rows, "image")
    b = _welch.slope_se(u, x, inv, "patient-label")
    np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_array_equal(a[0], _welch.slope_se(u, x, rows[:1], "patient-label")[0])


@pytest.mark.parametrize("scheme", ["image", "patient-label"])
def test_slope_and_smoother_se_batch_size_invariance_and_grid(scheme):
    u, x, pid, rows = _numeric_case(scheme)
    grid = np.linspace(25, 85, 5)
    cl = pid if scheme == "patient-label" else None
    ref = _welch.slope_se(u, x, rows, scheme, grid=grid, clusters=cl, batch_size=rows.shape[0])
    assert ref.shape == (rows.shape[0], 5, u.shape[1])
    for bs in (1, 4, 7):
        np.testing.assert_array_equal(_welch.slope_se(u, x, rows, scheme, grid=grid, clusters=cl, batch_size=bs), ref)
    np.testing.assert_allclose(ref[:, 2], 0.5 * ref[:, 4])
    assert not ref[:, 0].any()

    def design(xb):  # a linear "smoother": the smoother SE must reproduce the slope SE times |g_k - g_0|
        return (np.column_stack([np.ones_like(xb), xb]), np.column_stack([np.ones_like(grid), grid]), np.zeros((2, 2)))

    sm_ref = _welch.smoother_se(u, x, rows, scheme, design, batch_size=rows.shape[0])
    for bs in (1, 5):
        np.testing.assert_array_equal(_welch.smoother_se(u, x, rows, scheme, design, batch_size=bs), sm_ref)
    if cl is None:
        np.testing.assert_allclose(sm_ref, ref, rtol=1e-5, atol=1e-12)


def test_smoother_se_of_a_gam_equals_a_direct_sandwich():
    from seegaan.interpolation import gam as _gam

    rng = np.random.default_rng(10)
    n = 60
    x = rng.uniform(20, 90, n)
    u = rng.standard_normal((n, 4)) * (1 + x[:, None] / 30)
    grid = np.linspace(25, 85, 4)
    knots = np.array([x.min(), x.max()])

    def design(xb):
        kn = np.array([xb.min(), xb.max()])
        return _gam.gam_design(xb, kn), _gam.gam_design(grid, kn), _gam.gam_penalty(0.6)

    rows = np.vstack([np.arange(n), rng.permutation(n)])
    se = _welch.smoother_se(u, x, rows, "image", design, hc="HC3", batch_size=1)
    for r, idx in enumerate(rows):
        X, Xg = _gam.gam_design(x, knots), _gam.gam_design(grid, knots)
        L = _gam.penalised_map(X, Xg, _gam.gam_penalty(0.6))
        y = u[idx] - u.mean(0)
        H = X @ np.linalg.solve(X.T @ X + _gam.gam_penalty(0.6), X.T)
        e = (y - H @ y) / (1 - np.diag(H))[:, None]
        C = L - L[0]
        for k in range(1, 4):
            want = np.sqrt(np.einsum("i,ij,i,ij->j", C[k], e, C[k], e))
            np.testing.assert_allclose(se[r, k], want, rtol=1e-6)
