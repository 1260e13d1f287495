"""An output never lands on an input (issue #24, items 1 and 2): figures are not written into a folder of
radiographs that a command reads, and the API's ``plot(path)`` refuses an existing file and a name that is
not a figure's."""

import numpy as np
import pytest
from typer.testing import CliRunner

import seegaan
from seegaan._internal.io import IMAGE_SUFFIXES, check_output_path
from seegaan.cli.app import app as model_app
from seegaan.cli.stats import app as stats_app
from seegaan.data.images import IMAGE_EXTENSIONS
from seegaan.phantom import write_phantom
from seegaan.testing.cohorts import make_cohort

DEC = "seegaan.testing.decoders:linear8"


def one_line(r):
    assert r.exit_code != 0
    lines = [line for line in r.output.strip().splitlines() if not line.startswith("note:")]
    assert len(lines) == 1, r.output
    return lines[0]


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return write_phantom(tmp_path_factory.mktemp("kept") / "phantom", n=24, size=32, seed=3, marginal=False)


def test_the_refused_suffixes_are_what_a_folder_is_scanned_for():
    assert set(IMAGE_SUFFIXES) == set(IMAGE_EXTENSIONS)


def test_no_image_file_inside_an_input_folder(tmp_path):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    for name in ("new.png", "sub/new.PNG", "x.npy", "sub/../y.jpg"):
        with pytest.raises(seegaan.SeegaanError, match="a folder this command reads images from") as e:
            check_output_path(folder / name, overwrite=True, inputs=[folder])
        assert "\n" not in str(e.value)
    # a netCDF file or a figure beside the folder is fine
    assert check_output_path(folder / "cohort.nc", overwrite=False, inputs=[folder])
    assert check_output_path(tmp_path / "figure.png", overwrite=False, inputs=[folder])


def test_cli_figures_never_go_into_the_images_folder(phantom, tmp_path):
    images = phantom / "images"
    before = sorted(p.name for p in images.iterdir())
    table = phantom / "clinical.csv"
    pixel = ["pixel-test", "--images", images, "--table", table, "--feature", "ahf", "--out", tmp_path / "p.nc"]
    r = CliRunner().invoke(stats_app, [str(a) for a in [*pixel, "--plot", images / "figure.png", "--overwrite"]])
    assert "a folder this command reads images from" in one_line(r)
    existing = images / before[0]
    r = CliRunner().invoke(stats_app, [str(a) for a in [*pixel, "--plot", existing, "--overwrite"]])
    assert "a folder this command reads images from" in one_line(r)
    demo_ckpt = seegaan.demo.decoder_path()
    r = CliRunner().invoke(
        model_app,
        [str(a) for a in ["reconstruct", "--checkpoint", demo_ckpt, "--images", images, "--out", images / "r.png"]],
    )
    assert "a folder this command reads images from" in one_line(r)
    r = CliRunner().invoke(
        model_app,
        [str(a) for a in ["evaluate", "--checkpoint", demo_ckpt, "--images", images, "--panel", images / "z.png"]],
    )
    assert "a folder this command reads images from" in one_line(r)
    assert sorted(p.name for p in images.iterdir()) == before  # nothing written, nothing replaced


def test_cli_local_and_explain_figures_never_go_into_the_images_folder(tmp_path):
    cohort = make_cohort(n=20, seed=4)
    path = tmp_path / "c.nc"
    seegaan.save_cohort(cohort, path)
    images = tmp_path / "images"
    images.mkdir()
    for i in cohort["image_id"].values:
        np.save(images / f"{i}.npy", np.zeros((8, 8), np.float32))
    common = ["--cohort", path, "--decoder", DEC, "--images", images, "--image", "img0001"]
    r = CliRunner().invoke(
        stats_app,
        [
            str(a)
            for a in ["local", *common, "--feature", "sex", "--out", tmp_path / "l.nc", "--plot", images / "l.png"]
        ],
    )
    assert "a folder this command reads images from" in one_line(r)
    args = ["explain", *common, "--model", "seegaan.testing.cnns:region_mean", "--target", 0.5]
    r = CliRunner().invoke(stats_app, [str(a) for a in [*args, "--out", tmp_path / "e.nc", "--plot", images / "e.png"]])
    assert "a folder this command reads images from" in one_line(r)


def test_api_plot_refuses_an_existing_file_and_a_name_that_is_not_a_figure(tmp_path):
    result = seegaan.sequence(seegaan.interpolate(make_cohort(n=30, seed=2), feature="age", steps=3), DEC, n_perm=9)
    nc = tmp_path / "s.nc"
    result.save(nc)
    before = nc.read_bytes()
    ds = seegaan.open_sequence(nc)
    for target in (nc, tmp_path / "model.pt", tmp_path / "cohort.nc"):
        with pytest.raises(seegaan.SeegaanError, match="give a .png or .pdf or .svg path"):
            ds.seegaan.plot(target)
        with pytest.raises(seegaan.SeegaanError, match="give a .png or .pdf or .svg path"):
            result.plot(target)
    assert nc.read_bytes() == before
    png = tmp_path / "s.png"
    result.plot(png)
    with pytest.raises(seegaan.SeegaanError, match="already exists"):
        result.plot(png)
    result.plot(png, overwrite=True)  # asked for
    local = seegaan.local_sequence(make_cohort(n=30, seed=2), DEC, image_id="img0001", feature="sex", n_perm=9)
    with pytest.raises(seegaan.SeegaanError, match="already exists"):
        local.plot(png)
