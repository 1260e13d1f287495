import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from seegaan.cli.stats import app
from seegaan.data.cohort import save_cohort
from seegaan.testing.cohorts import make_cohort

DEC = "seegaan.testing.decoders:linear8"


@pytest.fixture
def cohort_file(tmp_path):
    n = 40
    ds = make_cohort(
        n=n,
        effect=1.0,
        extra={
            "site": ["a"] * n,
            "few": [1.0, 2.0] * (n // 2),
            "lab": [np.nan] * 4 + list(np.linspace(1, 9, n - 4)),
            "grade": list("abcd") * (n // 4),
        },
    )
    path = tmp_path / "cohort.nc"
    save_cohort(ds, path)
    return path


def run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result


def one_line_error(result):
    assert result.exit_code != 0, result.output
    # notes (e.g. the GAM's effective degrees of freedom) are information, not part of the error
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("note: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_interpolate_writes_dataset_and_figure(cohort_file, tmp_path):
    out = tmp_path / "age.nc"
    r = run(
        "interpolate",
        "--feature",
        "age",
        "--cohort",
        cohort_file,
        "--decoder",
        DEC,
        "--perm",
        50,
        "--steps",
        4,
        "--seed",
        7,
        "--out",
        out,
    )
    assert r.exit_code == 0, r.output
    assert out.exists() and out.with_suffix(".png").exists()
    ds = xr.open_dataset(out)
    for name in ("w", "image", "difference", "p_value", "p_adjusted", "significant", "significant_difference"):
        assert name in ds
    assert ds["w"].dims == ("step", "latent") and ds["image"].dims == ("step", "y", "x")
    assert ds.attrs["seed"] == "7" and ds.attrs["n_perm"] == 50 and ds.attrs["correction"] == "maxt"
    assert "seegaan-stats" in ds.attrs["command_line"] and ds.attrs["cohort_hash"].startswith("sha256:")
    assert ds.attrs["smallest_p"] == pytest.approx(1 / 51)
    assert "significant pixels" in r.stdout
    ds.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["age.nc", "age.png", "cohort.nc"]  # no temp files


def test_missing_values_reported(cohort_file, tmp_path):
    r = run(
        "interpolate",
        "--feature",
        "lab",
        "--method",
        "linear",
        "--cohort",
        cohort_file,
        "--decoder",
        DEC,
        "--perm",
        10,
        "--correction",
        "none",
        "--out",
        tmp_path / "lab.nc",
        "--no-plot",
    )
    assert r.exit_code == 0, r.output
    assert "4 image(s) without lab" in r.stderr
    assert xr.open_dataset(tmp_path / "lab.nc").attrs["n_missing"] == 4


def test_same_seed_same_file_contents(cohort_file, tmp_path):
    args = [
        "interpolate",
        "--feature",
        "sex",
        "--cohort",
        cohort_file,
        "--decoder",
        DEC,
        "--perm",
        30,
        "--no-plot",
        "--steps",
        3,
    ]
    run(*args, "--out", tmp_path / "a.nc", "--batch-size", 4)
    run(*args, "--out", tmp_path / "b.nc", "--batch-size", 30)
    a, b = xr.open_dataset(tmp_path / "a.nc"), xr.open_dataset(tmp_path / "b.nc")
    for name in ("p_value", "p_adjusted", "significant", "image"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--feature", "nope"], "available features"),
        (["--feature", "site"], "fewer than two groups"),
        (["--feature", "sex", "--levels", "F,Q"], "level 'Q'"),
        (["--feature", "few", "--method", "gam"], "--method linear"),
        (["--feature", "age", "--steps", "1"], "at least 2"),
        (["--feature", "age", "--perm", "-5"], "--perm"),
        (["--feature", "age", "--correction", "bogus"], "--correction"),
        (["--feature", "age", "--method", "spline"], "--method"),
        (["--feature", "age", "--gam-lam", "big"], "--gam-lam"),
        (["--feature", "age", "--alpha", "2"], "alpha"),
    ],
)
def test_bad_options_one_line_and_no_output(cohort_file, tmp_path, args, message):
    out = tmp_path / "o.nc"
    r = run("interpolate", "--cohort", cohort_file, "--decoder", DEC, "--perm", 5, "--out", out, *args)
    line = one_line_error(r)
    assert message in line
    assert not out.exists() and not out.with_suffix(".png").exists()


def test_bad_cohort_files(tmp_path):
    out = tmp_path / "o.nc"
    line = one_line_error(
        run("interpolate", "--feature", "age", "--cohort", tmp_path / "none.nc", "--decoder", DEC, "--out", out)
    )
    assert "does not exist" in line
    corrupt = tmp_path / "corrupt.nc"
    corrupt.write_bytes(b"\x89HDF\r\n garbage")
    assert "not a readable" in one_line_error(
        run("interpolate", "--feature", "age", "--cohort", corrupt, "--decoder", DEC, "--out", out)
    )
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"v": ("x", np.arange(3.0))}).to_netcdf(foreign)
    assert "not a latent cohort" in one_line_error(
        run("interpolate", "--feature", "age", "--cohort", foreign, "--decoder", DEC, "--out", out)
    )
    ds = make_cohort(n=10)
    ds["w"].values[2, 1] = np.inf
    bad = tmp_path / "inf.nc"
    ds.to_netcdf(bad)
    assert "NaN or inf" in one_line_error(
        run("interpolate", "--feature", "age", "--cohort", bad, "--decoder", DEC, "--out", out)
    )
    assert not out.exists()


@pytest.mark.parametrize(
    "decoder, message",
    [
        ("no_such_module_xyz:decode", "cannot import"),
        ("seegaan.testing.decoders:missing", "no attribute"),
        ("seegaan.testing.decoders:wrong_shape", "returned shape"),
        ("seegaan.testing.decoders:nan_images", "NaN or inf"),
        ("seegaan.testing.decoders:linear16", "failed on latents"),
        ("/no/such/checkpoint.pt", "does not exist"),
    ],
)
def test_bad_decoders(cohort_file, tmp_path, decoder, message):
    out = tmp_path / "o.nc"
    r = run("interpolate", "--feature", "age", "--cohort", cohort_file, "--decoder", decoder, "--perm", 5, "--out", out)
    assert message in one_line_error(r)
    assert not out.exists()


def test_existing_output_left_untouched(cohort_file, tmp_path):
    out = tmp_path / "o.nc"
    out.write_text("precious")
    r = run("interpolate", "--feature", "age", "--cohort", cohort_file, "--decoder", DEC, "--perm", 5, "--out", out)
    assert "--overwrite" in one_line_error(r)
    assert out.read_text() == "precious"
    r = run(
        "interpolate",
        "--feature",
        "age",
        "--cohort",
        cohort_file,
        "--decoder",
        DEC,
        "--perm",
        5,
        "--out",
        out,
        "--overwrite",
        "--no-plot",
    )
    assert r.exit_code == 0 and xr.open_dataset(out).attrs["feature"] == "age"


def test_ctrl_c_leaves_no_partial_file(cohort_file, tmp_path):
    out = tmp_path / "o.nc"
    r = run(
        "interpolate",
        "--feature",
        "age",
        "--cohort",
        cohort_file,
        "--decoder",
        "seegaan.testing.decoders:interrupt_after_5",
        "--perm",
        50,
        "--out",
        out,
    )
    assert r.exit_code != 0
    assert "interrupted" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort.nc"]


def test_cohort_and_decoder_go_together(cohort_file, tmp_path):
    assert "neither" in one_line_error(run("interpolate", "--feature", "age", "--cohort", cohort_file))


def test_inspect(cohort_file):
    r = run("inspect", cohort_file)
    assert r.exit_code == 0
    assert "Latent cohort" in r.stdout and "lab" in r.stdout and "numeric" in r.stdout
    assert "does not exist" in one_line_error(run("inspect", "/nope.nc"))


@pytest.mark.parametrize("feature", ["bnpp", "sex", "manufacturer"])
def test_bundled_demo_runs_without_cohort_or_decoder(tmp_path, feature):
    pytest.importorskip("torch")
    out = tmp_path / f"{feature}.nc"
    r = run("interpolate", "--feature", feature, "--perm", 20, "--steps", 4, "--out", out)
    assert r.exit_code == 0, r.output
    ds = xr.open_dataset(out)
    assert ds.attrs["decoder"].split()[0].endswith("phantom_model.pt")
    assert ds["image"].shape == (4, 64, 64) and out.with_suffix(".png").exists()
    if feature == "manufacturer":  # three vendors: the two most frequent are compared, and the run says so
        assert ds.attrs["levels"] == "vendor_a,vendor_b" and "choose others with --levels" in r.stderr
    assert "using the bundled demo" in r.stderr  # the run says what it analysed
    ds.close()


def test_summary_names_the_direction_and_group_sizes(cohort_file, tmp_path):
    import seegaan

    codes = seegaan.open_cohort(cohort_file)["sex"].values
    r = run(
        "interpolate",
        "--feature",
        "sex",
        "--levels",
        "F,M",
        "--cohort",
        cohort_file,
        "--decoder",
        DEC,
        "--perm",
        20,
        "--out",
        tmp_path / "sex.nc",
        "--no-plot",
    )
    assert r.exit_code == 0, r.output
    assert f"sex: F ({int((codes == 'F').sum())}) -> M ({int((codes == 'M').sum())})" in r.stdout
    assert "using the bundled demo" not in r.stderr
    r = run(
        "interpolate",
        "--feature",
        "age",
        "--method",
        "linear",
        "--steps",
        3,
        "--grid",
        "30,50,70",
        "--cohort",
        cohort_file,
        "--decoder",
        DEC,
        "--perm",
        20,
        "--out",
        tmp_path / "age.nc",
        "--no-plot",
    )
    assert r.exit_code == 0, r.output
    assert "age from 30 to 70 in 3 steps, 40 images" in r.stdout


def test_decoding_with_another_checkpoint_is_a_warning(tmp_path):
    pytest.importorskip("torch")
    import seegaan
    from seegaan import demo

    ds = seegaan.open_cohort(demo.cohort_path()).isel(image=slice(0, 300))
    ds.attrs["model"] = "elsewhere/model.pt sha256:" + "0" * 64
    path = tmp_path / "other.nc"
    seegaan.save_cohort(ds, path)
    r = run(
        "interpolate",
        "--feature",
        "sex",
        "--cohort",
        path,
        "--decoder",
        demo.decoder_path(),
        "--perm",
        20,
        "--steps",
        3,
        "--out",
        tmp_path / "sex.nc",
        "--no-plot",
    )
    assert r.exit_code == 0, r.output
    warning = [ln for ln in r.stderr.splitlines() if "different checkpoints" in ln]
    assert len(warning) == 1 and "elsewhere/model.pt" in warning[0] and "phantom_model.pt" in warning[0]
    out = xr.open_dataset(tmp_path / "sex.nc")
    assert "different checkpoints" in out.attrs["warnings"]
    out.close()


def test_bundled_demo_marker_free_mask(tmp_path):
    pytest.importorskip("torch")
    from seegaan import demo
    from seegaan._internal.errors import SeegaanError

    mask = np.load(demo.truth_path())
    assert mask.shape == (64, 64) and mask.dtype == bool and 0.9 < mask.mean() < 1.0
    assert demo.truth_path("marginal_sex_mask.npy").is_file()
    with pytest.raises(SeegaanError, match="not installed"):
        demo.truth_path("nope.npy")
    out = tmp_path / "bnpp.nc"
    r = run(
        "interpolate",
        "--feature",
        "bnpp",
        "--perm",
        20,
        "--steps",
        3,
        "--correction",
        "maxd",
        "--mask",
        demo.truth_path(),
        "--out",
        out,
        "--no-plot",
    )
    assert r.exit_code == 0, r.output
    with xr.open_dataset(out) as ds:
        assert ds.attrs["mask_pixels"] == int(mask.sum())
        assert not ds["significant"].values[:, ~mask].any()


def test_mask_option(cohort_file, tmp_path):
    from PIL import Image

    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 255
    Image.fromarray(mask).save(tmp_path / "roi.png")
    out = tmp_path / "age.nc"
    r = run(
        "interpolate",
        "--feature",
        "age",
        "--cohort",
        cohort_file,
        "--decoder",
        DEC,
        "--perm",
        30,
        "--steps",
        3,
        "--mask",
        tmp_path / "roi.png",
        "--out",
        out,
        "--no-plot",
    )
    assert r.exit_code == 0, r.output
    assert "16 of 64 pixels tested" in r.output
    ds = xr.open_dataset(out)
    assert ds.attrs["mask_pixels"] == 16
    assert not ds["significant"].values[:, mask == 0].any()
    ds.close()
    np.save(tmp_path / "small.npy", np.ones((4, 4)))
    bad = run(
        "interpolate",
        "--feature",
        "age",
        "--cohort",
        cohort_file,
        "--decoder",
        DEC,
        "--perm",
        30,
        "--mask",
        tmp_path / "small.npy",
        "--out",
        tmp_path / "x.nc",
    )
    assert "decoded images are 8x8" in one_line_error(bad)
    assert not (tmp_path / "x.nc").exists()
    missing = run(
        "interpolate",
        "--feature",
        "age",
        "--cohort",
        cohort_file,
        "--decoder",
        DEC,
        "--mask",
        tmp_path / "nope.png",
        "--out",
        tmp_path / "y.nc",
    )
    assert "does not exist" in one_line_error(missing)


def test_sd_offset_option(cohort_file, tmp_path):
    outs = {}
    for value in (None, "median", "p75", "0.02"):
        out = tmp_path / f"age_{value}.nc"
        extra = [] if value is None else ["--sd-offset", value]
        r = run(
            "interpolate",
            "--feature",
            "age",
            "--cohort",
            cohort_file,
            "--decoder",
            DEC,
            "--perm",
            40,
            "--steps",
            3,
            "--out",
            out,
            "--no-plot",
            *extra,
        )
        assert r.exit_code == 0, r.output
        assert "SD offset s0" in r.output
        with xr.open_dataset(out) as ds:
            outs[value] = (ds.attrs["sd_offset"], ds.attrs["sd_offset_value"], ds["p_adjusted"].values)
    assert outs[None][:2] == ("0", 0.0)  # plain max-T unless asked
    assert outs["median"][0] == "median" and outs["median"][1] > 0
    assert outs["p75"][0] == "p75" and outs["p75"][1] >= outs["median"][1]
    assert outs["0.02"][:2] == ("0.02", 0.02)
    assert not np.array_equal(outs["median"][2], outs[None][2])  # s0 changes the adjusted p-values
    for bad, message in (("-1", "finite number >= 0"), ("p200", "p0 to p100"), ("lots", "give a number")):
        r = run(
            "interpolate",
            "--feature",
            "age",
            "--cohort",
            cohort_file,
            "--decoder",
            DEC,
            "--perm",
            40,
            "--sd-offset",
            bad,
            "--out",
            tmp_path / "bad.nc",
        )
        assert message in one_line_error(r)
        assert not (tmp_path / "bad.nc").exists()
    r = run(
        "interpolate",
        "--feature",
        "age",
        "--cohort",
        cohort_file,
        "--decoder",
        DEC,
        "--perm",
        40,
        "--correction",
        "tfce",
        "--sd-offset",
        "0",
        "--out",
        tmp_path / "bad.nc",
    )
    assert "maxt only" in one_line_error(r)


def test_min_change_option(cohort_file, tmp_path):
    common = [
        "interpolate",
        "--feature",
        "age",
        "--cohort",
        cohort_file,
        "--decoder",
        DEC,
        "--perm",
        40,
        "--steps",
        3,
        "--no-plot",
    ]
    plain = tmp_path / "plain.nc"
    assert run(*common, "--out", plain).exit_code == 0
    shrunk = tmp_path / "shrunk.nc"
    r = run(*common, "--out", shrunk, "--min-change", "0.05")
    assert r.exit_code == 0, r.output
    assert "minimum change" in r.output
    with xr.open_dataset(plain) as a, xr.open_dataset(shrunk) as b:
        assert a.attrs["min_change"] == 0.0 and b.attrs["min_change"] == 0.05
        assert not (b["significant"].values & ~a["significant"].values).any()
        assert not b["significant"].values[np.abs(b["difference"].values) <= 0.05].any()
    for bad, message in (("-1", "finite number >= 0"),):
        r = run(*common, "--min-change", bad, "--out", tmp_path / "bad.nc")
        assert message in one_line_error(r)
        assert not (tmp_path / "bad.nc").exists()
    r = run(*common, "--correction", "cluster", "--min-change", "0.1", "--out", tmp_path / "bad.nc")
    assert "maxt or maxd only" in one_line_error(r)


def test_outputs_checked_before_any_work(cohort_file, tmp_path, monkeypatch):
    import seegaan.sequences

    def no_work(*a, **k):
        raise AssertionError("sequence() ran before the outputs were checked")

    monkeypatch.setattr(seegaan.sequences, "sequence", no_work)
    model = tmp_path / "model.pt"
    model.write_bytes(b"not really a model")
    common = ["interpolate", "--feature", "sex", "--cohort", cohort_file, "--decoder", DEC, "--perm", 5]
    before = cohort_file.read_bytes()
    cases = [
        (["--out", cohort_file, "--overwrite"], "input"),
        (["--out", tmp_path / "x.png"], ".nc"),
        (["--out", tmp_path / "a.nc", "--plot", cohort_file, "--overwrite"], ".png"),
        (["--out", tmp_path / "a.nc", "--plot", tmp_path / "a.nc"], ".png"),
    ]
    for args, message in cases:
        line = one_line_error(run(*common, *args))
        assert message in line, line
    r = run(
        "interpolate", "--feature", "sex", "--cohort", cohort_file, "--decoder", model, "--out", model, "--overwrite"
    )
    assert one_line_error(r)
    assert model.read_bytes() == b"not really a model"
    assert cohort_file.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort.nc", "model.pt"]


def test_plot_may_not_be_the_netcdf_output(cohort_file, tmp_path):
    out = tmp_path / "a.svg.nc"
    r = run(
        "interpolate",
        "--feature",
        "sex",
        "--cohort",
        cohort_file,
        "--decoder",
        DEC,
        "--perm",
        5,
        "--out",
        tmp_path / "b.nc",
        "--plot",
        tmp_path / "b.nc",
    )
    assert one_line_error(r)
    assert not out.exists() and not (tmp_path / "b.nc").exists()


def test_too_many_permutations_refused_before_drawing(cohort_file, tmp_path, monkeypatch):
    import seegaan.sequences

    def no_draw(*a, **k):
        raise AssertionError("permutations drawn")

    monkeypatch.setattr(seegaan.sequences, "draw_permutations", no_draw)
    r = run(
        "interpolate",
        "--feature",
        "sex",
        "--cohort",
        cohort_file,
        "--decoder",
        DEC,
        "--perm",
        1_000_000_000,
        "--out",
        tmp_path / "big.nc",
    )
    line = one_line_error(r)
    assert "1000000000 permutations of 40 images need" in line and "GiB" in line and "fewer permutations" in line
    assert not (tmp_path / "big.nc").exists()


def test_nan_in_a_mask_is_refused(cohort_file, tmp_path):
    mask = np.ones((8, 8))
    mask[3, 3] = np.nan
    np.save(tmp_path / "nan.npy", mask)
    r = run(
        "interpolate",
        "--feature",
        "sex",
        "--cohort",
        cohort_file,
        "--decoder",
        DEC,
        "--perm",
        5,
        "--mask",
        tmp_path / "nan.npy",
        "--out",
        tmp_path / "m.nc",
    )
    assert "1 NaN or infinite value(s)" in one_line_error(r)
    assert not (tmp_path / "m.nc").exists()


def test_workers_option_gives_the_single_process_result(cohort_file, tmp_path):
    pytest.importorskip("distributed")
    assert "--workers must be" in one_line_error(
        run(
            "interpolate",
            "--feature",
            "sex",
            "--cohort",
            cohort_file,
            "--decoder",
            DEC,
            "--perm",
            20,
            "--workers",
            0,
            "--out",
            tmp_path / "w0.nc",
            "--no-plot",
        )
    )
    assert not (tmp_path / "w0.nc").exists()
    common = [
        "interpolate",
        "--feature",
        "age",
        "--method",
        "linear",
        "--cohort",
        cohort_file,
        "--decoder",
        DEC,
        "--perm",
        40,
        "--steps",
        3,
        "--no-plot",
    ]
    r1 = run(*common, "--out", tmp_path / "one.nc")
    r2 = run(*common, "--workers", 1, "--out", tmp_path / "dask.nc")
    assert r1.exit_code == 0 and r2.exit_code == 0, r2.output
    a, b = xr.open_dataset(tmp_path / "one.nc"), xr.open_dataset(tmp_path / "dask.nc")
    for name in ("p_value", "p_adjusted", "significant"):
        assert np.array_equal(a[name].values, b[name].values)
    a.close()
    b.close()


def test_null_statistic_and_tfce_connectivity_options(cohort_file, tmp_path):
    common = [
        "interpolate",
        "--feature",
        "sex",
        "--cohort",
        cohort_file,
        "--decoder",
        DEC,
        "--perm",
        30,
        "--steps",
        3,
        "--no-plot",
    ]
    recorded = {}
    for args in ([], ["--null", "sign-flip"], ["--null", "permutation"], ["--statistic", "difference"]):
        out = tmp_path / f"sex_{len(args)}{args[-1] if args else ''}.nc"
        r = run(*common, *args, "--out", out)
        assert r.exit_code == 0, r.output
        with xr.open_dataset(out) as ds:
            recorded[" ".join(args)] = (dict(ds.attrs), ds["p_adjusted"].values)
    default = recorded[""]
    assert default[0]["null"] == "sign-flip" and default[0]["statistic"] == "difference"
    assert default[0]["precision"].startswith("fp32 (TF32 off)") and "weighted" in default[0]["null_model"]
    np.testing.assert_array_equal(default[1], recorded["--null sign-flip"][1])
    np.testing.assert_array_equal(default[1], recorded["--statistic difference"][1])
    assert recorded["--null permutation"][0]["null"] == "permutation"
    assert not np.array_equal(default[1], recorded["--null permutation"][1])
    out = tmp_path / "tfce8.nc"
    r = run(*common, "--correction", "tfce", "--tfce-connectivity", 8, "--out", out)
    assert r.exit_code == 0, r.output
    with xr.open_dataset(out) as ds:
        assert ds.attrs["connectivity"] == 8
    for args, message in (
        (["--tfce-connectivity", 6, "--correction", "tfce"], "4 or 8"),
        (["--tfce-connectivity", 8], "tfce only"),
    ):
        assert message in one_line_error(run(*common, *args, "--out", tmp_path / "bad.nc"))
        assert not (tmp_path / "bad.nc").exists()
    for args in (["--statistic", "welch"], ["--null", "bootstrap"], ["--null-pivot", "x0"]):
        r = run(*common, *args, "--out", tmp_path / "bad.nc")
        assert r.exit_code != 0 and not (tmp_path / "bad.nc").exists()
    help_text = " ".join(run("interpolate", "--help").output.replace("│", " ").split())
    assert "module:callable imports that module and runs its code" in help_text
    assert "--null" in help_text and "one random sign per patient" in help_text


def test_interpolate_calibrate_stores_the_verdict(cohort_file, tmp_path):
    out = tmp_path / "sex.nc"
    r = run(
        "interpolate",
        "--feature",
        "sex",
        "--cohort",
        cohort_file,
        "--decoder",
        DEC,
        "--perm",
        30,
        "--steps",
        3,
        "--no-plot",
        "--calibrate",
        5,
        "--out",
        out,
    )
    assert r.exit_code == 0, r.output
    assert "calibration:" in r.output and "null cohorts" in r.output
    with xr.open_dataset(out) as ds:
        assert ds.attrs["calibration_n"] == 5 and ds.attrs["calibration_verdict"] in (
            "liberal",
            "consistent with alpha",
            "conservative",
        )
        assert 0 <= ds.attrs["calibration_k"] <= 5


def test_calibrate_command(cohort_file, tmp_path):
    import json

    out = tmp_path / "cal.json"
    args = ["calibrate", "--feature", "sex", "--cohort", cohort_file, "--decoder", DEC]
    args += ["--cohorts", 6, "--perm", 19, "--steps", 3, "--out", out]
    r = run(*args)
    assert r.exit_code == 0, r.output
    result = json.loads(out.read_text())
    assert result["n"] == 6 and len(result["min_p"]) == 6 and result["attrs"]["test_null"] == "sign-flip"
    assert "family-wise error" in r.output and result["verdict"] in r.output
    again = run(*args)
    assert "exists" in one_line_error(again) or "overwrite" in one_line_error(again)
    for args, message in ((["--cohorts", 0], "--cohorts must be"), (["--out", tmp_path / "x.nc"], ".json")):
        bad = run(
            "calibrate",
            "--feature",
            "sex",
            "--cohort",
            cohort_file,
            "--decoder",
            DEC,
            "--perm",
            19,
            "--steps",
            3,
            *(["--out", tmp_path / "c2.json"] if "--out" not in args else []),
            *args,
        )
        assert message in one_line_error(bad), bad.output
