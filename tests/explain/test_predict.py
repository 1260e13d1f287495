"""seegaan.explain.cnn.load_model and seegaan.explain.predictions.predict: specs, refusals, cohort order, images on
disk, CLI."""

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

import seegaan
from seegaan._internal.errors import SeegaanError
from seegaan.cli._common import OneLineErrors
from seegaan.cli.stats_explain import register
from seegaan.explain.cnn import load_model
from seegaan.explain.predictions import predict
from seegaan.testing import cnns as _cnns
from seegaan.testing.cohorts import make_cohort
from seegaan.testing.decoders import linear8

DEC = "seegaan.testing.decoders:linear8"


def one_line(exc_info):
    msg = str(exc_info.value)
    assert "\n" not in msg and msg
    return msg


def region_mean_by_hand(w):
    return linear8(w)[:, :4].mean(axis=(1, 2)).astype(np.float64)


def test_predict_on_reconstructions_matches_the_model_by_hand():
    c = make_cohort(n=30)
    out = predict(c, "seegaan.testing.cnns:region_mean", name="pred", decoder=DEC, batch_size=7)
    assert out["pred"].dtype == np.float64 and out["pred"].dims == ("image",)
    np.testing.assert_allclose(out["pred"].values, region_mean_by_hand(c["w"].values), rtol=1e-5, atol=1e-6)
    attrs = out["pred"].attrs
    assert attrs["input"] == "reconstruction" and attrs["model_sha256"] and "region_mean" in attrs["model"]
    assert "pred" in seegaan.data.cohort.clinical_features(out) and "pred" not in c.coords  # a copy


def test_predictions_follow_cohort_order_after_a_shuffle():
    c = make_cohort(n=30)
    order = np.random.default_rng(3).permutation(30)
    shuffled = c.isel(image=order)
    a = predict(c, _cnns.region_mean, name="p", decoder=DEC, batch_size=4)
    b = predict(shuffled, _cnns.region_mean, name="p", decoder=DEC, batch_size=11)
    by_id = dict(zip(a["image_id"].values, a["p"].values))
    np.testing.assert_allclose(b["p"].values, [by_id[i] for i in b["image_id"].values], rtol=1e-6)
    assert not np.allclose(a["p"].values, b["p"].values)  # the shuffle did move them


def test_progress_counts_every_image():
    calls = []
    predict(
        make_cohort(n=10),
        _cnns.region_mean,
        name="p",
        decoder=DEC,
        batch_size=4,
        progress=lambda n=1, total=None: calls.append((n, total)),
    )
    assert calls[0] == (0, 10) and sum(n for n, _ in calls) == 10


@pytest.mark.parametrize(
    "spec, match",
    [
        ("tests._nope:model", "cannot import model module"),
        ("seegaan.testing.cnns:missing", "has no attribute"),
        ("seegaan.testing.cnns:broken_factory", "model factory .* failed"),
        ("/no/such/net.pt", "does not exist"),
    ],
)
def test_unloadable_models_are_refused(spec, match):
    with pytest.raises(SeegaanError, match=match) as e:
        load_model(spec)
    assert "decoder" not in one_line(e)


def test_a_file_that_is_not_torchscript_is_refused(tmp_path):
    path = tmp_path / "state.pt"
    torch.save(_cnns.TinyCNN().state_dict(), path)
    with pytest.raises(SeegaanError, match="not a loadable TorchScript model") as e:
        load_model(path)
    one_line(e)


@pytest.mark.parametrize(
    "model, match",
    [("seegaan.testing.cnns:two_outputs", r"returned shape \(6, 2\)"), ("seegaan.testing.cnns:nan_model", "NaN")],
)
def test_wrong_shape_and_nan_are_refused(model, match):
    with pytest.raises(SeegaanError, match=match) as e:
        predict(make_cohort(n=6), model, name="p", decoder=DEC)
    one_line(e)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_round_trip(tmp_path):
    net = _cnns.TinyCNN(seed=4).eval()
    path = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.script(net), str(path))
    model = load_model(path)
    assert model.is_torchscript and model.sha256 in model.identity and str(path) in model.identity
    x = np.random.default_rng(0).uniform(-1, 1, (5, 1, 16, 16)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x))[:, 0].double().numpy()
    np.testing.assert_allclose(model(x), expected, rtol=1e-6)
    assert not model.fn.training


def test_module_identity_names_the_weights():
    a, b = load_model(_cnns.TinyCNN(seed=1)), load_model(_cnns.TinyCNN(seed=2))
    assert a.identity.split("weights sha256:")[1] != b.identity.split("weights sha256:")[1]


def test_input_size_and_scale_reach_the_model():
    seen = {}

    def probe(x):
        seen["shape"] = tuple(x.shape)
        return x.mean(dim=(1, 2, 3))

    black = -np.ones((2, 1, 8, 8), np.float32)
    assert load_model(probe, input_size="16")(black).tolist() == [-1.0, -1.0] and seen["shape"] == (2, 1, 16, 16)
    assert load_model(probe, input_size=(12, 10), input_scale="0-1")(black).tolist() == [0.0, 0.0]
    assert seen["shape"] == (2, 1, 12, 10)
    imagenet = load_model(probe, input_scale="imagenet")(black)
    assert seen["shape"] == (2, 3, 8, 8)
    np.testing.assert_allclose(imagenet, np.mean([-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]), rtol=1e-5)
    for bad in ("0", "a,b", (1, 2, 3)):
        with pytest.raises(SeegaanError, match="--input-size"):
            load_model(probe, input_size=bad)
    with pytest.raises(SeegaanError, match="unknown input scale"):
        load_model(probe, input_scale="255")


def test_predict_on_images_reads_each_image_by_id(tmp_path):
    c = make_cohort(n=12)
    rng = np.random.default_rng(1)
    truth = {}
    for i in c["image_id"].values[::-1]:  # written in another order than the cohort's
        img = rng.uniform(-0.9, 0.9, (8, 8)).astype(np.float32)
        img[0, 0], img[-1, -1] = -1.0, 1.0  # min-max scaling leaves it unchanged
        np.save(tmp_path / f"{i}.npy", img)
        truth[i] = float(img.mean())
    np.save(tmp_path / "extra_image.npy", np.eye(8, dtype=np.float32))  # ignored
    out = predict(c, _cnns.plain_mean, name="m", images=tmp_path, batch_size=5)
    np.testing.assert_allclose(out["m"].values, [truth[i] for i in c["image_id"].values], atol=1e-5)
    assert out["m"].attrs["input"] == "images"
    (tmp_path / "img0003.npy").unlink()
    (tmp_path / "img0007.npy").unlink()
    with pytest.raises(SeegaanError, match=r"2 of the cohort's 12 images are not in .*img0003, img0007") as e:
        predict(c, _cnns.plain_mean, name="m", images=tmp_path)
    one_line(e)


def test_bad_names_and_inputs_are_refused():
    c = make_cohort(n=6)
    for name, match in (("age", "already has"), ("w", "reserved"), ("heart rate", "heart_rate"), ("", "name")):
        with pytest.raises(SeegaanError, match=match):
            predict(c, _cnns.region_mean, name=name, decoder=DEC)
    with pytest.raises(SeegaanError, match="need a decoder"):
        predict(c, _cnns.region_mean, name="p")
    with pytest.raises(SeegaanError, match="not both"):
        predict(c, _cnns.region_mean, name="p", images=".", on="reconstruction", decoder=DEC)


# ---------------------------------------------------------------------------------------------- CLI
def run(*args):
    app = typer.Typer(cls=OneLineErrors)
    register(app)
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_predict_writes_the_cohort_and_refuses_an_existing_output(tmp_path):
    cohort = tmp_path / "c.nc"
    seegaan.save_cohort(make_cohort(n=20), cohort)
    out = tmp_path / "c2.nc"
    r = run(
        "predict",
        "--model",
        "seegaan.testing.cnns:region_mean",
        "--name",
        "pred",
        "--cohort",
        cohort,
        "--decoder",
        DEC,
        "--out",
        out,
    )
    assert r.exit_code == 0, r.output
    ds = seegaan.open_cohort(out)
    np.testing.assert_allclose(ds["pred"].values, region_mean_by_hand(ds["w"].values), rtol=1e-5, atol=1e-6)
    r = run(
        "predict",
        "--model",
        "seegaan.testing.cnns:region_mean",
        "--name",
        "pred2",
        "--cohort",
        cohort,
        "--decoder",
        DEC,
        "--out",
        out,
    )
    assert r.exit_code != 0 and "already exists" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run(
        "predict",
        "--model",
        "seegaan.testing.cnns:nan_model",
        "--name",
        "p",
        "--cohort",
        cohort,
        "--decoder",
        DEC,
        "--out",
        tmp_path / "c3.nc",
    )
    assert r.exit_code != 0 and "NaN" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c3.nc").exists()


def test_cli_predict_input_choices_are_one_line_errors(tmp_path):
    cohort = tmp_path / "c.nc"
    seegaan.save_cohort(make_cohort(n=6), cohort)
    for extra, match in (
        (("--images", tmp_path, "--on", "reconstruction"), "not both"),
        ((), "give both --cohort and --decoder"),
        (("--images", tmp_path / "none"), "does not exist or is not a folder"),
    ):
        r = run(
            "predict",
            "--model",
            "seegaan.testing.cnns:region_mean",
            "--name",
            "p",
            "--cohort",
            cohort,
            "--out",
            tmp_path / "o.nc",
            *extra,
        )
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.exit_code != 0 and len(lines) == 1 and match in lines[0], r.stderr
    assert not (tmp_path / "o.nc").exists()


def test_cli_predict_both_reports_the_gap_between_image_and_reconstruction(tmp_path):
    c = make_cohort(n=12)
    cohort = tmp_path / "c.nc"
    seegaan.save_cohort(c, cohort)
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for i in c["image_id"].values:
        img = rng.uniform(-0.9, 0.9, (8, 8)).astype(np.float32)
        img[0, 0], img[-1, -1] = -1.0, 1.0  # min-max scaling leaves it unchanged
        np.save(folder / f"{i}.npy", img)
    out = tmp_path / "both.nc"
    args = ["predict", "--model", "seegaan.testing.cnns:region_mean", "--name", "p", "--cohort", cohort]
    r = run(*args, "--decoder", DEC, "--images", folder, "--both", "--out", out)
    assert r.exit_code == 0, r.output
    ds = seegaan.open_cohort(out)
    np.testing.assert_allclose(ds["p_reconstruction"].values, region_mean_by_hand(ds["w"].values), rtol=1e-5, atol=1e-6)
    assert ds["p"].attrs["input"] == "images" and ds["p_reconstruction"].attrs["input"] == "reconstruction"
    gap = np.abs(ds["p_reconstruction"].values - ds["p"].values)
    assert f"mean {gap.mean():.4g}" in r.output
    r = run(*args, "--decoder", DEC, "--both", "--out", tmp_path / "x.nc")
    assert r.exit_code != 0 and "give --images" in r.output and not (tmp_path / "x.nc").exists()


def test_an_image_id_with_two_files_is_ambiguous(tmp_path):
    """``ID.png`` and ``ID.npy`` in one folder: which is the cohort's image cannot be known (issue #24)."""
    c = make_cohort(n=6)
    for i in c["image_id"].values:
        img = np.zeros((8, 8), np.float32)
        img[0, 0], img[-1, -1] = -1.0, 1.0
        np.save(tmp_path / f"{i}.npy", img)
    from PIL import Image

    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(tmp_path / "img0002.png")
    with pytest.raises(SeegaanError, match="'img0002' has two files") as e:
        predict(c, _cnns.plain_mean, name="m", images=tmp_path)
    one_line(e)
