"""Directions the CNN chooses (``explain(direction="gradient"|"minimal")``) and the covariate-adjusted mean direction.

Known truth: the ``planted`` decoder draws the top half of the image from w[0] only and the bottom half from
w[1:] only, and ``region_mean`` reads the top half only. In a cohort where the class feature moves both
w[0] and w[1:], the paper's mean direction changes the bottom half too (what goes with the answer), while
the gradient and minimal directions must change (almost) only the top half (what the CNN uses).
"""

import numpy as np
import pytest
import torch
import typer
import xarray as xr
from typer.testing import CliRunner

import seegaan
from seegaan._internal.errors import SeegaanError
from seegaan.cli._common import OneLineErrors
from seegaan.cli.stats_explain import register
from seegaan.data.cohort import create_cohort
from seegaan.explain.counterfactual import explain, local_direction
from seegaan.explain.directions import LatentPath
from seegaan.testing import cnns as _cnns

PLANTED = "seegaan.testing.decoders:planted"


def one_line(exc_info):
    msg = str(exc_info.value)
    assert msg and "\n" not in msg
    return msg


def top_share(difference):
    a = np.abs(difference)
    return float(a[: a.shape[0] // 2].sum() / a.sum())


@pytest.fixture(scope="module")
def confounded():
    """60 images, 8 latents: class 'sick' shifts w[0] (what the CNN reads) and w[1:] (what it ignores); a
    covariate ``c`` drives w[1:] and goes with the class."""
    rng = np.random.default_rng(4)
    n = 60
    sick = np.arange(n) % 2 == 0
    c = sick + 0.7 * rng.standard_normal(n)
    w = rng.standard_normal((n, 8))
    w[:, 0] += 1.5 * sick
    w[:, 1:] += 1.2 * c[:, None]
    table = {
        "image_id": [f"img{i:03d}" for i in range(n)],
        "patient_id": [f"p{i:03d}" for i in range(n)],
        "sick": sick,
        "c": c,
    }
    import pandas as pd

    return create_cohort(w.astype(np.float32), pd.DataFrame(table), model="test", image_size=8)


def _healthy(cohort):
    return str(cohort["image_id"].values[1])  # odd rows are healthy


def _target(cohort, image_id, shift=0.05):
    w = cohort["w"].values[list(cohort["image_id"].values).index(image_id)]
    decoder = seegaan.load_decoder(PLANTED)
    p0 = float(_cnns.region_mean(torch.from_numpy(decoder(w[None])[:, None]))[0])
    return p0 + shift


@pytest.mark.parametrize("direction", ["gradient", "minimal"])
def test_cnn_directions_reach_the_target_and_change_only_what_the_cnn_reads(confounded, direction):
    image_id = _healthy(confounded)
    target = _target(confounded, image_id)
    r = explain(confounded, PLANTED, _cnns.region_mean, image_id=image_id, target=target, direction=direction)
    assert abs(r.prediction_star - target) <= 0.01
    assert r.attrs["direction"] == direction and r.attrs["gradients"] == "central differences"  # a numpy decoder
    assert isinstance(r.direction, LatentPath) and r.direction.kind == direction
    # the bottom half depends on w[1:] only, which the CNN never sees: (almost) nothing moves there
    assert top_share(r.difference) > 0.95
    mean = explain(confounded, PLANTED, _cnns.region_mean, image_id=image_id, target=target, feature="sick")
    assert top_share(mean.difference) < 0.6  # the paper's direction moves what goes with the class too
    ds = r.to_dataset()
    assert ds["path"].dims == ("path_lambda", "latent") and ds.attrs["latent_scale"] > 0
    # the stored direction is the mean move per unit λ up to λ*
    np.testing.assert_allclose(
        r.w_image + r.lambda_star * ds["direction"].values,
        r.direction.latents(r.w_image, [r.lambda_star])[0],
        atol=1e-5,
    )


def test_gradient_of_a_checkpoint_uses_autograd_and_matches_central_differences():
    """On the bundled demo checkpoint the gradient comes from autograd; a first step along it agrees with
    the central-difference gradient of the same decoder seen as a plain function."""
    from seegaan import demo
    from seegaan.explain.directions import _Gradients

    cohort = seegaan.open_cohort(demo.cohort_path())
    decoder = seegaan.load_decoder(demo.decoder_path())
    model = seegaan.explain.cnn.load_model(_cnns.region_mean)
    w0 = cohort["w"].values[0].astype(np.float64)
    auto = _Gradients(decoder, model, 1.0, 32)
    _, p_auto, g_auto = auto(w0, lambda img, pred: pred)
    assert auto.used == "autograd"
    plain = seegaan.load_decoder(lambda w: decoder(w))
    fd = _Gradients(plain, model, 3.0, 129)
    _, p_fd, g_fd = fd(w0, lambda img, pred: pred)
    assert fd.used == "central differences"
    assert p_auto == pytest.approx(p_fd, abs=1e-5)
    cosine = g_auto @ g_fd / np.linalg.norm(g_auto) / np.linalg.norm(g_fd)
    assert cosine > 0.99


def test_unreachable_targets_and_options_that_do_not_apply_are_one_line(confounded):
    image_id = _healthy(confounded)
    with pytest.raises(SeegaanError, match="not reached for λ in") as e:
        explain(confounded, PLANTED, _cnns.region_mean, image_id=image_id, target=5.0, direction="gradient")
    one_line(e)
    with pytest.raises(SeegaanError, match="not reached for λ in") as e:
        explain(confounded, PLANTED, _cnns.region_mean, image_id=image_id, target=5.0, direction="minimal")
    one_line(e)
    cases = [
        (dict(direction="sideways"), "unknown direction 'sideways'"),
        (dict(direction="gradient", feature="sick"), "--feature defines the mean direction"),
        (dict(direction="minimal", adjust="c"), "--adjust defines the mean direction"),
        (dict(direction="gradient", lambda_range=(-1, 1)), "--lambda-range must start at 0"),
        (dict(direction="minimal", proximity=0), "--proximity must be a positive number"),
        (dict(feature="sick", adjust="sick"), "is the feature itself"),
    ]
    for kwargs, match in cases:
        with pytest.raises(SeegaanError, match=match) as e:
            explain(confounded, PLANTED, _cnns.region_mean, image_id=image_id, target=0.3, **kwargs)
        one_line(e)


class _Constant(torch.nn.Module):
    def forward(self, x):
        return x[:, 0, 0, 0] * 0.0 + 0.25


def test_a_model_that_does_not_respond_is_refused(confounded):
    with pytest.raises(SeegaanError, match="gradient in latent space is zero") as e:
        explain(confounded, PLANTED, _Constant(), image_id=_healthy(confounded), target=0.5, direction="gradient")
    one_line(e)


def test_adjusted_mean_direction_holds_the_covariate_fixed(confounded):
    """The class direction with ``c`` held fixed is the class coefficient of w ~ 1 + class + c: its
    w[1:] part (driven by c only) shrinks towards 0, its w[0] part stays."""
    image_id = _healthy(confounded)
    plain = local_direction(confounded, image_id=image_id, feature="sick")
    adjusted = local_direction(confounded, image_id=image_id, feature="sick", adjust=["c"])
    w = confounded["w"].values.astype(np.float64)
    sick = confounded["sick"].values.astype(float)
    c = confounded["c"].values
    X = np.column_stack([np.ones_like(c), sick, c - c.mean()])
    coef = np.linalg.lstsq(X, w, rcond=None)[0][1]
    np.testing.assert_allclose(adjusted.delta, coef, rtol=1e-10)
    assert np.abs(adjusted.delta[1:]).mean() < 0.35 * np.abs(plain.delta[1:]).mean()
    assert adjusted.delta[0] == pytest.approx(1.5, abs=0.6)
    assert "adjusted for c" in adjusted.basis
    # through explain: the counterfactual moves the bottom half less
    target = _target(confounded, image_id)
    a = explain(confounded, PLANTED, _cnns.region_mean, image_id=image_id, target=target, feature="sick", adjust="c")
    p = explain(confounded, PLANTED, _cnns.region_mean, image_id=image_id, target=target, feature="sick")
    assert top_share(a.difference) > top_share(p.difference) + 0.2
    assert a.attrs["adjust"] == "c" and a.attrs["direction"] == "mean"


def test_cli_explain_direction_gradient(tmp_path, confounded):
    cohort_file = tmp_path / "cohort.nc"
    seegaan.save_cohort(confounded, cohort_file)
    app = typer.Typer(cls=OneLineErrors)
    register(app)
    out = tmp_path / "cf.nc"
    target = _target(confounded, _healthy(confounded))
    args = ["explain", "--image", _healthy(confounded), "--model", "seegaan.testing.cnns:region_mean"]
    args += ["--target", f"{target}", "--out", str(out), "--cohort", str(cohort_file), "--decoder", PLANTED]
    r = CliRunner().invoke(app, [*args, "--direction", "gradient"])
    assert r.exit_code == 0, r.output
    assert "gradient: the CNN's gradient through G" in r.output
    with xr.open_dataset(out) as ds:
        assert ds.attrs["direction"] == "gradient" and "path" in ds
    bad = CliRunner().invoke(app, [*args, "--direction", "minimal", "--feature", "sick", "--overwrite"])
    assert bad.exit_code != 0 and "--feature defines the mean direction" in bad.output


def test_local_sequence_adjusted_direction(confounded):
    """``local --adjust c``: the direction is the covariate-adjusted class difference of the other images
    (the image left out), tested with the same null machinery; bits reproducible."""
    image_id = _healthy(confounded)
    kwargs = dict(image_id=image_id, feature="sick", n_perm=19, backend="numpy", lambdas="0:1:3")
    plain = seegaan.local_sequence(confounded, PLANTED, **kwargs)
    adjusted = seegaan.local_sequence(confounded, PLANTED, adjust="c", **kwargs)
    again = seegaan.local_sequence(confounded, PLANTED, adjust=["c"], **kwargs)
    assert adjusted.attrs["adjust"] == "c" and plain.attrs["adjust"] == ""
    assert "adjusted for c" in adjusted.direction.basis
    assert np.abs(adjusted.direction.delta[1:]).mean() < 0.35 * np.abs(plain.direction.delta[1:]).mean()
    np.testing.assert_array_equal(adjusted.p_value, again.p_value)
    others = confounded.isel(image=[i for i in range(confounded.sizes["image"]) if i != 1])
    interp = seegaan.interpolate(others, feature="sick", method="class-mean", adjust=["c"], grid=[0.0, 1.0])
    np.testing.assert_allclose(adjusted.direction.delta, interp.trajectory[1] - interp.trajectory[0], rtol=1e-12)


def test_reconstruction_gap_is_reported_and_warned(confounded, tmp_path):
    """``images=``: the CNN also reads the original image; the gap to its answer on G(w_E) is recorded, and
    a warning says when the target lies between the two answers or the gap is more than half the change."""
    import warnings

    from seegaan.data import load_dataset
    from seegaan.explain.cnn import load_model
    from seegaan.explain.counterfactual import _reconstruction_gap

    model = load_model(_cnns.region_mean)
    image = np.zeros((8, 8), np.float32)
    image[:4] = 0.5  # the CNN reads 0.5 on the image
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        between = _reconstruction_gap(model, image, 0.1, 0.3)  # target between 0.1 (G(w_E)) and 0.5 (image)
        large = _reconstruction_gap(model, image, 0.1, 1.0)  # gap 0.4 > half of |1.0 - 0.5|
        fine = _reconstruction_gap(model, image, 0.45, 2.0)
    assert "the other way" in between["gap_warning"] and "more than half" in large["gap_warning"]
    assert fine["gap_warning"] == "" and fine["reconstruction_gap"] == pytest.approx(-0.05)
    assert len([w for w in caught if issubclass(w.category, seegaan.SeegaanWarning)]) == 2
    # through explain: the original is read from the folder, at the cohort's image size
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for image_id in confounded["image_id"].values:
        np.save(folder / f"{image_id}.npy", rng.uniform(-1, 1, (8, 8)).astype(np.float32))
    image_id = _healthy(confounded)
    target = _target(confounded, image_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", seegaan.SeegaanWarning)
        r = explain(confounded, PLANTED, _cnns.region_mean, image_id=image_id, target=target, images=folder)
    data = load_dataset(folder, size=8)
    original = data.array([list(data.image_ids).index(image_id)])
    assert r.attrs["prediction_image"] == pytest.approx(float(model(original)[0]))
    assert r.attrs["reconstruction_gap"] == pytest.approx(r.prediction_0 - r.attrs["prediction_image"])
    assert "prediction on the image" in r.summary().as_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    np.save(empty / "other.npy", np.zeros((8, 8), np.float32))
    with pytest.raises(SeegaanError, match="is not in") as e:
        explain(confounded, PLANTED, _cnns.region_mean, image_id=image_id, target=target, images=empty)
    one_line(e)
