"""Training parts: per-image augmentation, adaptive p, style mixing, metrics, VGG16 loading."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from seegaan._internal.errors import SeegaanError  # noqa: E402
from seegaan.model.augment import AdaptiveP, augment  # noqa: E402
from seegaan.model.config import small_config  # noqa: E402
from seegaan.model.metrics import l2_per_image, psnr_per_image, ssim_per_image  # noqa: E402
from seegaan.model.networks import build_networks  # noqa: E402
from seegaan.model.perceptual import VGG16Perceptual, find_vgg_weights, load_vgg16  # noqa: E402
from seegaan.model.training import _mixed_latents  # noqa: E402


def _images(n=400, size=16):
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 1, size, size, generator=g) * 1.6 - 0.8
    return base.repeat(n, 1, 1, 1)


def test_augmentation_is_decided_per_image():
    x = _images()
    out = augment(x, 0.3, generator=torch.Generator().manual_seed(1))
    changed = (out - x).flatten(1).abs().amax(1) > 0
    # each image on its own: about 30% changed, the rest bit-identical (not all-or-nothing per batch)
    assert 0.2 < changed.float().mean().item() < 0.4
    assert torch.equal(out[~changed], x[~changed])
    assert out.abs().max() <= 1
    assert torch.equal(augment(x, 0.0), x)


def test_augmentation_is_differentiable():
    x = _images(8).requires_grad_(True)
    augment(x, 1.0, generator=torch.Generator().manual_seed(0)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_adaptive_p_moves_towards_target():
    ada = AdaptiveP(0.1, target=0.6, interval=1, kimg=0.01)
    ada.observe(torch.ones(10))  # discriminator sure of every real: overfitting -> raise p
    ada.update(1, 10)
    assert ada.p > 0.1
    high = ada.p
    ada.observe(-torch.ones(10))
    ada.update(2, 10)
    assert ada.p < high
    state = ada.state_dict()
    other = AdaptiveP()
    other.load_state_dict(state)
    assert other.state_dict() == state


def test_style_mixing_is_per_image():
    cfg = small_config(32, width=8, latent_size=16)
    nets = build_networks(cfg)
    torch.manual_seed(0)
    z1, z2 = torch.randn(200, 16), torch.randn(200, 16)
    w1, w2 = nets.mapping(z1), nets.mapping(z2)
    ws = _mixed_latents(nets, z1, z2, 0.5).detach()
    n_ws = nets.generator.n_ws
    assert ws.shape == (200, n_ws, 16)
    torch.testing.assert_close(ws[:, 0], w1.detach())  # the first layer always keeps w1
    mixed = (ws[:, -1] - w2.detach()).abs().amax(1) < 1e-6
    assert 0.35 < mixed.float().mean().item() < 0.65
    none = _mixed_latents(nets, z1, z2, 0.0).detach()
    torch.testing.assert_close(none, w1.detach()[:, None].expand(-1, n_ws, -1))


def test_metrics_known_values():
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    torch.testing.assert_close(ssim_per_image(x, x), torch.ones(3))
    y = x + 0.1
    torch.testing.assert_close(l2_per_image(x, y), torch.full((3,), 0.01))
    torch.testing.assert_close(psnr_per_image(x, y), torch.full((3,), 10 * math.log10(4 / 0.01)))
    noisy = x + 0.5 * torch.randn_like(x)
    assert (ssim_per_image(x, noisy) < 0.9).all()


def test_vgg16_weights_from_local_file_only(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    assert find_vgg_weights(None) is None  # nothing local: no download, no error
    with pytest.raises(SeegaanError, match="does not exist"):
        find_vgg_weights(tmp_path / "missing.pth")
    # a torchvision-style state dict (random weights, same names) loads and gives a usable loss
    model = VGG16Perceptual()
    state = {k: v for k, v in model.state_dict().items() if k.startswith("features.")}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # other torchvision entries are ignored
    hub = tmp_path / "hub_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(state, hub / "vgg16-397923af.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub_home"))
    found = find_vgg_weights(None)
    assert found is not None and found.name.startswith("vgg16-")
    loss = load_vgg16(found)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    assert loss(x, x).item() == 0
    assert loss(x, -x).item() > 0
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, bad)
    with pytest.raises(SeegaanError, match="not a VGG16"):
        load_vgg16(bad)


def test_training_uses_given_vgg_weights(tmp_path):
    from seegaan.model.checkpoint import read_checkpoint
    from seegaan.model.training import TrainConfig, train

    path = tmp_path / "vgg16-local.pth"
    torch.save({k: v for k, v in VGG16Perceptual().state_dict().items() if k.startswith("features.")}, path)
    rng = np.random.default_rng(0)
    data = (
        rng.uniform(-1, 1, (8, 1, 32, 32)).astype(np.float32),
        rng.uniform(-1, 1, (2, 1, 32, 32)).astype(np.float32),
    )
    messages = []
    result = train(
        data,
        out_dir=tmp_path / "run",
        model_config=small_config(32, width=8, latent_size=16, mapping_layers=2),
        config=TrainConfig(steps=1, batch_size=2),
        vgg_weights=path,
        log=messages.append,
    )
    assert any("perceptual: VGG16 from" in m for m in messages)
    assert "perceptual" in result.last_logs
    assert read_checkpoint(result.last)["train"]["perceptual"] == str(path)
