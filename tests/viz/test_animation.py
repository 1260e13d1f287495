"""Animations (GIF with Pillow, MP4 through imageio-ffmpeg), the sequence accessor and Summary's HTML."""

import numpy as np
import pytest
import xarray as xr
from PIL import Image

from seegaan._internal.errors import SeegaanError


def tiny_sequence(K=5, H=12, W=10, *, tested=True, local=False, seed=0):
    """A small synthetic sequence dataset: a blob that brightens over the steps."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    blob = np.exp(-((yy - H / 2) ** 2 + (xx - W / 2) ** 2) / 8.0)
    images = np.stack([-0.5 + 0.1 * rng.standard_normal((H, W)) + 0.3 * k * blob for k in range(K)]).astype(np.float32)
    diff = images - images[0]
    data = {
        "w": (("step", "latent"), rng.standard_normal((K, 4)).astype(np.float32)),
        "image": (("step", "y", "x"), images),
        "difference": (("step", "y", "x"), diff),
    }
    attrs = {
        "feature": "age",
        "method": "gam",
        "levels": "",
        "grid": ",".join(str(40 + 10 * k) for k in range(K)),
        "n_perm": 20 if tested else 0,
        "permutation_scheme": "patient-label" if tested else "none",
        "correction": "maxt" if tested else "none (no permutation test)",
        "alpha": 0.05,
        "alternative": "two-sided",
        "seed": "3",
        "smallest_p": 1 / 21,
        "decoder": "tests:dec (sha256:" + "ab" * 32 + ")",
        "cohort_hash": "sha256:" + "cd" * 32,
        "seegaan_version": "0.1.0",
        "command_line": "seegaan-stats interpolate --feature age <script>",
        "created": "2026-01-01T00:00:00+00:00",
    }
    if tested:
        sig = (blob > 0.5)[None] & (np.arange(K) > 0)[:, None, None]
        p = np.where(sig, 0.01, 0.5)
        data.update(
            p_value=(("step", "y", "x"), p),
            p_adjusted=(("step", "y", "x"), p),
            significant=(("step", "y", "x"), sig),
            significant_difference=(("step", "y", "x"), np.where(sig, diff, 0).astype(np.float32)),
        )
        attrs.update(sd_offset="0", sd_offset_value=0.0, min_change=0.0)
    coords = {"step": np.arange(K)}
    if local:
        coords["lambda"] = ("step", np.linspace(0, 1, K))
        data["reconstruction"] = (("y", "x"), images[0])
        attrs["image_id"] = "img0007"
    else:
        coords["feature_value"] = ("step", 40.0 + 10 * np.arange(K))
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _gif(path):
    with Image.open(path) as im:
        return im.n_frames, im.size, im.info.get("duration")


@pytest.mark.parametrize("pingpong", [False, True])
def test_gif_frames_and_size(tmp_path, pingpong):
    from seegaan.viz.animation import animate, render_frames

    ds = tiny_sequence(K=5, H=12, W=10)
    out = animate(ds, tmp_path / "a.gif", fps=5, pingpong=pingpong)
    n, size, duration = _gif(out)
    assert n == (2 * 5 - 2 if pingpong else 5)
    frame = render_frames(ds)[0]
    assert size == (frame.shape[1], frame.shape[0])
    # two panels of whole-pixel enlargements of the 12 x 10 image, at least 256 px tall
    scale = -(-256 // 12)
    assert frame.shape[0] > 12 * scale and frame.shape[1] > 2 * 10 * scale
    assert duration == 200


def test_frames_show_image_and_significant_colour():
    from seegaan.viz.animation import render_frames

    ds = tiny_sequence(K=4, H=12, W=10)
    frames = render_frames(ds)
    h, w = frames[0].shape[:2]
    left, right = frames[-1][h // 2, : w // 2], frames[-1][h // 2, w // 2 :]
    assert np.all(left[:, 0] == left[:, 1])  # gray frame
    assert np.any(right[:, 0] != right[:, 2])  # coloured significant pixels in the middle row
    assert not np.array_equal(frames[0][:26], frames[1][:26])  # the label (feature value) changes


def test_local_sequence_and_untested(tmp_path):
    from seegaan.viz.animation import animate

    out = animate(tiny_sequence(K=3, local=True, tested=False), tmp_path / "l.gif")
    assert _gif(out)[0] == 3


def test_mp4(tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    try:
        imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        pytest.skip("imageio-ffmpeg is installed without its ffmpeg binary")
    from seegaan.viz.animation import animate

    out = animate(tiny_sequence(K=6), tmp_path / "a.mp4", fps=4)
    n_frames, secs = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert n_frames == 6
    assert secs == pytest.approx(1.5, abs=0.3)


def test_animate_errors(tmp_path):
    from seegaan.viz.animation import animate

    ds = tiny_sequence()
    with pytest.raises(SeegaanError, match="give a .gif or .mp4"):
        animate(ds, tmp_path / "a.png")
    with pytest.raises(SeegaanError, match="--fps"):
        animate(ds, tmp_path / "a.gif", fps=0)
    (tmp_path / "a.gif").write_bytes(b"x")
    with pytest.raises(SeegaanError, match="overwrite"):
        animate(ds, tmp_path / "a.gif")
    with pytest.raises(SeegaanError, match="not a sequence dataset"):
        animate(ds.drop_vars("image"), tmp_path / "b.gif")


def test_mp4_without_imageio_ffmpeg_is_one_line(tmp_path, monkeypatch):
    import sys

    from seegaan.viz.animation import animate

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails
    with pytest.raises(SeegaanError, match=r"pip install 'seegaan\[report\]'"):
        animate(tiny_sequence(), tmp_path / "a.mp4")
    assert not (tmp_path / "a.mp4").exists()


def test_animate_option_hook(tmp_path):
    from seegaan.viz.animation import animate_option_hook, check_animation_path

    assert animate_option_hook(tiny_sequence(), None) is None
    path = check_animation_path(tmp_path / "h.gif")
    assert animate_option_hook(tiny_sequence(), path) == path and _gif(path)[0] == 5


def test_open_sequence_and_accessor(tmp_path):
    from seegaan.viz.accessor import open_sequence

    path = tmp_path / "s.nc"
    tiny_sequence().to_netcdf(path, engine="netcdf4")
    ds = open_sequence(path)
    lines = dict(ds.seegaan.summary().lines)
    per_step = ", ".join(str(int(s)) for s in ds["significant"].values.reshape(5, -1).sum(axis=1))
    assert lines["significant per step"] == per_step
    assert lines["permutations"] == "20 (patient-label)" and lines["feature"] == "age (gam)"
    fig = ds.seegaan.plot()
    assert len(fig.axes) >= 10
    assert ds.seegaan.animate(tmp_path / "s.gif") == tmp_path / "s.gif"
    from seegaan.testing.cohorts import make_cohort

    cpath = tmp_path / "c.nc"
    make_cohort(n=10).to_netcdf(cpath, engine="netcdf4")
    with pytest.raises(SeegaanError, match="not a sequence dataset.*latent cohort"):
        open_sequence(cpath)
    with pytest.raises(SeegaanError, match="does not exist"):
        open_sequence(tmp_path / "missing.nc")
    (tmp_path / "bad.nc").write_text("not netcdf")
    with pytest.raises(SeegaanError, match="not a readable netCDF"):
        open_sequence(tmp_path / "bad.nc")


def test_accessor_is_registered_lazily():
    import subprocess
    import sys

    code = (
        "import xarray as xr, seegaan; ds = xr.Dataset(); "
        "assert not hasattr(ds, 'seegaan'); import sys; assert 'seegaan.viz.accessor' not in sys.modules; "
        "from seegaan.viz.accessor import open_sequence; assert hasattr(xr.Dataset(), 'seegaan')"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_summary_repr_html_has_the_numbers():
    from seegaan.viz.accessor import sequence_summary

    ds = tiny_sequence(K=4)
    ds.attrs["feature"] = "age <b>&"
    html_text = sequence_summary(ds)._repr_html_()
    per_step = ds["significant"].values.reshape(4, -1).sum(axis=1)
    assert "<table" in html_text and "<tr>" in html_text
    assert ", ".join(str(int(s)) for s in per_step) in html_text
    assert f"{int(per_step.sum())} of {3 * 12 * 10}" in html_text
    assert "age &lt;b&gt;&amp;" in html_text and "<b>&" not in html_text
