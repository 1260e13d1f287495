"""Reading single images: PNG/JPEG 8 and 16 bit, .npy, resize, scaling, and bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from seegaan import SeegaanError
from seegaan.data import image_id_from_path, read_image


def _gradient(h=40, w=30):
    y, x = np.mgrid[0:h, 0:w]
    return (x + 2 * y).astype(np.float64)


def test_png_8bit_minmax(tmp_path):
    g = _gradient()
    arr = np.round(g / g.max() * 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png", size=None)
    assert img.dtype == np.float32 and img.shape == (40, 30)
    np.testing.assert_allclose(img, arr / 255.0 * 2 - 1, atol=1e-6)


def test_png_16bit_keeps_precision(tmp_path):
    arr = (np.arange(64 * 64).reshape(64, 64) * 15).astype(np.uint16)  # values up to 61425
    Image.fromarray(arr).save(tmp_path / "b.png")
    with Image.open(tmp_path / "b.png") as im:
        assert im.mode.startswith("I")
    img = read_image(tmp_path / "b.png", size=None)
    np.testing.assert_allclose(img, arr / arr.max() * 2 - 1, atol=1e-6)
    assert len(np.unique(img)) == 64 * 64  # more than 256 levels survive


def test_jpeg_and_rgb_are_read_as_gray(tmp_path):
    g = np.round(_gradient() / _gradient().max() * 255).astype(np.uint8)
    Image.fromarray(np.stack([g] * 3, -1)).save(tmp_path / "c.jpg", quality=95)
    img = read_image(tmp_path / "c.jpg", size=None)
    assert img.shape == (40, 30)
    assert np.corrcoef(img.ravel(), g.ravel())[0, 1] > 0.99


def test_bicubic_resize_and_range(tmp_path):
    np.save(tmp_path / "d.npy", _gradient(100, 80))
    img = read_image(tmp_path / "d.npy", size=32)
    assert img.shape == (32, 32) and img.min() == -1.0 and img.max() == 1.0
    # bicubic of a linear ramp stays (nearly) linear and monotone along x
    assert np.all(np.diff(img[16]) > 0)
    ref = np.asarray(Image.fromarray(_gradient(100, 80).astype(np.float32)).resize((32, 32), Image.Resampling.BICUBIC))
    np.testing.assert_allclose(img, (ref - ref.min()) / (ref.max() - ref.min()) * 2 - 1, atol=1e-5)


def test_percentile_scaling_clips_outliers(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.normal(size=(50, 50))
    arr[0, 0] = 1000.0
    np.save(tmp_path / "e.npy", arr)
    mm = read_image(tmp_path / "e.npy", size=None)
    pc = read_image(tmp_path / "e.npy", size=None, scaling="percentile", percentiles=(1, 99))
    assert mm.std() < 0.05  # the outlier squashes min-max
    assert pc.std() > 0.3 and pc.min() == -1 and pc.max() == 1
    assert np.mean(pc == 1.0) == pytest.approx(0.01, abs=0.005)


def test_npy_shapes(tmp_path):
    np.save(tmp_path / "f.npy", _gradient()[None])
    assert read_image(tmp_path / "f.npy", size=None).shape == (40, 30)
    np.save(tmp_path / "g.npy", np.zeros((2, 3, 4)))
    with pytest.raises(SeegaanError, match=r"g\.npy.*2-D"):
        read_image(tmp_path / "g.npy")


def test_constant_image_is_an_error(tmp_path):
    Image.fromarray(np.full((20, 20), 7, np.uint8)).save(tmp_path / "const.png")
    with pytest.raises(SeegaanError, match=r"const\.png.*constant"):
        read_image(tmp_path / "const.png")


def test_truncated_png_is_an_error(tmp_path):
    Image.fromarray(np.round(np.random.default_rng(1).random((64, 64)) * 255).astype(np.uint8)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(SeegaanError, match=r"t\.png.*(unreadable|truncated)") as info:
        read_image(tmp_path / "t.png")
    assert "\n" not in str(info.value)


def test_garbage_and_empty_files(tmp_path):
    (tmp_path / "x.png").write_bytes(b"this is not a png at all")
    with pytest.raises(SeegaanError, match=r"x\.png"):
        read_image(tmp_path / "x.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(SeegaanError, match=r"empty\.png.*empty"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(SeegaanError, match="no such file"):
        read_image(tmp_path / "missing.png")


def test_nan_npy_and_bad_options(tmp_path):
    arr = _gradient()
    arr[3, 3] = np.nan
    np.save(tmp_path / "n.npy", arr)
    with pytest.raises(SeegaanError, match=r"n\.npy.*NaN"):
        read_image(tmp_path / "n.npy")
    np.save(tmp_path / "ok.npy", _gradient())
    with pytest.raises(SeegaanError, match="scaling"):
        read_image(tmp_path / "ok.npy", scaling="zscore")
    with pytest.raises(SeegaanError, match="size"):
        read_image(tmp_path / "ok.npy", size=0)
    with pytest.raises(SeegaanError, match="window"):
        read_image(tmp_path / "ok.npy", window=(0, -1))


def test_image_id_keeps_dots():
    assert image_id_from_path("a/CR.1.2.840.113.png") == "CR.1.2.840.113"
    assert image_id_from_path("a/1.2.3.4") == "1.2.3.4"
    assert image_id_from_path("x.DCM") == "x"


def _bomb_png(path, width=30000, height=30000):
    """A small PNG whose IHDR claims ``width x height`` pixels (CRC fixed): a decompression bomb header."""
    import struct
    import zlib

    Image.fromarray(np.arange(400, dtype=np.uint8).reshape(20, 20)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def test_decompression_bomb_is_refused_on_read_and_probe(tmp_path):
    from typer.testing import CliRunner

    from seegaan.cli.app import app
    from seegaan.data import load_dataset

    (tmp_path / "imgs").mkdir()
    bomb = _bomb_png(tmp_path / "imgs" / "bomb.png")
    with pytest.raises(SeegaanError, match="image too large: 30000x30000 pixels"):
        read_image(bomb)
    Image.fromarray(np.arange(400, dtype=np.uint8).reshape(20, 20)).save(tmp_path / "imgs" / "ok.png")
    data = load_dataset(tmp_path / "imgs", size=8)  # the probe (header only) catches it
    assert data.image_ids == ["ok"]
    assert "image too large: 30000x30000 pixels" in data.skipped[0][1]
    result = CliRunner().invoke(app, ["check-data", str(tmp_path / "imgs"), "--size", "8"])
    assert result.exit_code == 0, result.output
    assert "files skipped at loading (unreadable, bad header): 1" in result.output
    assert "bomb.png: image too large: 30000x30000 pixels" in result.output


def test_image_above_pillow_limit_is_refused_not_warned(tmp_path, monkeypatch):
    # between MAX_IMAGE_PIXELS and twice it Pillow only warns: refused all the same, at probe and read
    import warnings

    from seegaan.data import load_dataset

    Image.fromarray(np.arange(400, dtype=np.uint8).reshape(20, 20)).save(tmp_path / "a.png")
    Image.fromarray(np.arange(100, dtype=np.uint8).reshape(10, 10)).save(tmp_path / "b.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SeegaanError, match="image too large: 20x20 pixels"):
            read_image(tmp_path / "a.png")
        data = load_dataset(tmp_path, size=8)
    assert data.image_ids == ["b"] and data.counts["probe_failures"] == 1
