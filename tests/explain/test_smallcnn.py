"""The small CNN a newcomer can use: ``seegaan-stats train-cnn``, its file, the demo CNN, Grad-CAM notices."""

import json

import numpy as np
import pytest
import torch
import xarray as xr
from typer.testing import CliRunner

import seegaan
from seegaan import demo
from seegaan.cli.stats import app
from seegaan.explain.cnn import load_model
from seegaan.explain.counterfactual import explain
from seegaan.explain.smallcnn import SmallCNN, is_cnn_file, load_cnn, predict_array
from seegaan.phantom import write_phantom


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ph") / "phantom"
    write_phantom(folder, n=160, size=16, seed=5, marginal=False)
    return folder


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_train_cnn_writes_a_file_explain_loads_and_grad_cam_works(phantom, tmp_path):
    out = tmp_path / "cnn.pt"
    args = ["train-cnn", "--images", phantom / "images", "--table", phantom / "clinical.csv", "--target", "bnpp"]
    args += ["--transform", "log", "--size", 16, "--epochs", 2, "--out", out]
    r = run(*args)
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "val" in r.output and is_cnn_file(out)
    net, meta = load_cnn(out)
    assert isinstance(net, SmallCNN) and meta["target"] == "log bnpp" and meta["task"] == "regression"
    assert set(meta["metrics"]) >= {"train", "val"} and meta["seed"] == 0
    # the same seed gives the same weights
    again = tmp_path / "again.pt"
    r = run(*args[:-1], again)
    assert r.exit_code == 0, r.output
    for (k, a), (_, b) in zip(net.state_dict().items(), load_cnn(again)[0].state_dict().items()):
        assert torch.equal(a, b), k
    # load_model gives a plain module (not TorchScript): Grad-CAM, IG and gradients work
    model = load_model(out)
    assert isinstance(model.module, SmallCNN) and not model.is_torchscript
    x = np.random.default_rng(0).uniform(-1, 1, (3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(model(x[:, None]), predict_array(net, x), rtol=1e-6)
    pytest.importorskip("captum")
    from seegaan.explain.attribution import attributions

    maps = attributions(model, x, methods=["vg", "gradcam", "ig"])
    assert {k: v.shape for k, v in maps.items()} == {"vg": (3, 16, 16), "gradcam": (3, 16, 16), "ig": (3, 16, 16)}


def test_train_cnn_binary_target_and_bad_input(phantom, tmp_path):
    out = tmp_path / "ahf.pt"
    base = ["train-cnn", "--images", phantom / "images", "--table", phantom / "clinical.csv", "--size", 16]
    r = run(*base, "--target", "ahf", "--epochs", 1, "--out", out)
    assert r.exit_code == 0, r.output
    assert load_cnn(out)[1]["target"] == "logit of ahf = True" and "auc" in r.output
    cases = [
        (["--target", "nope", "--out", tmp_path / "a.pt"], "the table has no column 'nope'"),
        (["--target", "sex", "--task", "regression", "--out", tmp_path / "b.pt"], "'sex' is not numeric"),
        (["--target", "manufacturer", "--out", tmp_path / "c.pt"], "name the positive one with --positive"),
        (["--target", "bnpp", "--size", 20, "--out", tmp_path / "d.pt"], "--size must be a multiple of 8"),
        (["--target", "bnpp", "--out", out], "exists"),
        (["--target", "bnpp", "--out", tmp_path / "e.nc"], ".pt"),
    ]
    for extra, match in cases:
        r = run(*base, *extra)
        assert r.exit_code != 0 and match in r.output, (extra, r.output)
        assert len(r.output.strip().splitlines()) == 1, r.output
    assert not any((tmp_path / f"{n}.pt").exists() for n in "abcd")
    # a file that is not a seegaan CNN is refused in one line
    bad = tmp_path / "bad.pt"
    torch.save({"weights": 1}, bad)
    with pytest.raises(seegaan.SeegaanError, match="not a seegaan CNN file"):
        load_cnn(bad)


def test_the_demo_cnn_explains_the_demo_with_no_other_file(tmp_path):
    """``seegaan-stats explain --image ID --target T`` on the bundled demo: the demo CNN is the default."""
    net, meta = load_cnn(demo.cnn_path())
    assert meta["target"] == "log bnpp" and meta["metrics"]["test"]["r2"] > 0.9
    out = tmp_path / "cf.nc"
    r = run("explain", "--image", "ph00003_0", "--target", 7.0, "--out", out, "--direction", "gradient")
    assert r.exit_code == 0, r.output
    with xr.open_dataset(out) as ds:
        assert "phantom_cnn.pt" in ds.attrs["model"] and abs(ds.attrs["prediction_star"] - 7.0) <= 0.01
    cohort = seegaan.demo.cohort_path()
    r = run("explain", "--image", "ph00003_0", "--target", 7.0, "--out", tmp_path / "x.nc", "--cohort", cohort)
    assert r.exit_code != 0 and "give --model" in r.output


class NegativeEvidence(torch.nn.Module):
    """Positive activations at its only conv layer and a negative read-out: Grad-CAM (ReLU) is all zero."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(0.5)
            self.conv.bias.fill_(2.0)

    def forward(self, x):
        return -self.conv(x).mean(dim=(1, 2, 3))


def test_an_all_zero_grad_cam_gets_a_notice(tmp_path):
    pytest.importorskip("captum")
    from seegaan.testing.cohorts import make_cohort

    cohort = make_cohort(n=30, seed=1)
    dec = "seegaan.testing.decoders:linear8"
    model = NegativeEvidence()
    w = cohort["w"].values
    p0 = float(load_model(model)(seegaan.load_decoder(dec)(w[:1])[:, None])[0])
    r = explain(
        cohort,
        dec,
        model,
        image_id="img0000",
        target=p0 + 0.05,
        feature="sex",
        attributions=["gradcam", "vg"],
        lambda_range=(-6, 6),
    )
    assert not np.any(r.attributions["gradcam"]) and r.attrs["attribution_notes"] == "gradcam: all zero"
    assert "notice: gradcam: all zero" in r.summary().as_text()
    fig = r.plot()
    assert any("all zero" in ax.get_title() for ax in fig.axes)
    json.dumps(r.attrs)  # plain values only


def test_cases_on_the_demo_with_the_shipped_cnn(tmp_path):
    """``seegaan-stats cases``: TP/FP/FN/TN of the demo CNN (BNPP > 400 pg/mL, on the log scale), one
    held-out image each (seeded), a local sequence with the CNN's readout for TP/TN, a counterfactual to the
    truth for FP/FN, and the three attribution maps for every case."""
    pytest.importorskip("captum")
    import pandas as pd

    out = tmp_path / "cases"
    args = ["cases", "--truth", "bnpp", "--truth-transform", "log", "--threshold", 5.99, "--out-dir", out]
    r = run(*args, "--perm", 19)
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out / "cases.csv")
    assert list(table["case"]) == ["TP", "FP", "FN", "TN"]
    everything = pd.read_csv(out / "all_cases.csv")
    for _, row in table.iterrows():
        assert (out / f"{row['case']}.nc").is_file() and (out / f"{row['case']}_maps.png").is_file()
        assert row["split"] in ("val", "test")
        mine = everything.loc[everything["image_id"] == row["image_id"]].iloc[0]
        assert mine["case"] == row["case"]
        assert (mine["prediction"] > 5.99) == (row["case"] in ("TP", "FP"))
        assert (mine["truth"] > 5.99) == (row["case"] in ("TP", "FN"))
    with xr.open_dataset(out / "FN.nc") as ds:  # solved to the truth
        assert abs(ds.attrs["prediction_star"] - table.set_index("case").loc["FN", "truth"]) <= 0.01
    with xr.open_dataset(out / "TP.nc") as ds:
        assert "model_prediction" in ds and ds.attrs["n_perm"] == 19
    # the same seed draws the same images; an existing folder is refused
    again = run(*args[:-1], tmp_path / "again", "--perm", 19)
    assert again.exit_code == 0
    assert pd.read_csv(tmp_path / "again" / "cases.csv")["image_id"].tolist() == table["image_id"].tolist()
    r = run(*args)
    assert r.exit_code != 0 and "already exists" in r.output
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
