"""The patient-label null through p x p normal equations: same fits as the QR route and as pyGAM,
same bits whatever the batch."""

from __future__ import annotations

import numpy as np
import pytest

import seegaan
from seegaan import SeegaanError
from seegaan.interpolation import gam as G
from seegaan.interpolation.methods import apply as _apply
from seegaan.testing.cohorts import make_cohort

TOL = 1e-10


def _assert_close(actual, desired, tol=TOL):
    scale = max(1.0, float(np.max(np.abs(desired))))
    np.testing.assert_allclose(actual, desired, rtol=0, atol=tol * scale)


def _cohort():
    # 41 images: patients of two images and one of a single image, so relabelling changes the counts
    return make_cohort(n=42, seed=5, images_per_patient=2, effect=1.0).isel(image=slice(0, 41))


def _plan(interp, scheme="patient-label", n_perm=12, seed=7):
    return seegaan.draw_permutations(
        interp.patient_ids, n_perm, feature=interp.feature_codes, scheme=scheme, seed=seed
    ).indices


def _refit(interp, idx):
    """The QR route: the operator rebuilt from x[idx], as before the normal-equation path."""
    return _apply(interp._spec.operator(interp._x[idx], interp._Z), interp._latents)[0]


@pytest.mark.parametrize("kind", ["uniform", "lognormal"])
@pytest.mark.parametrize(("lam", "n_splines", "n_cov"), [(0.6, 20, 0), (1e-3, 20, 0), (250.0, 7, 0), (0.6, 20, 2)])
def test_penalised_predictions_match_penalised_map(kind, lam, n_splines, n_cov):
    rng = np.random.default_rng(3)
    x = rng.uniform(-3, 7, 150) if kind == "uniform" else rng.lognormal(0, 1, 150)
    edges = (x.min(), x.max())
    grid = np.linspace(np.percentile(x, 5), np.percentile(x, 95), 9)
    Z = rng.normal(size=(x.size, n_cov))
    Y = 10.0 + rng.normal(size=(x.size, 6))
    penalty = G.gam_penalty(lam, n_splines=n_splines, n_extra=n_cov)
    X_grid = np.hstack([G.gam_design(grid, edges, n_splines=n_splines), np.zeros((grid.size, n_cov))])
    perms = [rng.permutation(x.size) for _ in range(4)]
    designs = np.stack([np.hstack([G.gam_design(x[p], edges, n_splines=n_splines), Z]) for p in perms])
    got = G.penalised_predictions(designs, X_grid, penalty, Y)
    for design, pred in zip(designs, got):
        _assert_close(pred, G.penalised_map(design, X_grid, penalty) @ Y)


def test_penalised_predictions_refuse_bad_shapes_and_singular_systems():
    X = np.ones((5, 2))
    with pytest.raises(SeegaanError, match="do not fit"):
        G.penalised_predictions(X, np.ones((3, 2)), np.zeros((2, 2)), np.ones((5, 1)))
    with pytest.raises(SeegaanError, match="singular"):
        G.penalised_predictions(X[None], np.ones((3, 2)), np.zeros((2, 2)), np.ones((5, 1)))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(feature="age"),
        dict(feature="age", gam_lam=0.01, gam_splines=12),
        dict(feature="bnpp", transform="log"),
        dict(feature="age", method="linear"),
        dict(feature="sex"),
        dict(feature="age", adjust="bnpp"),
    ],
)
def test_patient_label_null_matches_the_qr_refit(kwargs):
    interp = seegaan.interpolate(_cohort(), steps=5, **kwargs)
    rows = _plan(interp)
    got = interp.null_trajectories(rows, "patient-label")
    for idx, traj in zip(rows, got):
        _assert_close(traj, _refit(interp, idx))


def test_permutation_that_moves_the_edge_knots_refits_from_scratch():
    interp = seegaan.interpolate(_cohort(), feature="age", steps=5)
    x = interp._x
    idx = np.arange(x.size)
    idx[np.argmax(x)] = np.argmin(x)  # the largest value is gone: the knots move
    got = interp.null_trajectories(np.stack([idx, _plan(interp)[0]]), "patient-label")
    _assert_close(got[0], _refit(interp, idx))
    _assert_close(got[1], _refit(interp, _plan(interp)[0]))


def test_patient_label_null_matches_pygam():
    pygam = pytest.importorskip("pygam")
    interp = seegaan.interpolate(_cohort(), feature="age", steps=6)
    W = interp.latents
    grid_t = interp._spec.grid_t
    for idx in _plan(interp, n_perm=3):
        traj = interp.null_trajectory(idx, "patient-label")
        for j in range(3):
            gam = pygam.LinearGAM(pygam.s(0, n_splines=20, lam=0.6)).fit(interp._x[idx], W[:, j])
            _assert_close(traj[:, j], gam.predict(grid_t), tol=1e-8)


@pytest.mark.parametrize("scheme", ["patient-label", "image", "whole-block"])
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(feature="age"),
        dict(feature="age", gam_lam="auto"),
        dict(feature="sex"),
        dict(feature="age", method="linear", adjust="bnpp"),
    ],
)
def test_batched_null_has_the_bits_of_one_permutation_at_a_time(scheme, kwargs):
    interp = seegaan.interpolate(_cohort(), steps=4, **kwargs)
    rows = _plan(interp, scheme=scheme, n_perm=11)
    one = np.stack([interp.null_trajectory(idx, scheme) for idx in rows])
    for size in (4, 11):
        batched = np.concatenate(
            [interp.null_trajectories(rows[s : s + size], scheme) for s in range(0, len(rows), size)]
        )
        np.testing.assert_array_equal(batched, one)
    assert one.shape == (11, 4, interp.trajectory.shape[1])


def test_null_trajectories_restore_blas_threads_and_check_shape():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    interp = seegaan.interpolate(_cohort(), feature="age", steps=4)
    before = [i["num_threads"] for i in threadpoolctl.threadpool_info()]
    interp.null_trajectories(_plan(interp, n_perm=2), "patient-label")
    assert [i["num_threads"] for i in threadpoolctl.threadpool_info()] == before
    with pytest.raises(SeegaanError, match="shape"):
        interp.null_trajectories(np.arange(interp._x.size), "patient-label")
