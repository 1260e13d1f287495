"""seegaan.explain.local: local sequences of one image (λ = 0 is G(w_E), null directions, calibration, CLI)."""

import numpy as np
import pytest
import xarray as xr
from scipy import stats as sps

import seegaan
from seegaan._internal.errors import SeegaanError
from seegaan.explain.local import local_sequence, parse_lambdas
from seegaan.stats.permutation import draw_permutations
from seegaan.testing.cohorts import make_cohort
from seegaan.testing.decoders import linear8, planted
from tests.explain.test_counterfactual import cohort, cohort_file  # noqa: F401  (module fixtures: 40 images, seed 2, and its file)
from tests.explain.test_counterfactual import run as run_cli


def make_mlp(D=8, size=8, hidden=16, seed=7):
    """A random softplus -> tanh map of D latents to size x size images (nonlinear, batch-invariant per row)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((D, hidden)) / np.sqrt(D)
    B = rng.standard_normal((hidden, size * size)) / np.sqrt(hidden)

    def decode(w):
        h = np.logaddexp(0.0, np.asarray(w, np.float64) @ A)
        return np.tanh(h @ B - 0.7).reshape(len(w), size, size).astype(np.float32)

    return decode


def batch_dependent(w):
    """A decoder whose images depend on the other latents of the call (not batch-invariant)."""
    w = np.asarray(w, np.float32)
    return planted(w) + np.float32(1e-3) * w.mean()


def one_line(exc_info):
    msg = str(exc_info.value)
    assert msg and "\n" not in msg
    return msg


def image_of(c, feature, value):
    return str(c["image_id"].values[np.flatnonzero(c[feature].values == value)[0]])


# ---------------------------------------------------------------------------------------------- λ = 0
@pytest.mark.parametrize("decoder", [batch_dependent, planted], ids=["batch-dependent", "planted"])
def test_lambda_zero_is_the_reconstruction_bit_for_bit(cohort, decoder):
    i = 3
    w_E = cohort["w"].values[i]
    r = local_sequence(
        cohort, decoder, image_id=str(cohort["image_id"].values[i]), feature="sex", lambdas="0:1:3", n_perm=19
    )
    G_wE = decoder(w_E[None].astype(np.float32))[0]
    assert np.array_equal(r.reconstruction, G_wE) and np.array_equal(r.images[0], G_wE)
    assert not r.difference[0].any() and not r.significant[0].any()
    # the other frames are G(w_E + λ Δ), Δ = mean(desired) − mean(current) of the *other* images (the image
    # itself left out of its group)
    d = r.direction
    np.testing.assert_allclose(r.latents, w_E[None] + np.array([0, 0.5, 1])[:, None] * d.delta[None], atol=1e-12)
    sex = cohort["sex"].values
    own = sex[i]
    others = np.arange(sex.size) != i
    W = cohort["w"].values.astype(np.float64)
    np.testing.assert_allclose(d.delta, W[others & (sex != own)].mean(0) - W[others & (sex == own)].mean(0), rtol=1e-9)
    assert d.n_current == int((others & (sex == own)).sum()) and r.attrs["image_left_out"] == 1
    np.testing.assert_allclose(r.images[2], decoder(r.latents[2:3].astype(np.float32))[0], atol=2e-3)


def test_numeric_feature_follows_the_global_trajectory_and_its_own_value_is_the_image(cohort):
    i = 5
    own = float(cohort["age"].values[i])
    values = [30.0, own, 70.0]
    r = local_sequence(
        cohort,
        planted,
        image_id=str(cohort["image_id"].values[i]),
        feature="age",
        values=values,
        method="linear",
        n_perm=0,
    )
    others = cohort.isel(image=np.delete(np.arange(cohort.sizes["image"]), i))  # the image left out of the fit
    T = seegaan.interpolate(others, feature="age", method="linear", grid=[own, *values]).trajectory
    w_E = cohort["w"].values[i].astype(np.float64)
    np.testing.assert_allclose(r.latents, w_E + T[1:] - T[0], atol=1e-12)
    assert np.array_equal(r.latents[1], w_E) and np.array_equal(r.images[1], r.reconstruction)
    ds = r.to_dataset()
    assert list(ds["feature_value"].values) == values and "lambda" not in ds.coords and "p_value" not in ds


# ---------------------------------------------------------------------------------------------- the null
def test_null_directions_are_the_permuted_group_means_of_the_others(cohort):
    # uncorrected p-values by brute force under --null permutation: Δ_b from the plan's rows over the other
    # images (image scheme: W[idx] keeps the labels)
    image_id = image_of(cohort, "ahf", False)
    lams = np.array([0.0, 1.0, 2.0])
    B, seed = 19, 4
    r = local_sequence(
        cohort,
        linear8,
        image_id=image_id,
        feature="ahf",
        lambdas=lams,
        n_perm=B,
        seed=seed,
        correction="none",
        null="permutation",
    )
    index = list(cohort["image_id"].values).index(image_id)
    w_E = cohort["w"].values[index].astype(np.float64)
    others = np.arange(cohort.sizes["image"]) != index
    W = cohort["w"].values.astype(np.float64)[others]
    g = cohort["ahf"].values.astype(bool)[others]  # current False -> desired True
    plan = draw_permutations(cohort["patient_id"].values[others], B, feature=g.astype(float), seed=seed)
    assert plan.scheme == "image"
    recon = linear8(w_E[None].astype(np.float32))[0]
    obs = r.difference
    exceed = np.zeros(obs.shape)
    for idx in plan.indices:
        Wp = W[idx]
        delta = Wp[g].mean(0) - Wp[~g].mean(0)
        null = linear8((w_E[None] + lams[:, None] * delta[None]).astype(np.float32)) - recon
        exceed += np.abs(null) >= np.abs(obs)
    p = (exceed + 1) / (B + 1)
    np.testing.assert_allclose(r.p_value[1:], p[1:])
    assert (r.p_value[0] == 1).all()


def test_calibrated_under_the_null():
    """Random labels, nonlinear decoder: FWER of max-T (sign flips and permutations) inside the binomial 95%
    interval."""
    dec = make_mlp()
    n_cohorts, alpha = 200, 0.05
    hits = {"sign-flip": 0, "permutation": 0}
    for k in range(n_cohorts):
        c = make_cohort(n=30, seed=1000 + k)
        image_id = str(c["image_id"].values[0])
        for null in hits:
            r = local_sequence(
                c,
                dec,
                image_id=image_id,
                feature="ahf",
                lambdas="0:1:3",
                n_perm=99,
                seed=k,
                null=null,
                backend="numpy",
            )
            hits[null] += bool(r.significant.any())
    lo, hi = sps.binom.interval(0.95, n_cohorts, alpha)
    for null, h in hits.items():
        assert lo <= h <= hi, (null, h / n_cohorts, (lo / n_cohorts, hi / n_cohorts))


def test_planted_effect_is_found_where_it_is():
    c = make_cohort(n=60, seed=3)
    w = c["w"].values.copy()
    w[c["ahf"].values, 0] += 3.0  # planted's top half depends on w[:, 0] only
    c = c.copy()
    c["w"] = (("image", "latent"), w)
    r = local_sequence(
        c, planted, image_id=image_of(c, "ahf", False), feature="ahf", lambdas="0:1:3", n_perm=199, seed=0
    )
    assert r.attrs["statistic"] == "difference" and r.attrs["null"] == "sign-flip"
    assert r.significant[1:, :4].all()  # the whole top half at λ = 0.5 and 1
    assert r.significant[:, 4:].sum() == 0  # nothing where no latent moved the image


# ---------------------------------------------------------------------------------------------- bits
@pytest.mark.parametrize("null", ["sign-flip", "permutation"])
def test_same_seed_same_bits_and_batch_size_invariance(cohort, null):
    dec = make_mlp()
    kw = dict(image_id="img0002", feature="sex", lambdas="0:2:3", n_perm=40, null=null)
    a = local_sequence(cohort, dec, seed=5, batch_size=1, **kw)
    b = local_sequence(cohort, dec, seed=5, batch_size=16, **kw)
    for name in ("images", "p_value", "p_adjusted", "significant", "null_max"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    other = local_sequence(cohort, dec, seed=6, **kw)
    assert not np.array_equal(a.null_max, other.null_max)


def test_numeric_null_refits_the_trajectory_on_permuted_data(cohort):
    # uncorrected p-values by brute force from the permuted trajectories T_b(v) − T_b(v_E); any batch size
    i, values, B = 4, np.array([30.0, 60.0]), 30
    kw = dict(
        image_id=str(cohort["image_id"].values[i]),
        feature="age",
        values=values,
        method="linear",
        n_perm=B,
        seed=2,
        correction="none",
        null="permutation",
    )
    a = local_sequence(cohort, linear8, batch_size=1, **kw)
    b = local_sequence(cohort, linear8, batch_size=30, **kw)
    assert np.array_equal(a.p_value, b.p_value) and a.attrs["statistic"] == "difference"
    own = float(cohort["age"].values[i])
    others = cohort.isel(image=np.delete(np.arange(cohort.sizes["image"]), i))
    interp = seegaan.interpolate(others, feature="age", method="linear", grid=[own, *values])
    plan = draw_permutations(interp.patient_ids, B, feature=interp.feature_codes, seed=2)
    w_E = cohort["w"].values[i].astype(np.float64)
    recon = linear8(w_E[None].astype(np.float32))[0]
    exceed = np.zeros(a.difference.shape)
    for idx in plan.indices:
        T = interp.null_trajectory(idx, plan.scheme)
        exceed += np.abs(linear8((w_E + T[1:] - T[0]).astype(np.float32)) - recon) >= np.abs(a.difference)
    np.testing.assert_allclose(a.p_value, (exceed + 1) / (B + 1))
    with pytest.raises(SeegaanError, match="retired"):
        local_sequence(cohort, linear8, statistic="welch", **kw)


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(image_id="nope", feature="sex"), "not in the cohort"),
        (dict(image_id="img0001", feature="sex", levels="F,X"), "level 'X' is not a value"),
        (dict(image_id="img0001", feature="sex", lambdas="2:0:5"), "reversed"),
        (dict(image_id="img0001", feature="sex", lambdas="0:1:1"), "at least 2"),
        (dict(image_id="img0001", feature="sex", lambdas="-1,1"), ">= 0"),
        (dict(image_id="img0001", feature="sex", values="40,50"), "--lambdas"),
        (dict(image_id="img0001", feature="age", lambdas="0:1:3"), "--values"),
        (dict(image_id="img0001", feature="age", levels="a,b"), "class features"),
    ],
)
def test_bad_inputs_are_one_line_errors(cohort, kwargs, match):
    with pytest.raises(SeegaanError, match=match) as exc:
        local_sequence(cohort, "seegaan.testing.decoders:nope_not_loaded", **kwargs)
    one_line(exc)


def test_parse_lambdas():
    assert np.array_equal(parse_lambdas("0:2:5"), np.linspace(0, 2, 5))
    assert np.array_equal(parse_lambdas([0, 0.5]), [0, 0.5])
    with pytest.raises(SeegaanError, match="λ > 0"):
        parse_lambdas("0")


# ---------------------------------------------------------------------------------------------- CLI
def run(*args):
    return run_cli("local", *args)


def test_cli_writes_the_contract_and_the_figure(cohort_file, tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray((np.arange(64).reshape(8, 8) * 4).astype(np.uint8)).save(folder / "img0001.png")
    out = tmp_path / "local.nc"
    res = run(
        "--image",
        "img0001",
        "--feature",
        "ahf",
        "--lambdas",
        "0:1:3",
        "--perm",
        19,
        "--seed",
        3,
        "--cohort",
        cohort_file,
        "--decoder",
        "seegaan.testing.decoders:planted",
        "--images",
        folder,
        "--out",
        out,
    )
    assert res.exit_code == 0, res.output
    assert out.exists() and out.with_suffix(".png").exists()
    with xr.open_dataset(out) as ds:
        for name in ("image", "difference", "p_value", "p_adjusted", "significant", "significant_difference"):
            assert ds[name].dims == ("step", "y", "x"), name
        assert ds["reconstruction"].dims == ("y", "x") and ds["source_image"].dims == ("y", "x")
        assert list(ds["lambda"].values) == [0, 0.5, 1]
        for key in (
            "image_id",
            "feature",
            "levels",
            "direction_norm",
            "n_perm",
            "permutation_scheme",
            "correction",
            "alpha",
            "statistic",
            "seed",
            "decoder",
            "cohort_hash",
            "seegaan_version",
            "command_line",
        ):
            assert key in ds.attrs, key
        assert ds.attrs["image_id"] == "img0001" and ds.attrs["n_perm"] == 19 and ds.attrs["seed"] == "3"
        assert ds.attrs["source_image"] == "shown"


def test_cli_workers_give_the_single_process_result(cohort_file, tmp_path):
    pytest.importorskip("distributed")
    common = [
        "--image",
        "img0001",
        "--feature",
        "ahf",
        "--lambdas",
        "0:1:3",
        "--perm",
        40,
        "--seed",
        3,
        "--cohort",
        cohort_file,
        "--decoder",
        "seegaan.testing.decoders:planted",
        "--no-plot",
    ]
    res = run(*common, "--workers", 0, "--out", tmp_path / "w0.nc")
    assert res.exit_code == 2 and "--workers must be at least 1" in res.output
    assert not (tmp_path / "w0.nc").exists()
    r1 = run(*common, "--out", tmp_path / "one.nc")
    r2 = run(*common, "--workers", 1, "--out", tmp_path / "dask.nc")
    assert r1.exit_code == 0 and r2.exit_code == 0, r2.output
    with xr.open_dataset(tmp_path / "one.nc") as a, xr.open_dataset(tmp_path / "dask.nc") as b:
        for name in ("difference", "p_value", "p_adjusted", "significant"):
            assert np.array_equal(a[name].values, b[name].values), name


@pytest.mark.parametrize(
    "extra, match",
    [
        (("--image", "nope", "--feature", "ahf"), "not in the cohort"),
        (("--image", "img0001", "--feature", "sex", "--levels", "F,X"), "not a value"),
        (("--image", "img0001", "--feature", "ahf", "--lambdas", "1:0:3"), "reversed"),
        (("--image", "img0001", "--feature", "ahf", "--lambdas", "0:1:1"), "at least 2"),
    ],
)
def test_cli_bad_inputs_are_one_line_and_leave_nothing(cohort_file, tmp_path, extra, match):
    out = tmp_path / "local.nc"
    res = run(
        *extra, "--cohort", cohort_file, "--decoder", "seegaan.testing.decoders:planted", "--perm", 9, "--out", out
    )
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], res.output
    assert list(tmp_path.iterdir()) == []


def test_local_and_explain_warn_when_the_decoder_is_not_the_encoding_checkpoint():
    """As interpolate does: the cohort's ``model`` attr and the decoder's sha256 differ -> a warning."""
    import warnings

    from seegaan import demo
    from seegaan.explain.counterfactual import explain

    cohort = seegaan.open_cohort(demo.cohort_path()).isel(image=slice(0, 60))
    cohort.attrs["model"] = "other.pt sha256:" + "0" * 64
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seegaan.local_sequence(cohort, demo.decoder_path(), image_id="ph00001_0", feature="ahf", n_perm=0)
        explain(cohort, demo.decoder_path(), demo.cnn_path(), image_id="ph00001_0", target=7.0, direction="gradient")
    messages = [str(w.message) for w in caught if issubclass(w.category, seegaan.SeegaanWarning)]
    assert sum("decode with the encoding checkpoint" in m for m in messages) == 2
