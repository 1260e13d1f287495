"""The sign-flip null: the plan, the weighted null model, the flipped trajectories, exactness of the identity,
a brute force over every sign pattern, batch sizes, local sequences with the image left out."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

import seegaan
from seegaan import SeegaanError
from seegaan.decoding import NullDifferences
from seegaan.interpolation.nullmodel import weights_from_residuals
from seegaan.stats.permutation import draw_signflips
from seegaan.testing import check_decoders
from seegaan.testing.cohorts import make_cohort
from seegaan.testing.decoders import linear8, planted


def _cohort(n=12, D=8, per=1, seed=0, sick_sd=1.0):
    rng = np.random.default_rng(seed)
    P = n // per
    pid = np.repeat(np.arange(P), per)
    sick = (np.arange(P) % 3 == 0)[pid]
    w = rng.standard_normal((n, D)) * np.where(sick, sick_sd, 1.0)[:, None]
    table = pd.DataFrame(
        {
            "image_id": [f"i{i}" for i in range(n)],
            "patient_id": [f"p{p}" for p in pid],
            "sick": sick,
            "age": rng.uniform(20, 90, P)[pid],
        }
    )
    return seegaan.create_cohort(w, table)


def test_signflip_plan_one_sign_per_patient_and_exact_enumeration():
    pid = ["a", "a", "b", "c", "c", "c"]
    plan = draw_signflips(pid, 50, seed=3)
    assert plan.scheme == "sign-flip" and plan.indices.shape == (50, 6) and set(np.unique(plan.indices)) <= {-1, 1}
    assert (plan.indices[:, 0] == plan.indices[:, 1]).all() and (plan.indices[:, 3] == plan.indices[:, 5]).all()
    exact = draw_signflips(pid, "exact")
    assert exact.exact and exact.n_perm == 2**3 - 1
    patterns = {tuple(r[[0, 2, 3]]) for r in exact.indices}
    assert len(patterns) == 7 and (1.0, 1.0, 1.0) not in patterns
    np.testing.assert_array_equal(draw_signflips(pid, 50, seed=3).indices, plan.indices)  # the same seed
    with pytest.raises(SeegaanError, match="sign flips"):
        draw_signflips([str(i) for i in range(30)], "exact")


@pytest.mark.parametrize("kind", ["class", "linear", "gam", "adjusted", "patients"])
def test_the_identity_flip_is_the_observed_trajectory_bit_for_bit(kind):
    c = make_cohort(n=60, images_per_patient=2 if kind == "patients" else 1, seed=4)
    interp = {
        "class": lambda: seegaan.interpolate(c, feature="sex"),
        "linear": lambda: seegaan.interpolate(c, feature="age", method="linear", steps=4),
        "gam": lambda: seegaan.interpolate(c, feature="age", method="gam", gam_lam="auto", steps=4),
        "adjusted": lambda: seegaan.interpolate(c, feature="sex", adjust=["age"]),
        "patients": lambda: seegaan.interpolate(c, feature="ahf"),
    }[kind]()
    rows = np.vstack([np.ones(interp.image_index.size), draw_signflips(interp.patient_ids, 6, seed=1).indices])
    T = interp.flip_trajectories(rows)
    np.testing.assert_array_equal(T[0], interp.trajectory)
    assert not np.allclose(T[1], interp.trajectory)
    np.testing.assert_array_equal(interp.flip_trajectories(rows[:3]), T[:3])  # a row's bits: not the batch's
    # the null maps of the identity are the observed differences
    images = linear8(interp.trajectory.astype(np.float32))
    dec = seegaan.load_decoder(linear8)
    maps = NullDifferences(interp, dec, "sign-flip", images.shape, null_model=interp.null_model())(rows[:1])
    np.testing.assert_array_equal(maps[0], (images - images[:1]).reshape(-1))


def test_flipped_cohorts_keep_the_weighted_centre():
    """Every flipped cohort's weighted null fit is the observed one: only the offsets are flipped."""
    interp = seegaan.interpolate(_cohort(n=30, sick_sd=2.0, seed=2), feature="sick")
    null = interp.null_model()
    W = interp.latents
    centre = null.C @ W
    for s in draw_signflips(interp.patient_ids, 5, seed=0).indices:
        flipped = W + null.project((s - 1.0)[:, None] * null.residuals)
        np.testing.assert_allclose(null.C @ flipped, centre, atol=1e-12)


def test_class_weights_are_inverse_group_variances():
    rng = np.random.default_rng(0)
    x = np.r_[np.zeros(40), np.ones(10)]
    r = rng.standard_normal((50, 4)) * np.where(x == 1, 3.0, 1.0)[:, None]
    w = weights_from_residuals(r, x, [str(i) for i in range(50)], "class")
    for g, sd in ((0, 1.0), (1, 3.0)):
        v = (r[x == g] ** 2).sum(axis=1).mean() / 4 * (x == g).sum() / ((x == g).sum() - 1)
        np.testing.assert_allclose(1 / w[x == g], v)
        assert abs(np.sqrt(v) / sd - 1) < 0.3  # the pooled SD of the group
    assert w[x == 0][0] > 5 * w[x == 1][0]


@pytest.mark.parametrize("method", ["class-mean", "linear"])
def test_exact_sign_flips_equal_a_brute_force(method):
    """Every sign pattern of 6 patients decoded by hand: max-T and uncorrected p-values as the engine's."""
    c = _cohort(n=6, D=8, seed=5, sick_sd=1.5)
    interp = seegaan.interpolate(c, feature="sick" if method == "class-mean" else "age", method=method, steps=3)
    res = seegaan.sequence(interp, planted, n_perm="exact", correction="maxt", backend="numpy")
    assert res.attrs["n_perm"] == 63 and res.attrs["permutation_scheme"] == "sign-flip (exact)"
    null = interp.null_model()
    codes = np.unique(interp.patient_ids, return_inverse=True)[1]
    maps = []
    for signs in itertools.product([1.0, -1.0], repeat=6):
        s = np.asarray(signs)[codes]
        W = interp.latents + null.project((s - 1.0)[:, None] * null.residuals)
        T = interp.L @ W
        img = planted(T.astype(np.float32))
        maps.append((img - img[0]).reshape(-1))
    maps = np.asarray(maps, np.float64)  # row 0: the identity (the observed)
    obs = maps[0]
    sd = maps.std(axis=0)
    tested = sd > 0
    tested &= np.r_[np.zeros(64, bool), np.ones(128, bool)]
    z = np.where(tested, np.abs(maps) / np.where(tested, sd, 1.0), 0.0)
    null_max = z[1:].max(axis=1)
    want = (np.sum(null_max[None] >= z[0][:, None] - 1e-12, axis=1) + 1) / 64
    got = res.p_adjusted.reshape(-1)
    np.testing.assert_allclose(got[tested], want[tested], rtol=0, atol=1e-12)
    unc = (np.sum(np.abs(maps[1:]) >= np.abs(obs)[None] - 1e-12, axis=0) + 1) / 64
    np.testing.assert_allclose(res.p_value.reshape(-1)[tested], unc[tested], atol=1e-12)


def test_batch_size_does_not_change_a_bit():
    interp = seegaan.interpolate(make_cohort(n=40, images_per_patient=2, seed=1), feature="age", method="gam")
    a = seegaan.sequence(interp, planted, n_perm=30, batch_size=1, seed=2)
    b = seegaan.sequence(interp, planted, n_perm=30, batch_size=16, seed=2)
    np.testing.assert_array_equal(a.p_adjusted, b.p_adjusted)
    np.testing.assert_array_equal(a.p_value, b.p_value)


def test_the_output_records_the_null():
    interp = seegaan.interpolate(make_cohort(n=60, seed=1), feature="sex")
    res = seegaan.sequence(interp, linear8, n_perm=20)
    assert res.attrs["null"] == "sign-flip" and "weighted" in res.attrs["null_model"]
    assert res.attrs["statistic"] == "difference" and "null model" in res.summary().as_text()
    perm = seegaan.sequence(interp, linear8, n_perm=20, null="permutation")
    assert perm.attrs["null"] == "permutation" and "null_model" not in perm.attrs


def test_few_patients_are_warned():
    interp = seegaan.interpolate(_cohort(n=12), feature="sick")
    with pytest.warns(seegaan.SeegaanWarning, match="only 12 patients: the sign-flip null is approximate"):
        seegaan.sequence(interp, linear8, n_perm=10)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"null": "bootstrap"}, "unknown null"),
        ({"statistic": "welch"}, "retired"),
        ({"statistic": "hc3"}, "retired"),
        ({"scheme": "image"}, "permutation scheme applies to --null permutation"),
    ],
)
def test_bad_null_options_are_one_line(kwargs, message):
    interp = seegaan.interpolate(make_cohort(n=30, seed=1), feature="sex")
    with pytest.raises(SeegaanError, match=message):
        seegaan.sequence(interp, linear8, n_perm=10, **kwargs)


def test_local_sequence_leaves_the_image_out_and_is_exact_for_an_atypical_image():
    """An atypical image is left out of its group: the observed direction is the others' difference of means,
    and under identical groups the local test keeps its error (exactness of the identity draw, tested on the
    offsets; the rate on 100 cohorts is in the harness test)."""
    from seegaan.testing import designs

    ds = designs.atypical(np.random.default_rng(3), 6, n_a=60, n_b=20)
    image = ds.attrs["atypical_image"]
    dec = check_decoders.make("saturated", 6, 12)
    res = seegaan.local_sequence(ds, dec, image_id=image, feature="sick", lambdas="0:1:3", n_perm=50, seed=1)
    ids = np.asarray(ds["image_id"].values).astype(str)
    W = ds["w"].values.astype(np.float64)
    sick = np.asarray(ds["sick"].values).astype(bool)
    others = ids != image
    delta = W[others & sick].mean(axis=0) - W[others & ~sick].mean(axis=0)
    np.testing.assert_allclose(res.latents[-1] - W[ids == image][0], delta, atol=1e-12)
    assert res.attrs["image_left_out"] == 1 and res.attrs["null"] == "sign-flip"
    assert res.attrs["n_current"] == int((others & ~sick).sum())
