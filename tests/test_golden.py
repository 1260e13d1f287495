"""The bits of the main commands on the bundled demo, kept: ``interpolate`` (GAM, class-mean, adjusted linear
with TFCE), ``local`` (class and numeric), ``explain`` (with attribution maps) and ``pixel-test`` (class and
linear) with small B, every variable of every output compared with ``tests/golden/commands.json``.

The golden file was first written by the code before the package was reorganised (issue #21, which changed
no result), then rewritten once when the default null became the sign flips (issue #22). A change that is
*meant* to change results regenerates it -- ``python tests/test_golden.py --update`` -- and says so in its
commit and in CHANGELOG.md.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

GOLDEN = Path(__file__).resolve().parent / "golden" / "commands.json"

#: attrs that describe where and when a file was made, not what it holds
PROVENANCE = {
    "created",
    "command_line",
    "decoder",
    "cohort_model",
    "model",
    "seegaan_version",
    "source",
    "title",
    "precision",
    "cohort_hash",
    "thread_settings",
    "torch_version",
    "numpy_version",
    "image_dir",
    "model_sha256",
}

#: the demo image the local sequences and the explanation move (the cohort's fourth image)
IMAGE = "ph00002_1"


def _commands(folder: Path) -> list[tuple[str, list[str]]]:
    ph = folder / "ph"
    pixel = ["--images", str(ph / "images"), "--table", str(ph / "clinical.csv"), "--size", "32", "--perm", "60"]
    return [
        ("stats", ["interpolate", "--feature", "bnpp", "--perm", "100", "--out", str(folder / "bnpp.nc"), "--no-plot"]),
        ("stats", ["interpolate", "--feature", "sex", "--perm", "100", "--out", str(folder / "sex.nc"), "--no-plot"]),
        (
            "stats",
            [
                "interpolate",
                "--feature",
                "age",
                "--adjust",
                "sex",
                "--method",
                "linear",
                "--perm",
                "60",
                "--correction",
                "tfce",
                "--out",
                str(folder / "age.nc"),
                "--no-plot",
            ],
        ),
        (
            "stats",
            [
                "local",
                "--image",
                IMAGE,
                "--feature",
                "sex",
                "--perm",
                "60",
                "--out",
                str(folder / "local.nc"),
                "--no-plot",
            ],
        ),
        (
            "stats",
            [
                "local",
                "--image",
                IMAGE,
                "--feature",
                "bnpp",
                "--perm",
                "40",
                "--out",
                str(folder / "localn.nc"),
                "--no-plot",
            ],
        ),
        (
            "stats",
            [
                "explain",
                "--image",
                IMAGE,
                "--model",
                "seegaan.testing.cnns:tiny_cnn",
                "--target",
                "-0.6",
                "--attributions",
                "vg,gradcam,ig",
                "--out",
                str(folder / "explain.nc"),
            ],
        ),
        ("model", ["phantom", "--out", str(ph), "--n", "120", "--size", "32", "--seed", "1"]),
        ("stats", ["pixel-test", *pixel, "--feature", "sex", "--out", str(folder / "pix.nc"), "--no-plot"]),
        (
            "stats",
            [
                "pixel-test",
                *pixel,
                "--feature",
                "age",
                "--method",
                "linear",
                "--out",
                str(folder / "pixa.nc"),
                "--no-plot",
            ],
        ),
    ]


def _run_all(folder: Path) -> None:
    from seegaan.cli.app import app as model_app
    from seegaan.cli.stats import app as stats_app

    runner = CliRunner()
    for which, args in _commands(folder):
        result = runner.invoke(stats_app if which == "stats" else model_app, args)
        assert result.exit_code == 0, (args, result.output)


def _fingerprint(path: Path) -> dict:
    """sha256 of every variable's bytes (dtype and shape too) and the non-provenance attrs."""
    with xr.open_dataset(path) as ds:
        entry = {"variables": {}, "attrs": {}}
        for name in sorted(ds.variables):
            a = np.ascontiguousarray(ds[name].values)
            if a.dtype.kind in "OUS":
                digest = hashlib.sha256("\x00".join(map(str, a.ravel().tolist())).encode()).hexdigest()
            else:
                digest = hashlib.sha256(a.tobytes()).hexdigest()
            entry["variables"][name] = {"dtype": str(a.dtype), "shape": list(a.shape), "sha256": digest}
        for key, value in sorted(ds.attrs.items()):
            if key not in PROVENANCE:
                entry["attrs"][key] = repr(np.asarray(value).tolist())
    return entry


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("golden")
    _run_all(folder)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(json.loads(GOLDEN.read_text())))
def test_the_outputs_keep_their_bits(outputs, name):
    want = json.loads(GOLDEN.read_text())[name]
    got = _fingerprint(outputs / name)
    assert sorted(got["variables"]) == sorted(want["variables"]), name
    changed = [v for v in want["variables"] if got["variables"][v] != want["variables"][v]]
    assert not changed, f"{name}: variables whose bits changed: {changed}"
    assert got["attrs"] == want["attrs"], {
        k: (got["attrs"].get(k), v) for k, v in want["attrs"].items() if got["attrs"].get(k) != v
    }


def test_the_fingerprint_sees_a_changed_bit(tmp_path):
    ds = xr.Dataset({"x": ("i", np.array([1.0, 2.0], np.float32))}, attrs={"n_perm": 10, "created": "now"})
    ds.to_netcdf(tmp_path / "a.nc")
    ds["x"].values[1] = np.nextafter(np.float32(2.0), np.float32(3.0))
    ds.attrs["created"] = "later"  # provenance: ignored
    ds.to_netcdf(tmp_path / "b.nc")
    a, b = _fingerprint(tmp_path / "a.nc"), _fingerprint(tmp_path / "b.nc")
    assert a["attrs"] == b["attrs"] and a["variables"]["x"] != b["variables"]["x"]


def update() -> None:
    """Rewrite the golden file from the current code (only when a result is meant to change)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        _run_all(Path(tmp))
        golden = {p.name: _fingerprint(p) for p in sorted(Path(tmp).glob("*.nc"))}
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        update()
    else:
        print(__doc__)
