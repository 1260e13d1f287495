import numpy as np
import pandas as pd
import pytest

import seegaan
from seegaan import SeegaanError
from seegaan.testing.cohorts import make_cohort


def _cohort_xy(x, Y, **extra):
    n = len(x)
    table = pd.DataFrame(
        {"image_id": [f"i{i}" for i in range(n)], "patient_id": [f"p{i}" for i in range(n)], "x": x, **extra}
    )
    return seegaan.create_cohort(Y, table)


@pytest.mark.parametrize("dist", ["uniform", "lognormal"])
@pytest.mark.parametrize("lam, n_splines", [(0.6, 20), (5.0, 20), (0.01, 12)])
def test_gam_equals_pygam_fixed_lambda(dist, lam, n_splines):
    pygam = pytest.importorskip("pygam")
    rng = np.random.default_rng(hash((dist, lam)) % 2**32)
    n = 250
    x = rng.uniform(0, 10, n) if dist == "uniform" else rng.lognormal(1, 0.8, n)
    Y = np.column_stack([np.sin(x) + rng.normal(0, 0.3, n), rng.normal(size=n), 0.1 * x**2]).astype(np.float32)
    ds = _cohort_xy(x, Y)
    res = seegaan.interpolate(ds, feature="x", method="gam", gam_lam=lam, gam_splines=n_splines, steps=9)
    lo, hi = np.percentile(x, [5, 95])
    np.testing.assert_allclose(res.grid, np.linspace(lo, hi, 9))
    for d in range(Y.shape[1]):
        ref = pygam.LinearGAM(pygam.s(0, n_splines=n_splines, lam=lam)).fit(x[:, None], Y[:, d].astype(float))
        np.testing.assert_allclose(res.trajectory[:, d], ref.predict(res.grid[:, None]), rtol=0, atol=1e-8)
    # the linear map reproduces the trajectory
    np.testing.assert_allclose(res.L @ ds["w"].values.astype(float), res.trajectory, atol=1e-10)


def test_gam_auto_equals_pygam_gridsearch():
    pygam = pytest.importorskip("pygam")
    rng = np.random.default_rng(7)
    n = 200
    x = rng.lognormal(0, 1, n)
    D = 12
    Y = np.column_stack(
        [np.log1p(x) * rng.uniform(0, 2) + rng.normal(0, s, n) for s in np.linspace(0.05, 2, D)]
    ).astype(np.float32)
    ds = _cohort_xy(x, Y)
    res = seegaan.interpolate(ds, feature="x", method="gam", gam_lam="auto", steps=10)
    assert res.L is None and res.lam.shape == (D,)
    for d in range(D):
        ref = pygam.LinearGAM(pygam.s(0)).gridsearch(x[:, None], Y[:, d].astype(float), progress=False)
        assert res.lam[d] == pytest.approx(ref.lam[0][0])
        np.testing.assert_allclose(res.trajectory[:, d], ref.predict(res.grid[:, None]), rtol=0, atol=1e-8)


def test_log_transform_grid_and_fit():
    rng = np.random.default_rng(3)
    x = rng.lognormal(6, 1, 300)
    Y = rng.normal(size=(300, 4)).astype(np.float32)
    res = seegaan.interpolate(_cohort_xy(x, Y), feature="x", method="linear", transform="log", steps=5)
    lo, hi = np.percentile(np.log(x), [5, 95])
    np.testing.assert_allclose(np.log(res.grid), np.linspace(lo, hi, 5))
    X = np.column_stack([np.ones(300), np.log(x)])
    coef = np.linalg.lstsq(X, Y.astype(float), rcond=None)[0]
    np.testing.assert_allclose(res.trajectory, np.column_stack([np.ones(5), np.log(res.grid)]) @ coef, atol=1e-10)


def test_linear_equals_lstsq():
    ds = make_cohort(n=80, D=6, seed=2, effect=1.0)
    res = seegaan.interpolate(ds, feature="age", method="linear", steps=7)
    x = ds["age"].values
    X = np.column_stack([np.ones_like(x), x])
    coef = np.linalg.lstsq(X, ds["w"].values.astype(float), rcond=None)[0]
    G = np.column_stack([np.ones(7), res.grid])
    np.testing.assert_allclose(res.trajectory, G @ coef, rtol=0, atol=1e-10)


def test_class_mean_equals_group_means():
    ds = make_cohort(n=50, D=5, seed=4)
    w = ds["w"].values.astype(float)
    sex = ds["sex"].values
    res = seegaan.interpolate(ds, feature="sex", steps=4)
    assert res.method == "class-mean" and res.levels == ("F", "M")
    np.testing.assert_allclose(res.trajectory[0], w[sex == "F"].mean(0), atol=1e-12)
    np.testing.assert_allclose(res.trajectory[-1], w[sex == "M"].mean(0), atol=1e-12)
    np.testing.assert_allclose(
        res.trajectory[1], (2 / 3) * w[sex == "F"].mean(0) + (1 / 3) * w[sex == "M"].mean(0), atol=1e-12
    )
    back = seegaan.interpolate(ds, feature="sex", levels="M,F", steps=4)
    np.testing.assert_allclose(back.trajectory[0], w[sex == "M"].mean(0), atol=1e-12)
    ahf = seegaan.interpolate(ds, feature="ahf")
    assert ahf.levels == ("False", "True")


def test_covariate_adjusted_linear_equals_lstsq():
    ds = make_cohort(n=90, D=4, seed=5, effect=0.5)
    res = seegaan.interpolate(ds, feature="age", method="linear", adjust="bnpp,sex", steps=3)
    x = ds["age"].values
    b = ds["bnpp"].values
    m = (ds["sex"].values == "M").astype(float)
    X = np.column_stack([np.ones_like(x), x, b - b.mean(), m - m.mean()])
    coef = np.linalg.lstsq(X, ds["w"].values.astype(float), rcond=None)[0]
    G = np.column_stack([np.ones(3), res.grid, np.zeros(3), np.zeros(3)])
    np.testing.assert_allclose(res.trajectory, G @ coef, atol=1e-9)
    assert res.covariates == ("bnpp", "sex")


def test_missing_values_are_left_out_and_counted():
    ds = make_cohort(n=40, extra={"lab": [np.nan] * 5 + list(np.linspace(1, 2, 35))})
    res = seegaan.interpolate(ds, feature="lab", method="linear")
    assert res.n_missing == 5 and res.image_index.size == 35


def test_auto_method_choice():
    ds = make_cohort(n=60, extra={"binary": [0.0, 1.0] * 30})
    assert seegaan.interpolate(ds, feature="age").method == "gam"
    assert seegaan.interpolate(ds, feature="sex").method == "class-mean"
    assert seegaan.interpolate(ds, feature="binary").method == "class-mean"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(feature="nope"), "available features: age"),
        (dict(feature="site"), "fewer than two groups"),
        (dict(feature="sex", levels="F,X"), "level 'X' is not a value"),
        (dict(feature="few", method="gam"), "use --method linear"),
        (dict(feature="age", steps=1), "at least 2"),
        (dict(feature="age", method="gam", gam_lam=-1), "positive"),
        (dict(feature="sex", method="linear"), "class-mean"),
        (dict(feature="age", transform="log", extra_neg=True), "positive values"),
    ],
)
def test_bad_requests_are_refused(kwargs, message):
    n = 40
    ds = make_cohort(
        n=n,
        extra={
            "site": ["a"] * n,
            "grade": list("abc") * 13 + ["a"],
            "few": [1.0, 2.0, 3.0, 4.0] * 10,
            "neg": np.linspace(-1, 1, n),
        },
    )
    if kwargs.pop("extra_neg", False):
        kwargs["feature"] = "neg"
    with pytest.raises(SeegaanError, match=message):
        seegaan.interpolate(ds, **kwargs)


def test_summary_and_dataarray():
    res = seegaan.interpolate(make_cohort(n=40), feature="age", gam_lam="auto")
    text = res.summary().as_text()
    assert "lambda (GCV per dim)" in text and "images used" in text
    da = res.to_dataarray()
    assert da.dims == ("step", "latent") and "feature_value" in da.coords


def test_many_levels_default_to_the_two_most_frequent():
    n = 40
    grade = ["c"] * 16 + ["a"] * 12 + ["b"] * 12
    ds = make_cohort(n=n, extra={"grade": grade})
    interp = seegaan.interpolate(ds, feature="grade")
    assert interp.method == "class-mean" and interp.levels == ("c", "a")  # most frequent; tie a/b by name
    assert len(interp.notes) == 1 and "--levels" in interp.notes[0]
    assert interp.image_index.size == 28
    chosen = seegaan.interpolate(ds, feature="grade", levels="b,c")
    assert chosen.levels == ("b", "c") and chosen.notes == ()


def test_options_as_strings_are_parsed_and_checked():
    """What the command line passes as text is parsed by interpolate() itself: grid 'v1,v2', gam_lam."""
    ds = make_cohort(n=40, seed=1)
    a = seegaan.interpolate(ds, feature="age", method="gam", grid="30,50,70", gam_lam="0.6")
    b = seegaan.interpolate(ds, feature="age", method="gam", grid=[30, 50, 70], gam_lam=0.6)
    np.testing.assert_array_equal(a.trajectory, b.trajectory)
    np.testing.assert_array_equal(a.grid, [30.0, 50.0, 70.0])
    auto = seegaan.interpolate(ds, feature="age", method="gam", steps=3, gam_lam=" AUTO ")
    assert isinstance(auto.lam, np.ndarray)
    for kwargs, message in [
        (dict(grid="30,x"), "--grid must be comma-separated numbers"),
        (dict(gam_lam="big"), "--gam-lam"),
        (dict(gam_lam=-1), "--gam-lam"),
        (dict(steps=1), "at least 2"),
        (dict(steps="many"), "at least 2"),
    ]:
        with pytest.raises(SeegaanError, match=message):
            seegaan.interpolate(ds, feature="age", method="linear", **kwargs)


# ---- issue #12: collinear covariates, exact numeric levels, grids outside the data; #13: GAM edf ----------
@pytest.mark.parametrize("method", ["class-mean", "linear", "gam"])
def test_covariate_collinear_with_the_feature_is_refused(method):
    rng = np.random.default_rng(3)
    n = 120
    x = rng.uniform(20, 90, n)
    group = (x > 55).astype(float)
    feature, copy = ("g", group * 3.0 + 1.0) if method == "class-mean" else ("x", x / 12.0 + 7.0)
    ds = _cohort_xy(
        x, rng.standard_normal((n, 4)).astype(np.float32), g=group == 1, copy=copy, other=rng.normal(size=n)
    )
    with pytest.raises(SeegaanError, match=r"covariate\(s\) copy are collinear with the feature"):
        seegaan.interpolate(ds, feature=feature, method=method, adjust="other,copy")
    ok = seegaan.interpolate(ds, feature=feature, method=method, adjust="other")
    assert np.abs(ok.trajectory).max() < 10


def test_covariates_collinear_with_each_other_are_named():
    rng = np.random.default_rng(4)
    n = 80
    a = rng.normal(size=n)
    ds = _cohort_xy(
        rng.uniform(0, 1, n), rng.standard_normal((n, 3)).astype(np.float32), a=a, b=2 * a - 1, c=rng.normal(size=n)
    )
    with pytest.raises(SeegaanError, match=r"covariate\(s\) a, b are collinear with each other"):
        seegaan.interpolate(ds, feature="x", method="linear", adjust="c,a,b")
    with pytest.raises(SeegaanError, match="constant among the images analysed"):
        seegaan.interpolate(ds.assign_coords(c=("image", np.full(n, 2.5))), feature="x", method="linear", adjust="c")


def test_numeric_levels_are_exact():
    rng = np.random.default_rng(5)
    n = 40
    date = np.where(np.arange(n) < 20, 20190405.0, 20190406.0)
    Y = rng.standard_normal((n, 3)).astype(np.float32)
    Y[20:, 0] += 2.0
    ds = _cohort_xy(rng.uniform(0, 1, n), Y, date=date, frac=np.where(np.arange(n) % 2, 0.1, 0.1000001))
    res = seegaan.interpolate(ds, feature="date", method="class-mean")
    assert res.levels == ("20190405", "20190406")
    expected = Y[20:].astype(float).mean(0) - Y[:20].astype(float).mean(0)
    np.testing.assert_allclose(res.trajectory[-1] - res.trajectory[0], expected, rtol=1e-6)
    again = seegaan.interpolate(ds, feature="date", levels="20190406,20190405.0")
    assert again.levels == ("20190406", "20190405")
    np.testing.assert_allclose(again.trajectory, res.trajectory[::-1])
    assert seegaan.interpolate(ds, feature="frac", method="class-mean").levels == ("0.1", "0.1000001")
    with pytest.raises(SeegaanError, match="not a value of 'date'; levels: 20190405, 20190406"):
        seegaan.interpolate(ds, feature="date", levels="20190405,20190407")


def test_grids_outside_the_data_and_equal_grids():
    ds = make_cohort(n=120)
    age = ds["age"].values
    with pytest.raises(SeegaanError, match="leaves the observed range of 'age'"):
        seegaan.interpolate(ds, feature="age", method="gam", grid="-1000,5000")
    inside = seegaan.interpolate(ds, feature="age", method="gam", grid=[age.min(), age.max()])
    assert inside.notes == () or not any("range" in note for note in inside.notes)
    far = seegaan.interpolate(ds, feature="age", method="linear", grid="-1000,5000")
    assert any("extrapolates the linear fit" in note for note in far.notes)
    span = age.max() - age.min()
    near = seegaan.interpolate(ds, feature="age", method="linear", grid=[age.min() - 0.05 * span, age.max()])
    assert not any("extrapolates" in note for note in near.notes)
    for method in ("linear", "gam", "class-mean"):
        feature = "sex" if method == "class-mean" else "age"
        with pytest.raises(SeegaanError, match="grid values are all equal"):
            seegaan.interpolate(ds, feature=feature, method=method, grid="0.5,0.5,0.5")


def test_gam_edf_in_result_summary_and_small_cohort_note():
    big = seegaan.interpolate(make_cohort(n=600), feature="age", method="gam")
    assert 4 < big.edf < 20 and not any("effective degrees" in note for note in big.notes)
    assert f"{big.edf:.3g}" in big.summary().as_text()
    small = seegaan.interpolate(make_cohort(n=120), feature="age", method="gam")
    note = [n for n in small.notes if "effective degrees of freedom" in n]
    assert note and f"{small.edf:.1f} effective degrees of freedom for 120 images" in note[0]
    assert "--method linear or fewer splines (--gam-splines 6)" in note[0]
    auto = seegaan.interpolate(make_cohort(n=120), feature="age", method="gam", gam_lam="auto")
    assert auto.edf.shape == (8,) and np.all(auto.edf > 1)
    assert seegaan.interpolate(make_cohort(n=120), feature="age", method="linear").edf is None
