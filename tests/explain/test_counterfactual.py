"""seegaan.explain.counterfactual: the local direction, the λ solve (known answers), the result file and the CLI."""

import numpy as np
import pytest
import typer
import xarray as xr
from typer.testing import CliRunner

import seegaan
import seegaan.explain.cnn
from seegaan._internal.errors import SeegaanError
from seegaan.cli._common import OneLineErrors
from seegaan.cli.stats_explain import register
from seegaan.explain.counterfactual import explain, local_direction, parse_lambda_range, solve_lambda
from seegaan.explain.predictions import predict
from seegaan.testing import cnns as _cnns
from seegaan.testing.cohorts import make_cohort
from seegaan.testing.decoders import linear8, planted

DEC = "seegaan.testing.decoders:linear8"


def one_line(exc_info):
    msg = str(exc_info.value)
    assert msg and "\n" not in msg
    return msg


def top_mean(images):
    return images[:, :4].mean(axis=(1, 2)).astype(np.float64)


@pytest.fixture(scope="module")
def cohort():
    return make_cohort(n=40, seed=2)


def test_reachable_target_is_hit_within_tol_and_matches_the_closed_form(cohort):
    # class feature: w(λ) = w_E + λ (mean_M − mean_F) for an image of sex F; linear decoder -> f is linear in λ
    i = int(np.flatnonzero(cohort["sex"].values == "F")[0])
    image_id = str(cohort["image_id"].values[i])
    w = cohort["w"].values.astype(np.float64)
    sex = cohort["sex"].values
    delta = w[sex == "M"].mean(0) - w[sex == "F"].mean(0)
    f0, f1 = top_mean(linear8(w[i][None]))[0], top_mean(linear8((w[i] + delta)[None]))[0]
    target = f0 + 0.7 * (f1 - f0)  # λ* = 0.7 exactly
    r = explain(cohort, DEC, _cnns.region_mean, image_id=image_id, target=target, feature="sex", tol=1e-4)
    assert abs(r.prediction_star - target) <= 1e-4
    assert abs(r.lambda_star - 0.7) <= 1e-4 / abs(f1 - f0) + 1e-6
    np.testing.assert_allclose(r.direction.delta, delta, rtol=1e-6)
    assert (r.direction.current_label, r.direction.desired_label) == ("F", "M")
    assert r.prediction_0 == pytest.approx(f0, abs=1e-6)
    # the counterfactual is G(w(λ*)) and the difference is G(w(λ*)) − G(w_E)
    np.testing.assert_allclose(r.counterfactual, linear8((w[i] + r.lambda_star * delta)[None])[0], atol=1e-5)
    np.testing.assert_allclose(r.difference, r.counterfactual - r.reconstruction)
    assert r.frames.shape[0] == r.frame_lambdas.size and r.frame_lambdas[-1] == pytest.approx(r.lambda_star)


def reachable(c, decoder, model, image_id, feature, lams, q=0.37):
    """A target between the predictions at the ends of λ-grid ``lams`` (monotone there or not, it is crossed)."""
    d = local_direction(c, image_id=image_id, feature=feature)
    w0 = c["w"].values[list(c["image_id"].values).index(image_id)]
    ends = seegaan.explain.cnn.load_model(model)(decoder(d.latents(w0, lams[[0, -1]]).astype(np.float32))[:, None])
    return float(ends[0] + q * (ends[1] - ends[0]))


def test_nonlinear_path_is_solved_to_the_tolerance():
    c = make_cohort(n=40, seed=5)
    dec = planted  # the top half is tanh(0.2 w0 * const): monotone but not linear in λ
    target = reachable(c, dec, _cnns.region_mean, "img0001", "ahf", np.array([-20.0, 20.0]))
    r = explain(
        c,
        dec,
        _cnns.region_mean,
        image_id="img0001",
        target=target,
        feature="ahf",
        lambda_range=(-20, 20),
        n_scan=9,
        tol=1e-5,
    )
    assert abs(r.prediction_star - target) <= 1e-5
    again = top_mean(dec(r.direction.latents(r.w_image, [r.lambda_star]).astype(np.float32)))[0]
    assert abs(again - target) <= 1e-5


def test_unreachable_target_names_the_closest_value(cohort):
    with pytest.raises(
        SeegaanError,
        match=r"not reached for λ in \[0, 0.1\]: the closest prediction is "
        r"-?[0-9.]+ at λ = ",
    ) as e:
        explain(cohort, DEC, _cnns.region_mean, image_id="img0001", target=5.0, feature="sex", lambda_range=(0, 0.1))
    one_line(e)


def test_solver_picks_the_crossing_nearest_zero_and_reports_jumps():
    lams = np.linspace(-3, 3, 13)
    f = lambda lam: (lam - 0.4) * (lam - 2.2)  # noqa: E731 (two roots: 0.4 is nearer 0)
    lam, value = solve_lambda(f, lams, f(lams), 0.0, 1e-9)
    assert lam == pytest.approx(0.4, abs=1e-8) and abs(value) <= 1e-9
    step = lambda lam: float(lam > 1.3)  # noqa: E731 (jumps over 0.5)
    with pytest.raises(SeegaanError, match="jumps across the target 0.5") as e:
        solve_lambda(step, lams, np.array([step(x) for x in lams]), 0.5, 0.01)
    one_line(e)
    hit = np.array([0.0, 0.5, 1.0])
    assert solve_lambda(lambda x: x, hit, hit, 0.5, 1e-3) == (0.5, 0.5)  # a scan point on the target


def test_direction_without_feature_splits_the_cohort_at_the_target(cohort):
    p = predict(cohort, _cnns.region_mean, name="pred", decoder=DEC)["pred"].values
    i = int(np.argmin(p))
    target = float(np.quantile(p, 0.7))
    r = explain(
        cohort, DEC, _cnns.region_mean, image_id=str(cohort["image_id"].values[i]), target=target, lambda_range=(0, 10)
    )
    w = cohort["w"].values.astype(np.float64)
    np.testing.assert_allclose(r.direction.desired, w[p >= target].mean(0), rtol=1e-5)
    np.testing.assert_allclose(r.direction.current, w[p < target].mean(0), rtol=1e-5)
    assert r.direction.basis == "model prediction" and r.direction.n_desired == int((p >= target).sum())
    # a stored numeric feature (e.g. from predict) gives the same groups without re-running the model
    d = local_direction(
        cohort.assign_coords(pred=("image", p)),
        image_id=r.image_id,
        feature="pred",
        target=target,
        prediction=r.prediction_0,
    )
    np.testing.assert_allclose(d.delta, r.direction.delta, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(d.unit), 1.0)


def test_direction_levels_and_their_errors(cohort):
    own = str(cohort["sex"].values[0])
    other = "M" if own == "F" else "F"
    d = local_direction(cohort, image_id="img0000", feature="sex")
    assert (d.current_label, d.desired_label) == (own, other)
    d2 = local_direction(cohort, image_id="img0000", feature="sex", levels=f"{other},{own}")
    np.testing.assert_allclose(d2.delta, -d.delta)
    with pytest.raises(SeegaanError, match="level 'X' is not a value of 'sex'"):
        local_direction(cohort, image_id="img0000", feature="sex", levels="F,X")
    with pytest.raises(SeegaanError, match="applies to class features"):
        local_direction(cohort, image_id="img0000", feature="age", levels="1,2", target=50, prediction=40)
    with pytest.raises(SeegaanError, match="is not in the cohort"):
        local_direction(cohort, image_id="nope", feature="sex")
    with pytest.raises(SeegaanError, match="no cohort image has age >= 200"):
        local_direction(cohort, image_id="img0000", feature="age", target=200, prediction=40)


@pytest.mark.parametrize(
    "bad, match", [("3:0", "reversed"), ("1:1", "reversed"), ("a:b", "two numbers"), ((0, np.inf), "two numbers")]
)
def test_lambda_range_is_checked(bad, match):
    with pytest.raises(SeegaanError, match=match):
        parse_lambda_range(bad)
    assert parse_lambda_range("-1.5:2") == (-1.5, 2.0)


def test_already_at_target_is_refused(cohort):
    r0 = predict(cohort, _cnns.region_mean, name="p", decoder=DEC)["p"].values[3]
    with pytest.raises(SeegaanError, match="already predicts"):
        explain(cohort, DEC, _cnns.region_mean, image_id="img0003", target=r0 + 0.001, feature="sex")


def test_dataset_and_save(cohort, tmp_path):
    target = reachable(cohort, linear8, _cnns.tiny_cnn, "img0002", "ahf", np.array([0.0, 3.0]), q=0.8)
    r = explain(
        cohort,
        DEC,
        _cnns.tiny_cnn,
        image_id="img0002",
        target=target,
        feature="ahf",
        lambda_range=(0, 3),
        n_scan=41,
        tol=0.05,
        attributions=("vg", "ig"),
        command_line="test cmd",
    )
    ds = r.to_dataset()
    for name in ("counterfactual", "reconstruction", "difference", "attribution_vg", "attribution_ig"):
        assert ds[name].dims == ("y", "x") and ds[name].shape == (8, 8)
    assert ds["prediction"].dims == ("lambda",) and ds.sizes["lambda"] == 41
    for key in (
        "lambda_star",
        "prediction_star",
        "target",
        "image_id",
        "model",
        "model_sha256",
        "decoder",
        "seegaan_version",
        "command_line",
    ):
        assert key in ds.attrs
    assert ds.attrs["command_line"] == "test cmd" and ds.attrs["image_id"] == "img0002"
    out = tmp_path / "e.nc"
    r.save(out)
    with xr.open_dataset(out) as back:
        np.testing.assert_allclose(back["counterfactual"].values, r.counterfactual)
        assert float(back.attrs["lambda_star"]) == r.lambda_star
    with pytest.raises(SeegaanError, match="already exists"):
        r.save(out)
    with pytest.raises(SeegaanError, match=".nc"):
        r.save(tmp_path / "e.txt")
    assert "λ*" in r.summary().as_text()


# ---------------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def cohort_file(tmp_path_factory, cohort):
    path = tmp_path_factory.mktemp("cli") / "cohort.nc"
    seegaan.save_cohort(cohort, path)
    return path


def run(*args):
    app = typer.Typer(cls=OneLineErrors)
    register(app)
    return CliRunner().invoke(app, [str(a) for a in args])


def cli(cohort_file, out, *extra):
    return run(
        "explain",
        "--cohort",
        cohort_file,
        "--decoder",
        DEC,
        "--model",
        "seegaan.testing.cnns:region_mean",
        "--out",
        out,
        *extra,
    )


def test_cli_explain_writes_netcdf_and_figure(cohort_file, tmp_path):
    out, png = tmp_path / "e.nc", tmp_path / "e.png"
    p0 = float(top_mean(linear8(seegaan.open_cohort(cohort_file)["w"].values[:1]))[0])
    r = cli(
        cohort_file,
        out,
        "--image",
        "img0000",
        "--feature",
        "sex",
        "--target",
        p0 + 0.05,
        "--lambda-range",
        "-20:20",
        "--plot",
        png,
    )
    assert r.exit_code == 0, r.output
    with xr.open_dataset(out) as ds:
        assert abs(float(ds.attrs["prediction_star"]) - (p0 + 0.05)) <= 0.01
        assert "seegaan-stats" in ds.attrs["command_line"]
    assert png.stat().st_size > 0


@pytest.mark.parametrize(
    "extra, match",
    [
        (("--image", "nope", "--feature", "sex", "--target", "0.1"), "image 'nope' is not in the cohort"),
        (("--image", "img0000", "--feature", "sex", "--levels", "F,Q", "--target", "0.1"), "level 'Q' is not"),
        (("--image", "img0000", "--feature", "sex", "--target", "0.1", "--lambda-range", "3:0"), "reversed"),
        (("--image", "img0000", "--feature", "sex", "--target", "0.1", "--tol", "0"), "--tol must be a positive"),
        (("--image", "img0000", "--feature", "sex", "--target", "0.1", "--tol", "-1"), "--tol must be a positive"),
        (("--image", "img0000", "--feature", "sex", "--target", "9", "--lambda-range", "0:0.1"), "closest prediction"),
        (("--image", "img0000", "--feature", "nofeature", "--target", "0.1"), "feature 'nofeature' is not"),
        (("--image", "img0000", "--target", "0.1", "--attributions", "vg,xx"), "unknown attribution method 'xx'"),
        (("--image", "img0000", "--target", "0.1", "--attributions", "vg"), "plain function|no Conv2d|nn.Module"),
    ],
)
def test_cli_bad_inputs_are_one_line_and_leave_nothing(cohort_file, tmp_path, extra, match):
    out, png = tmp_path / "e.nc", tmp_path / "e.png"
    model = "seegaan.testing.cnns:plain_mean" if "vg" in extra else "seegaan.testing.cnns:region_mean"
    r = run("explain", "--cohort", cohort_file, "--decoder", DEC, "--model", model, "--out", out, "--plot", png, *extra)
    assert r.exit_code != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    import re

    assert re.search(match, lines[0]), lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output, no leftover part file
