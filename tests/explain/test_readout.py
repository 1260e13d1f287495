"""The CNN along any sequence: ``cnn_along`` and ``--model`` of ``interpolate`` and ``local``."""

import numpy as np
import pytest
import torch
import xarray as xr
from typer.testing import CliRunner

import seegaan
from seegaan.cli.stats import app
from seegaan.data.cohort import save_cohort
from seegaan.explain.predictions import cnn_along
from seegaan.testing import cnns as _cnns
from seegaan.testing.cohorts import make_cohort

DEC = "seegaan.testing.decoders:linear8"
MODEL = "seegaan.testing.cnns:region_mean"


@pytest.fixture(scope="module")
def cohort():
    return make_cohort(n=40, seed=3)


def _region_mean(images):
    return _cnns.region_mean(torch.from_numpy(np.asarray(images, np.float32))[:, None]).numpy().astype(np.float64)


def test_cnn_along_a_sequence_equals_the_model_on_the_decoded_frames(cohort):
    result = seegaan.sequence(seegaan.interpolate(cohort, feature="age", steps=4), DEC, n_perm=19, backend="numpy")
    along = cnn_along(result, MODEL)
    np.testing.assert_array_equal(along.model_prediction, _region_mean(result.images))
    ds = along.to_dataset()
    assert ds["model_prediction"].dims == ("step",) and ds.attrs["model"].startswith(MODEL)
    assert "CNN along the steps" in along.summary().as_text()
    np.testing.assert_array_equal(ds["p_value"].values, result.p_value)  # the test is untouched
    local = seegaan.local_sequence(cohort, DEC, image_id="img0001", feature="sex", n_perm=9, backend="numpy")
    np.testing.assert_array_equal(cnn_along(local, MODEL).model_prediction, _region_mean(local.images))
    with pytest.raises(seegaan.SeegaanError, match="batch_size must be a positive integer"):
        cnn_along(result, MODEL, batch_size=0)


def test_cli_model_along_interpolate_and_local(cohort, tmp_path):
    path = tmp_path / "cohort.nc"
    save_cohort(cohort, path)
    out = tmp_path / "seq.nc"
    common = ["--cohort", path, "--decoder", DEC, "--perm", 19, "--model", MODEL]
    r = CliRunner().invoke(app, [str(a) for a in ["interpolate", "--feature", "age", "--out", out, *common]])
    assert r.exit_code == 0, r.output
    with xr.open_dataset(out) as ds:
        np.testing.assert_allclose(ds["model_prediction"].values, _region_mean(ds["image"].values), rtol=0, atol=0)
    assert out.with_suffix(".png").is_file()
    local = tmp_path / "local.nc"
    args = ["local", "--image", "img0001", "--feature", "sex", "--out", local, "--no-plot", *common]
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    with xr.open_dataset(local) as ds:
        np.testing.assert_array_equal(ds["model_prediction"].values, _region_mean(ds["image"].values))
    # a model that cannot run is refused before any work, in one line, and nothing is written
    bad = tmp_path / "bad.nc"
    args = ["interpolate", "--feature", "age", "--out", bad, *common[:-1], "seegaan.testing.cnns:nan_model"]
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code != 0 and "NaN" in r.output and not bad.exists()
