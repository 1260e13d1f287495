"""HTML reports, looked at as a person would: rendered in headless Chromium, offline."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from seegaan._internal.errors import SeegaanError
from tests.viz.test_animation import tiny_sequence

_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:|//)|url\(\s*["']?\s*(?:https?:|//)""", re.I)


def _app():
    import typer

    from seegaan.cli._common import OneLineErrors
    from seegaan.cli.stats_report import register

    app = typer.Typer(cls=OneLineErrors, add_completion=False)

    @app.callback()
    def _root():
        """test app"""

    register(app)
    return app


def _invoke(*args):
    return CliRunner().invoke(_app(), [str(a) for a in args])


@pytest.fixture(scope="module")
def demo_nc(tmp_path_factory):
    """The bundled demo's interpolate output (sex, 50 permutations)."""
    from seegaan.cli.stats import app

    out = tmp_path_factory.mktemp("demo") / "sex.nc"
    result = CliRunner().invoke(
        app, ["interpolate", "--feature", "sex", "--perm", "50", "--out", str(out), "--no-plot"]
    )
    assert result.exit_code == 0, result.output
    return out


def _browser():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no headless browser installed (apt-get install chromium)")


def _screenshot(browser, html_path, png, tmp_path, fragment=""):
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={png}",
        "--window-size=1400,2400",
        f"file://{html_path}{fragment}",
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    from PIL import Image

    with Image.open(png) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def _image_regions(shown, hidden, min_area=2000):
    """Bounding boxes of the regions where the figures are (the pixels that change when they are hidden)."""
    from scipy import ndimage

    changed = ndimage.binary_closing(np.any(shown != hidden, axis=-1), iterations=1)
    labels, n = ndimage.label(changed)
    boxes = ndimage.find_objects(labels)
    return [b for i, b in enumerate(boxes) if (labels[b] == i + 1).sum() >= min_area]


def _check_rendering(html_path, tmp_path, n_images):
    browser = _browser()
    shown = _screenshot(browser, html_path, tmp_path / "shown.png", tmp_path)
    hidden = _screenshot(browser, html_path, tmp_path / "hidden.png", tmp_path, "#hide-figures")
    assert shown.shape == hidden.shape == (2400, 1400, 3)
    assert len(np.unique(shown.reshape(-1, 3), axis=0)) > 100, "the page looks blank"
    boxes = _image_regions(shown, hidden)
    assert len(boxes) == n_images, f"found {len(boxes)} figure regions, expected {n_images}"
    for box in boxes:
        region, behind = shown[box], hidden[box]
        assert region.std() > 5 and len(np.unique(region.reshape(-1, 3), axis=0)) > 16, f"uniform figure at {box}"
        assert len(np.unique(behind.reshape(-1, 3), axis=0)) == 1, f"something else than a figure changed at {box}"
        assert region.shape[1] >= 100


def test_demo_report_renders_offline_with_every_parameter(demo_nc, tmp_path):
    out = tmp_path / "sex.html"
    result = _invoke("report", demo_nc, "--out", out)
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert not _EXTERNAL.search(text) and "http://" not in text and "https://" not in text
    assert "<script" not in text.lower()
    attrs = xr.open_dataset(demo_nc).attrs
    import html

    from seegaan.viz.report import _fmt

    for key in (
        "feature",
        "method",
        "grid",
        "n_perm",
        "permutation_scheme",
        "correction",
        "alpha",
        "seed",
        "command_line",
        "cohort_hash",
        "decoder",
        "seegaan_version",
    ):
        assert key in attrs
    for key, value in attrs.items():
        if str(value):
            assert html.escape(_fmt(value), quote=True) in text, f"attr {key} missing from the report"
    assert re.search(r"decoder sha256</td><td>[0-9a-f]{64}<", text)
    assert "torch version" in text and "numpy version" in text
    per_step = xr.open_dataset(demo_nc)["significant"].values.reshape(8, -1).sum(axis=1)
    for k, count in enumerate(per_step):
        assert f'<td class="num">{k}</td><td>' in text and f'<td class="num">{int(count)}</td>' in text
    _check_rendering(out, tmp_path, n_images=2)


def test_side_by_side_global_and_local_with_cohort(tmp_path):
    from seegaan.testing.cohorts import make_cohort
    from seegaan.viz.report import make_report

    cohort = tmp_path / "cohort.nc"
    make_cohort(n=40).to_netcdf(cohort, engine="netcdf4")
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    glob = tiny_sequence(K=5)
    glob.attrs["warnings"] = "few permutations <check>\nsecond warning"
    glob.to_netcdf(a, engine="netcdf4")
    tiny_sequence(K=4, local=True, tested=False).to_netcdf(b, engine="netcdf4")
    out = make_report([a, b], out=tmp_path / "r.html", cohort=cohort)
    text = out.read_text(encoding="utf-8")
    assert not _EXTERNAL.search(text)
    assert "few permutations &lt;check&gt;" in text and "second warning" in text
    assert "no permutation test" in text  # the untested local sequence says so
    assert "is not the one this sequence was computed from" in text  # hash mismatch flagged
    assert "Table 1 by split" in text and "n (patients)" in text
    assert "img0007" in text and "λ = 0.333" in text
    assert "repeat(2,minmax(0,1fr))" in text
    _check_rendering(out, tmp_path, n_images=5)  # 2 figures, 2 animations, 1 reconstruction


def test_report_errors_are_one_line(tmp_path):
    seq = tmp_path / "s.nc"
    tiny_sequence().to_netcdf(seq, engine="netcdf4")
    seq_html = tmp_path / "seq.html"  # a sequence file with an odd name
    shutil.copy(seq, seq_html)
    cases = [
        (["report", seq, "--out", tmp_path / "r.pdf"], "give a .html or .htm path"),
        (["report", tmp_path / "missing.nc", "--out", tmp_path / "r.html"], "does not exist"),
        (["report", seq_html, "--out", seq_html, "--overwrite"], "is the input"),
        (["animate", seq, "--out", tmp_path / "a.gif", "--fps", "-1"], "--fps"),
        (["animate", seq, "--out", seq], "give a .gif or .mp4 path"),
    ]
    for args, message in cases:
        result = _invoke(*args)
        assert result.exit_code != 0
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert not (tmp_path / "r.html").exists()
    (tmp_path / "x.nc").write_text("junk")
    with pytest.raises(SeegaanError, match="not a readable netCDF"):
        from seegaan.viz.report import make_report

        make_report(tmp_path / "x.nc", out=tmp_path / "x.html")


def test_cli_defaults_and_overwrite(tmp_path):
    seq = tmp_path / "s.nc"
    tiny_sequence().to_netcdf(seq, engine="netcdf4")
    assert _invoke("report", seq).exit_code == 0 and (tmp_path / "s.html").is_file()
    assert "already exists" in _invoke("report", seq).output
    assert _invoke("report", seq, "--overwrite").exit_code == 0
    result = _invoke("animate", seq, "--pingpong", "--fps", "2")
    assert result.exit_code == 0, result.output
    from PIL import Image

    with Image.open(tmp_path / "s.gif") as im:
        assert im.n_frames == 8 and im.info["duration"] == 500


def test_accessor_report(tmp_path):
    import seegaan.viz.accessor  # noqa: F401  registers ds.seegaan

    out = tiny_sequence().seegaan.report(tmp_path / "acc.html")
    assert "SEE-GAAN report: age" in out.read_text(encoding="utf-8")
