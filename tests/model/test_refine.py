"""``seegaan encode --refine N``: latents refined by optimisation from E(x), on the bundled demo checkpoint."""

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

import seegaan
from seegaan import demo
from seegaan.cli.app import app
from seegaan.model.tasks import encode_images
from seegaan.phantom import write_phantom


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    folder = tmp_path_factory.mktemp("refine") / "phantom"
    write_phantom(folder, n=6, size=64, seed=11, marginal=False)
    return folder


def test_refine_lowers_the_reconstruction_error_and_keeps_its_bits(phantom, one_torch_thread):
    args = dict(table=phantom / "clinical.csv")
    plain = encode_images(demo.decoder_path(), phantom / "images", **args)
    refined = encode_images(demo.decoder_path(), phantom / "images", refine=8, **args)
    again = encode_images(demo.decoder_path(), phantom / "images", refine=8, **args)
    np.testing.assert_array_equal(refined["w"].values, again["w"].values)  # the same inputs, the same bits
    a = refined.attrs
    assert a["refine_steps"] == 8 and a["refine_mse_after"] < a["refine_mse_before"]
    # measured independently: the decoded refined latents are closer to the images than E(x)'s
    decoder = seegaan.load_decoder(demo.decoder_path())
    images = seegaan.data.load_dataset(phantom / "images", phantom / "clinical.csv", size=64).array()[:, 0]
    err = lambda c: ((decoder(c["w"].values) - images) ** 2).mean(axis=(1, 2))  # noqa: E731
    assert np.all(err(refined) <= err(plain) + 1e-7) and err(refined).mean() < err(plain).mean()
    assert err(plain).mean() == pytest.approx(a["refine_mse_before"], rel=1e-4)
    assert "refine_steps" not in plain.attrs


def test_cli_encode_refine(phantom, tmp_path, one_torch_thread):
    out = tmp_path / "cohort.nc"
    args = ["encode", "--checkpoint", demo.decoder_path(), "--images", phantom / "images"]
    args += ["--table", phantom / "clinical.csv", "--out", out]
    r = CliRunner().invoke(app, [str(a) for a in [*args, "--refine", 3]])
    assert r.exit_code == 0, r.output
    assert "refined 6 latents by 3 steps" in r.output
    with xr.open_dataset(out) as ds:
        assert ds.attrs["refine_steps"] == 3
    bad = CliRunner().invoke(app, [str(a) for a in [*args[:-1], tmp_path / "x.nc", "--refine", -1]])
    assert bad.exit_code != 0 and "--refine must be a whole number" in bad.output
    assert not (tmp_path / "x.nc").exists()
