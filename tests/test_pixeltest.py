"""seegaan.pixeltest and ``seegaan-stats pixel-test``: the permutation test on the images themselves."""

import numpy as np
import pytest
import typer
import xarray as xr
from typer.testing import CliRunner

import seegaan
from seegaan._errors import SeegaanError
from seegaan.cli._common import OneLineErrors
from seegaan.cli.stats_pixel import register
from seegaan.data import load_dataset
from seegaan.phantom import write_phantom
from seegaan.pixeltest import IDENTITY, compare_maps, identity_decoder, load_flat_images, pixel_test

app = typer.Typer(cls=OneLineErrors)
register(app)


@app.callback()
def _root():
    """A local app holding only pixel-test."""


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(result):
    assert result.exit_code != 0, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return write_phantom(tmp_path_factory.mktemp("ph") / "phantom", n=160, size=32, seed=3)


def _dice(a, b):
    return 2 * np.sum(a & b) / (np.sum(a) + np.sum(b))


def test_pixel_test_finds_the_phantom_effect_and_equals_the_engine_by_hand(phantom, capsys):
    options = dict(n_perm=99, seed=5, correction="maxt", statistic="auto")
    result = pixel_test(phantom / "images", phantom / "clinical.csv", feature="ahf", size=32, **options)
    assert result.attrs["decoder"] == IDENTITY and result.attrs["pixel_test"] == 1
    assert result.attrs["statistic"] == "welch"           # the auto path: linearised through the identity
    truth = np.load(phantom / "truth" / "marginal_ahf_mask.npy")
    dice = _dice(result.significant[-1], truth)
    with capsys.disabled():
        print(f"\npixel test ahf (n=160, 32x32, 99 permutations): Dice vs marginal_ahf_mask = {dice:.3f} "
              f"({int(result.significant[-1].sum())} significant, {int(truth.sum())} in the truth mask)")
    assert dice > 0.4          # measured 0.68; chance (that many random pixels) is ~0.10

    # by hand: the same images, create_cohort, interpolate, sequence with a plain identity function
    data = load_dataset(phantom / "images", phantom / "clinical.csv", size=32)
    flat = np.stack([data[i].ravel() for i in range(len(data))])
    cohort = seegaan.create_cohort(flat, data.table)
    by_hand = seegaan.sequence(seegaan.interpolate(cohort, feature="ahf"), lambda w: w.reshape(len(w), 32, 32),
                               **options)
    assert np.array_equal(result.p_value, by_hand.p_value)
    assert np.array_equal(result.p_adjusted, by_hand.p_adjusted)
    assert np.array_equal(result.significant, by_hand.significant)
    # the last frame of the class-mean trajectory is the mean image of the AHF group
    ahf = data.table["ahf"].to_numpy(bool)
    np.testing.assert_allclose(result.images[-1], flat[ahf].mean(0).reshape(32, 32), atol=1e-5)


def test_same_seed_same_bits_and_the_identity_decoder(phantom):
    a = pixel_test(phantom / "images", phantom / "clinical.csv", feature="age", size=16, steps=3, n_perm=20,
                   seed=1)
    b = pixel_test(phantom / "images", phantom / "clinical.csv", feature="age", size=16, steps=3, n_perm=20,
                   seed=1)
    assert a.attrs["statistic"] == "difference" and a.images.shape == (3, 16, 16)
    assert np.array_equal(a.p_value, b.p_value) and np.array_equal(a.images, b.images)
    w = np.arange(2 * 16 * 16, dtype=np.float32).reshape(2, -1)
    assert np.array_equal(identity_decoder(16)(w), w.reshape(2, 16, 16))
    with pytest.raises(SeegaanError, match="256 values"):
        identity_decoder(16)(w[:, :10])


def test_bad_options_fail_before_reading_pixels(phantom, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("pixels were read")

    monkeypatch.setattr("seegaan.pixeltest.load_flat_images", boom)
    with pytest.raises(SeegaanError, match="nope"):
        pixel_test(phantom / "images", phantom / "clinical.csv", feature="nope", size=16)
    with pytest.raises(SeegaanError, match="levels|level"):
        pixel_test(phantom / "images", phantom / "clinical.csv", feature="sex", levels="F,X", size=16)
    with pytest.raises(SeegaanError, match="size"):
        pixel_test(phantom / "images", phantom / "clinical.csv", feature="sex", size=2)
    with pytest.raises(SeegaanError, match="alpha"):
        pixel_test(phantom / "images", phantom / "clinical.csv", feature="sex", size=16, alpha=2.0)


def test_memory_is_checked_with_the_number(monkeypatch, phantom):
    monkeypatch.setattr("seegaan.pixeltest._ram_bytes", lambda: 100_000)
    data = load_dataset(phantom / "images", phantom / "clinical.csv", size=32)
    with pytest.raises(SeegaanError, match=r"160 images x 32x32 .* 0\.0 GiB, more than 50%"):
        load_flat_images(data)


# -------------------------------------------------------------------------------------------- compare

def _seq(diff, sig, feature="ahf"):
    diff = np.asarray(diff, np.float32)
    return xr.Dataset({"difference": (("step", "y", "x"), diff), "significant": (("step", "y", "x"), sig)},
                      attrs={"feature": feature})


def test_compare_maps_equals_a_direct_computation():
    rng = np.random.default_rng(0)
    da, db = rng.standard_normal((2, 3, 8, 8))
    sa, sb = np.abs(da) > 1, np.abs(db) > 0.8
    got = compare_maps(_seq(da, sa), _seq(db, sb))
    a, b, A, B = da[-1].ravel(), db[-1].ravel(), sa[-1].ravel(), sb[-1].ravel()
    assert got["correlation"] == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-6)
    assert got["dice"] == pytest.approx(2 * np.sum(A & B) / (A.sum() + B.sum()))
    both = A & B
    assert both.sum() > 0
    assert got["sign_agreement"] == pytest.approx(np.mean(np.sign(a[both]) == np.sign(b[both])))
    assert got["n_both"] == both.sum() and got["size"] == (8, 8)


def test_compare_maps_resizes_and_refuses_other_features():
    d = np.zeros((2, 8, 8), np.float32)
    d[1, :, 4:] = 1.0
    big = np.repeat(np.repeat(d, 2, axis=1), 2, axis=2)                 # the same map at 16x16
    got = compare_maps(_seq(big, big > 0), _seq(d, d > 0))
    assert got["size"] == (8, 8)
    assert got["correlation"] > 0.9 and got["dice"] > 0.9 and got["sign_agreement"] == 1.0
    assert np.isnan(compare_maps(_seq(d, d < 0), _seq(d, d < 0))["dice"])   # nothing significant
    with pytest.raises(SeegaanError, match="different features"):
        compare_maps(_seq(d, d > 0, "sex"), _seq(d, d > 0))


# ------------------------------------------------------------------------------------------------ CLI

def test_cli_writes_the_sequence_and_the_comparison(phantom, tmp_path):
    decoded = tmp_path / "decoded.nc"
    first = run("pixel-test", "--images", phantom / "images", "--table", phantom / "clinical.csv",
                "--feature", "ahf", "--size", 16, "--perm", 30, "--seed", 2, "--no-plot", "--out", decoded)
    assert first.exit_code == 0, first.output
    out = tmp_path / "pix.nc"
    r = run("pixel-test", "--images", phantom / "images", "--table", phantom / "clinical.csv", "--feature", "ahf",
            "--size", 32, "--perm", 30, "--seed", 2, "--correction", "tfce", "--threads", 1, "--out", out,
            "--compare", decoded)
    assert r.exit_code == 0, r.output
    assert out.exists() and out.with_suffix(".png").exists()
    assert "pixel test (model-free baseline)" in r.stdout and "Dice" in r.stdout and "sign agreement" in r.stdout
    with xr.open_dataset(out) as ds:
        assert ds.attrs["decoder"] == IDENTITY and ds.attrs["pixel_test"] == 1
        assert ds.attrs["correction"] == "tfce" and ds.attrs["compare_with"] == "decoded.nc"
        assert ds["image"].shape == (8, 32, 32)
        with xr.open_dataset(decoded) as dec:
            direct = compare_maps(dec.load(), ds.load())
        for key in ("correlation", "dice", "sign_agreement"):
            assert ds.attrs[f"compare_{key}"] == pytest.approx(direct[key])
        assert ds.attrs["compare_correlation"] > 0.9       # one phantom at two sizes


def test_cli_one_line_errors(phantom, tmp_path):
    base = ("pixel-test", "--images", phantom / "images", "--table", phantom / "clinical.csv",
            "--out", tmp_path / "x.nc", "--no-plot")
    assert "nope" in one_line_error(run(*base, "--feature", "nope", "--size", 16))
    assert "size" in one_line_error(run(*base, "--feature", "ahf", "--size", 1))
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_line_error(run("pixel-test", "--images", empty, "--feature", "ahf", "--out", tmp_path / "y.nc"))
    assert line.startswith("error:")
    assert "--feature" in one_line_error(run(*base))
    line = one_line_error(run(*base, "--feature", "ahf", "--compare", phantom / "clinical.csv"))
    assert "--compare" in line
    assert ".nc" in one_line_error(run(*base[:-3], "--out", tmp_path / "x.txt", "--feature", "ahf"))
    assert not (tmp_path / "x.nc").exists()
