"""``evaluate``: per-image L2/PSNR/SSIM equal a direct computation; panel, CSV, CLI summary."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from seegaan.cli.app import app  # noqa: E402


def _checkpoint(path, seed=0):
    """An untrained tiny checkpoint (weights from ``seed``): enough to test the arithmetic."""
    from seegaan.model import build_networks, small_config
    from seegaan.model.checkpoint import networks_state, save_checkpoint

    cfg = small_config(32, width=8, latent_size=16, mapping_layers=2)
    nets = build_networks(cfg, seed=seed)
    return save_checkpoint(path, cfg, networks_state(nets, None))


def _images(folder, n=5, side=16):
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(1)
    for k in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8)).save(folder / f"img{k}.png")
    return folder


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_metrics_equal_a_direct_computation(tmp_path):
    import pandas as pd

    from seegaan.data import load_dataset
    from seegaan.model import load_checkpoint_decoder, load_encoder
    from seegaan.model.metrics import ssim_per_image
    from seegaan.model.tasks import evaluate_images

    ckpt = _checkpoint(tmp_path / "c.pt")
    folder = _images(tmp_path / "imgs")
    result = evaluate_images(ckpt, folder, out_csv=tmp_path / "per.csv", panel=tmp_path / "panel.png", worst=2)
    data = load_dataset(folder, size=32)
    x = data.array()
    y = load_checkpoint_decoder(ckpt)(load_encoder(ckpt)(x))[:, None]
    l2 = ((x.astype(np.float64) - y) ** 2).reshape(len(x), -1).mean(1)
    psnr = 10 * np.log10(4.0 / l2)
    ssim = ssim_per_image(torch.from_numpy(y), torch.from_numpy(x)).numpy()
    got = result.per_image.set_index("image_id").loc[data.image_ids]
    np.testing.assert_allclose(got["l2"], l2, rtol=1e-5)
    np.testing.assert_allclose(got["psnr"], psnr, rtol=1e-5)
    np.testing.assert_allclose(got["ssim"], ssim, rtol=1e-6)
    assert list(result.per_image["l2"]) == sorted(result.per_image["l2"], reverse=True)  # worst first
    assert result.panel_ids == list(result.per_image["image_id"][:2])
    csv = pd.read_csv(tmp_path / "per.csv", dtype={"split": str}, keep_default_na=False)
    np.testing.assert_allclose(csv["l2"], result.per_image["l2"])
    np.testing.assert_allclose(result.overall().loc["psnr", "mean"], psnr.mean(), rtol=1e-5)
    from PIL import Image

    width, height = Image.open(tmp_path / "panel.png").size
    assert width > 900 and height > 600  # 3 columns and 2 rows of legible (~3.4 in) panels


def test_ssim_follows_its_documented_formula_on_constant_images():
    """Constant images a and b: no variance, so SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 * 2)^2."""
    from seegaan.model.metrics import ssim_per_image

    a, b = 0.3, -0.2
    x = torch.full((1, 1, 16, 16), a)
    y = torch.full((1, 1, 16, 16), b)
    c1 = (0.01 * 2) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert float(ssim_per_image(x, y)[0]) == pytest.approx(expected, rel=1e-4)
    assert float(ssim_per_image(x, x)[0]) == pytest.approx(1.0, abs=1e-6)
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        return
    rng = np.random.default_rng(0)
    u = rng.uniform(-1, 1, (32, 32)).astype(np.float32)
    v = np.clip(u + rng.normal(0, 0.2, u.shape), -1, 1).astype(np.float32)
    ours = float(ssim_per_image(torch.from_numpy(u)[None, None], torch.from_numpy(v)[None, None])[0])
    theirs = structural_similarity(u, v, data_range=2.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ours == pytest.approx(theirs, abs=2e-2)  # skimage averages over a cropped 'same' window


def test_evaluate_command_prints_summary_and_selects_by_id(tmp_path):
    ckpt = _checkpoint(tmp_path / "c.pt")
    folder = _images(tmp_path / "imgs")
    result = CliRunner().invoke(
        app, ["evaluate", "--checkpoint", str(ckpt), "--images", str(folder), "--ids", "img1,img3", "--threads", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "2 images given by id" in result.stdout and "psnr" in result.stdout and "ssim" in result.stdout
    assert "images: all" in result.output
    bad = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(ckpt), "--images", str(folder), "--ids", "img9"])
    assert bad.exit_code == 2 and "'img9' is not among" in bad.output
    twice = CliRunner().invoke(
        app, ["evaluate", "--checkpoint", str(ckpt), "--images", str(folder), "--ids", "img1,img1"]
    )
    assert twice.exit_code == 2 and "'img1' is given more than once in --ids" in twice.output
