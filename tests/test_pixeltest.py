"""seegaan.pixeltest and ``seegaan-stats pixel-test``: the permutation test on the images themselves."""

import numpy as np
import pytest
import typer
import xarray as xr
from typer.testing import CliRunner

import seegaan
from seegaan._internal.errors import SeegaanError
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
    assert result.attrs["statistic"] == "difference" and result.attrs["null"] == "sign-flip"
    truth = np.load(phantom / "truth" / "marginal_ahf_mask.npy")
    dice = _dice(result.significant[-1], truth)
    with capsys.disabled():
        print(
            f"\npixel test ahf (n=160, 32x32, 99 permutations): Dice vs marginal_ahf_mask = {dice:.3f} "
            f"({int(result.significant[-1].sum())} significant, {int(truth.sum())} in the truth mask)"
        )
    assert dice > 0.4  # measured 0.68; chance (that many random pixels) is ~0.10

    # by hand: the same images, create_cohort, interpolate, sequence with a plain identity function
    data = load_dataset(phantom / "images", phantom / "clinical.csv", size=32)
    flat = np.stack([data[i].ravel() for i in range(len(data))])
    cohort = seegaan.create_cohort(flat, data.table)
    by_hand = seegaan.sequence(
        seegaan.interpolate(cohort, feature="ahf"), lambda w: w.reshape(len(w), 32, 32), **options
    )
    assert np.array_equal(result.p_value, by_hand.p_value)
    assert np.array_equal(result.p_adjusted, by_hand.p_adjusted)
    assert np.array_equal(result.significant, by_hand.significant)
    # the last frame of the class-mean trajectory is the mean image of the AHF group
    ahf = data.table["ahf"].to_numpy(bool)
    np.testing.assert_allclose(result.images[-1], flat[ahf].mean(0).reshape(32, 32), atol=1e-5)


def test_same_seed_same_bits_and_the_identity_decoder(phantom):
    a = pixel_test(phantom / "images", phantom / "clinical.csv", feature="age", size=16, steps=3, n_perm=20, seed=1)
    b = pixel_test(phantom / "images", phantom / "clinical.csv", feature="age", size=16, steps=3, n_perm=20, seed=1)
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


# Every option combination that interpolate or sequence refuses is refused before any pixel is read:
# (id, API keywords, CLI options, message fragment); None where that side cannot express it (a CLI choice
# list, an API-only option). Features of the phantom: ahf (bool: class-mean), age (numeric), sex.
REFUSED = [
    (
        "mask of another size",
        dict(feature="ahf", mask="MASK8"),
        ("--feature", "ahf", "--mask", "MASK8"),
        "the mask has shape (8, 8) but the decoded images are 16x16",
    ),
    (
        "mask that selects nothing",
        dict(feature="ahf", mask="MASK0"),
        ("--feature", "ahf", "--mask", "MASK0"),
        "the mask selects no pixel",
    ),
    (
        "mask file missing",
        dict(feature="ahf", mask="MISSING"),
        ("--feature", "ahf", "--mask", "MISSING"),
        "does not exist; give a .npy or PNG mask",
    ),
    ("unknown correction", dict(feature="ahf", correction="nope"), None, "unknown correction 'nope'"),
    ("unknown alternative", dict(feature="ahf", alternative="up"), None, "unknown alternative 'up'"),
    ("unknown statistic", dict(feature="ahf", statistic="nope"), None, "unknown statistic 'nope'"),
    (
        "min-change with tfce",
        None,
        ("--feature", "ahf", "--correction", "tfce", "--min-change", "0.1"),
        "--min-change applies to --correction maxt or maxd only (got tfce)",
    ),
    (
        "sd-offset with maxd",
        None,
        ("--feature", "ahf", "--correction", "maxd", "--sd-offset", "0.1"),
        "--sd-offset applies to --correction maxt only (got maxd)",
    ),
    ("tfce-e with maxt", None, ("--feature", "ahf", "--tfce-e", "1"), "--tfce-e applies to --correction tfce only"),
    (
        "alpha 2",
        dict(feature="ahf", alpha=2.0),
        ("--feature", "ahf", "--alpha", "2"),
        "--alpha must be between 0 and 1",
    ),
    (
        "negative permutations",
        dict(feature="ahf", n_perm=-1),
        ("--feature", "ahf", "--perm", "-1"),
        "--perm must be 0 or more",
    ),
    ("negative seed", dict(feature="ahf", seed=-1), ("--feature", "ahf", "--seed", "-1"), "--seed must be 0 or more"),
    (
        "batch size 0",
        dict(feature="ahf", batch_size=0),
        ("--feature", "ahf", "--batch-size", "0"),
        "batch size must be at least 1",
    ),
    (
        "unknown permutation scheme",
        dict(feature="ahf", scheme="nope", null="permutation"),
        None,
        "unknown permutation scheme 'nope'",
    ),
    (
        "exact enumeration too large",
        dict(feature="ahf", n_perm="exact"),
        None,
        "(more than 200000); give a number of draws instead",
    ),
    ("client (Dask)", dict(feature="ahf", client=object()), None, "pixel_test() runs in one process"),
    ("a decoder", dict(feature="ahf", decoder="x.pt"), None, "it takes no decoder"),
    (
        "grid outside the gam range",
        dict(feature="age", method="gam", grid="-1000,5000"),
        ("--feature", "age", "--method", "gam", "--grid", "-1000,5000"),
        "leaves the observed range of 'age'",
    ),
    (
        "grid of one value",
        dict(feature="age", grid="50"),
        ("--feature", "age", "--grid", "50"),
        "an explicit grid needs at least two values",
    ),
    (
        "grid of equal values",
        dict(feature="age", grid="50,50"),
        ("--feature", "age", "--grid", "50,50"),
        "the grid values are all equal",
    ),
    (
        "class-mean grid beyond 1",
        dict(feature="ahf", grid="0,2"),
        ("--feature", "ahf", "--grid", "0,2"),
        "class-mean grid values are fractions",
    ),
    ("unknown transform", dict(feature="age", transform="sqrt"), None, "unknown transform 'sqrt'"),
    (
        "transform with class means",
        dict(feature="ahf", transform="log"),
        ("--feature", "ahf", "--transform", "log"),
        "--transform applies to numeric features",
    ),
    (
        "levels that do not exist",
        dict(feature="sex", levels="F,X"),
        ("--feature", "sex", "--levels", "F,X"),
        "level 'X' is not a value of 'sex'",
    ),
    ("unknown method", dict(feature="ahf", method="spline"), None, "unknown method 'spline'"),
    (
        "gam lam 0",
        dict(feature="age", method="gam", gam_lam=0),
        ("--feature", "age", "--method", "gam", "--gam-lam", "0"),
        "--gam-lam must be a positive number",
    ),
    (
        "feature as covariate",
        dict(feature="age", adjust="age"),
        ("--feature", "age", "--adjust", "age"),
        "cannot be both the feature and a covariate",
    ),
    ("size 2", dict(feature="ahf", size=2), ("--feature", "ahf", "--size", "2"), "--size must be a whole number"),
    ("unknown null", dict(feature="ahf", null="bootstrap"), None, "unknown null 'bootstrap'"),
    ("welch retired", dict(feature="ahf", statistic="welch"), None, "--statistic welch was retired"),
    (
        "a scheme with sign flips",
        dict(feature="ahf", scheme="image"),
        None,
        "a permutation scheme applies to --null permutation",
    ),
]
MASKS = {"MASK8": np.ones((8, 8), bool), "MASK0": np.zeros((16, 16), bool)}


@pytest.fixture
def pixels_read(monkeypatch):
    """The rows whose pixels were decoded; every read fails (an option refused after reading shows up)."""
    rows = []

    def refuse(self, i):
        rows.append(i)
        raise AssertionError("a pixel was read")

    monkeypatch.setattr("seegaan.data.dataset.ImageSet._read", refuse)
    return rows


def _with_paths(values, tmp_path):
    masks = {}
    for name, arr in MASKS.items():
        masks[name] = tmp_path / f"{name}.npy"
        np.save(masks[name], arr)
    masks["MISSING"] = tmp_path / "missing.npy"
    return [masks.get(v, v) if isinstance(v, str) else v for v in values]


@pytest.mark.parametrize(
    "api, cli, fragment", [r[1:] for r in REFUSED if r[1] is not None], ids=[r[0] for r in REFUSED if r[1] is not None]
)
def test_api_refuses_before_reading_pixels(phantom, tmp_path, pixels_read, api, cli, fragment):
    keys, values = list(api), _with_paths(list(api.values()), tmp_path)
    options = {"size": 16, "n_perm": 99, **dict(zip(keys, values))}
    with pytest.raises(SeegaanError) as err:
        pixel_test(phantom / "images", phantom / "clinical.csv", **options)
    msg = str(err.value)
    assert fragment in msg and "\n" not in msg, msg
    assert pixels_read == []


@pytest.mark.parametrize(
    "api, cli, fragment", [r[1:] for r in REFUSED if r[2] is not None], ids=[r[0] for r in REFUSED if r[2] is not None]
)
def test_cli_refuses_before_reading_pixels(phantom, tmp_path, pixels_read, api, cli, fragment):
    out = tmp_path / "x.nc"
    args = ["--size", 16, "--perm", 99, *_with_paths(list(cli), tmp_path)]
    line = one_line_error(
        run("pixel-test", "--images", phantom / "images", "--table", phantom / "clinical.csv", "--out", out, *args)
    )
    assert fragment in line, line
    assert pixels_read == [] and not out.exists() and not out.with_suffix(".png").exists()


def test_the_memory_of_the_whole_test_is_checked_before_reading(phantom, tmp_path, monkeypatch, pixels_read):
    # the plan alone (1000 x 160 x 8 bytes = 1.3 MB) fits; with the null cache (1000 x 8 steps x 256 pixels x
    # 4 bytes = 8.2 MB) and the Welch linearised images it does not: sequence checks that only once it has
    # decoded the observed frames (their size), which the pixel test knows from --size
    monkeypatch.setattr("seegaan.stats.engine.available_memory", lambda: 16 * 2**20)
    with pytest.raises(SeegaanError, match=r"1000 permutations of 160 images need .*null cache"):
        pixel_test(phantom / "images", phantom / "clinical.csv", feature="ahf", size=16, n_perm=1000)
    line = one_line_error(
        run(
            "pixel-test",
            "--images",
            phantom / "images",
            "--table",
            phantom / "clinical.csv",
            "--feature",
            "ahf",
            "--size",
            16,
            "--perm",
            1000,
            "--out",
            tmp_path / "x.nc",
        )
    )
    assert "1000 permutations of 160 images need" in line
    assert pixels_read == []


def test_unknown_options_and_an_image_set_without_a_size_before_reading(phantom, pixels_read):
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        pixel_test(phantom / "images", phantom / "clinical.csv", feature="ahf", size=16, nope=1)
    data = load_dataset(phantom / "images", phantom / "clinical.csv", size=None)
    with pytest.raises(SeegaanError, match="needs the images resized to one size"):
        pixel_test(data, feature="ahf")
    assert pixels_read == []


def test_the_checks_leave_a_seed_generator_alone(phantom):
    # the dry run of sequence's checks draws its plan from a copy: the same bits as sequence() by hand
    data = load_dataset(phantom / "images", phantom / "clinical.csv", size=16)
    a = pixel_test(data, feature="ahf", steps=3, n_perm=20, seed=np.random.default_rng(7))
    flat = np.stack([data[i].ravel() for i in range(len(data))])
    by_hand = seegaan.sequence(
        seegaan.interpolate(seegaan.create_cohort(flat, data.table), feature="ahf", steps=3),
        identity_decoder(16),
        n_perm=20,
        seed=np.random.default_rng(7),
    )
    assert np.array_equal(a.p_value, by_hand.p_value) and np.array_equal(a.p_adjusted, by_hand.p_adjusted)


def test_memory_is_checked_with_the_number(monkeypatch, phantom):
    monkeypatch.setattr("seegaan.pixeltest._ram_bytes", lambda: 100_000)
    data = load_dataset(phantom / "images", phantom / "clinical.csv", size=32)
    with pytest.raises(SeegaanError, match=r"160 images x 32x32 .* 0\.0 GiB, more than 50%"):
        load_flat_images(data)


# -------------------------------------------------------------------------------------------- compare


def _seq(diff, sig, feature="ahf"):
    diff = np.asarray(diff, np.float32)
    return xr.Dataset(
        {"difference": (("step", "y", "x"), diff), "significant": (("step", "y", "x"), sig)}, attrs={"feature": feature}
    )


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
    big = np.repeat(np.repeat(d, 2, axis=1), 2, axis=2)  # the same map at 16x16
    got = compare_maps(_seq(big, big > 0), _seq(d, d > 0))
    assert got["size"] == (8, 8)
    assert got["correlation"] > 0.9 and got["dice"] > 0.9 and got["sign_agreement"] == 1.0
    assert np.isnan(compare_maps(_seq(d, d < 0), _seq(d, d < 0))["dice"])  # nothing significant
    with pytest.raises(SeegaanError, match="different features"):
        compare_maps(_seq(d, d > 0, "sex"), _seq(d, d > 0))
    # reversed --levels: every difference has the opposite sign; refused rather than "sign agreement 0.000"
    a, b = _seq(d, d > 0), _seq(-d, d > 0)
    a.attrs["levels"], b.attrs["levels"] = "False,True", "True,False"
    with pytest.raises(SeegaanError, match="one is the other reversed") as e:
        compare_maps(a, b)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_writes_the_sequence_and_the_comparison(phantom, tmp_path):
    decoded = tmp_path / "decoded.nc"
    first = run(
        "pixel-test",
        "--images",
        phantom / "images",
        "--table",
        phantom / "clinical.csv",
        "--feature",
        "ahf",
        "--size",
        16,
        "--perm",
        30,
        "--seed",
        2,
        "--no-plot",
        "--out",
        decoded,
    )
    assert first.exit_code == 0, first.output
    out = tmp_path / "pix.nc"
    r = run(
        "pixel-test",
        "--images",
        phantom / "images",
        "--table",
        phantom / "clinical.csv",
        "--feature",
        "ahf",
        "--size",
        32,
        "--perm",
        30,
        "--seed",
        2,
        "--correction",
        "tfce",
        "--threads",
        1,
        "--out",
        out,
        "--compare",
        decoded,
    )
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
        assert ds.attrs["compare_correlation"] > 0.9  # one phantom at two sizes


def test_cli_one_line_errors(phantom, tmp_path):
    base = (
        "pixel-test",
        "--images",
        phantom / "images",
        "--table",
        phantom / "clinical.csv",
        "--out",
        tmp_path / "x.nc",
        "--no-plot",
    )
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
