"""Networks of the style-based adversarial autoencoder: sizes, layers, determinism."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from seegaan._internal.errors import SeegaanError  # noqa: E402
from seegaan.model import ModelConfig, build_networks, parameter_counts  # noqa: E402
from seegaan.model.checkpoint import networks_state, save_checkpoint  # noqa: E402
from seegaan.model.config import small_config  # noqa: E402
from seegaan.model.inference import load_checkpoint_decoder, load_encoder  # noqa: E402
from seegaan.model.layers import EqualizedConv2d, EqualizedLinear, ModulatedConv2d  # noqa: E402
from seegaan.model.networks import conv_flops_per_image  # noqa: E402

REFERENCE_COUNTS = {
    256: dict(mapping=2_101_248, generator=22_661_204, encoder=16_694_784, discriminator=16_437_249),
    128: dict(mapping=2_101_248, generator=17_153_105, encoder=11_713_024, discriminator=11_455_489),
    64: dict(mapping=2_101_248, generator=11_645_006, encoder=6_862_336, discriminator=6_604_801),
}


@pytest.mark.parametrize("size", [64, 128, 256])
def test_parameter_counts_equal_reference(size):
    assert parameter_counts(ModelConfig(image_size=size)) == REFERENCE_COUNTS[size]


def test_paper_config_structure():
    cfg = ModelConfig(image_size=256)
    assert cfg.generator_channels == [512, 512, 512, 512, 256, 128, 64]
    assert cfg.encoder_channels == [32, 64, 128, 256, 512, 512, 512]
    assert cfg.n_style_layers == 13
    assert abs(conv_flops_per_image(cfg) / 1e9 - 56.26) < 0.05
    with torch.device("meta"):
        nets = build_networks(cfg)
    assert len(nets.generator.blocks) == 7
    assert len(nets.encoder.blocks) == 6
    assert sum(len(b.layers) for b in nets.generator.blocks) == 13


@pytest.mark.parametrize("size", [32, 1024])
def test_other_sizes_build(size):
    counts = parameter_counts(ModelConfig(image_size=size))
    assert all(v > 0 for v in counts.values())


@pytest.mark.parametrize("bad", [48, 16, 2048])
def test_bad_image_size_is_refused(bad):
    with pytest.raises(SeegaanError, match="power of two"):
        ModelConfig(image_size=bad)


def test_modulated_conv_equals_per_sample_reference():
    torch.manual_seed(0)
    for demod, k in [(True, 3), (False, 1)]:
        layer = ModulatedConv2d(6, 5, k, 8, demodulate=demod)
        x, w = torch.randn(3, 6, 9, 9), torch.randn(3, 8)
        out = layer(x, w)
        weights = layer.modulated_weight(w)
        ref = torch.cat([torch.nn.functional.conv2d(x[i : i + 1], weights[i], padding=k // 2) for i in range(3)])
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        if demod:  # demodulated weights have unit norm per output channel
            norms = weights.square().sum(dim=(2, 3, 4))
            torch.testing.assert_close(norms, torch.ones_like(norms), rtol=1e-5, atol=1e-5)


def test_equalized_lr_effective_scale():
    torch.manual_seed(0)
    lin = EqualizedLinear(400, 300, lr_mul=0.01, gain=1.2, bias_init=1.0)
    # stored weights ~ N(0, 1/lr_mul); effective weights ~ N(0, gain^2 / fan_in)
    assert abs(lin.weight.std().item() - 100.0) < 2.0
    effective = lin.weight * lin.scale
    assert abs(effective.std().item() - 1.2 / math.sqrt(400)) < 0.002
    # bias stored / lr_mul, effective init 1
    out = lin(torch.zeros(1, 400))
    torch.testing.assert_close(out, torch.ones(1, 300))
    conv = EqualizedConv2d(16, 8, 3, gain=1.2)
    assert conv.scale == pytest.approx(1.2 / math.sqrt(16 * 9))
    # unit-variance input keeps a variance of about gain^2 through the layer
    y = conv(torch.randn(64, 16, 8, 8))[:, :, 1:-1, 1:-1]
    assert abs(y.var().item() - 1.2**2) < 0.2


def test_style_bias_and_noise_init():
    cfg = small_config(64, width=8, latent_size=16)
    nets = build_networks(cfg)
    layer = nets.generator.blocks[1].layers[0]
    torch.testing.assert_close(layer.conv.affine(torch.zeros(1, 16)), torch.ones(1, layer.conv.weight.shape[1]))
    strengths = [m.noise.strength for b in nets.generator.blocks for m in b.layers]
    assert len(strengths) == cfg.n_style_layers
    assert all(s.item() == 0 for s in strengths)


def test_forward_shapes_and_range():
    cfg = small_config(64, width=8, latent_size=16)
    nets = build_networks(cfg)
    w = nets.mapping(torch.randn(2, 16))
    img = nets.generator(w)
    assert img.shape == (2, 1, 64, 64) and img.abs().max() <= 1
    mixed = nets.generator(w[:, None].expand(-1, nets.generator.n_ws, -1))
    torch.testing.assert_close(mixed, img)  # per-layer copies of one w = that w (noise strength 0)
    assert nets.encoder(img).shape == (2, 16)
    assert nets.discriminator(img).shape == (2,)


def test_minibatch_std_changes_discriminator_only_through_batch():
    cfg = small_config(32, width=8, latent_size=16)
    nets = build_networks(cfg)
    x = torch.randn(4, 1, 32, 32)
    d_all = nets.discriminator(x)
    d_first = nets.discriminator(torch.cat([x[:1], x[:1] * 0 + 0.5 * x[1:2], x[2:]]))
    assert not torch.allclose(d_all[2:], d_first[2:])  # batch statistics feed every sample
    e_all = nets.encoder(x)
    torch.testing.assert_close(e_all[:1], nets.encoder(x[:1]), rtol=1e-4, atol=1e-5)


@pytest.fixture()
def tiny_checkpoint(tmp_path):
    cfg = small_config(32, width=8, latent_size=16)
    nets = build_networks(cfg, seed=3)
    with torch.no_grad():
        for name, p in nets.generator.named_parameters():
            if name.endswith("strength"):
                p.fill_(0.5)  # make the noise visible
    return save_checkpoint(tmp_path / "tiny.pt", cfg, networks_state(nets, None)), cfg


def test_fixed_noise_decoding_is_deterministic_and_batch_independent(tiny_checkpoint):
    path, cfg = tiny_checkpoint
    dec = load_checkpoint_decoder(path)
    w = np.random.default_rng(1).standard_normal((7, 16)).astype(np.float32)
    batch = dec(w)
    assert batch.shape == (7, 32, 32) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, dec(w))
    alone = np.stack([dec(w[i : i + 1])[0] for i in range(7)])
    np.testing.assert_array_equal(batch, alone)  # bitwise, however the latents are batched
    # a fresh load gives the same bits (noise maps are saved buffers)
    np.testing.assert_array_equal(batch, load_checkpoint_decoder(path)(w))
    # random noise differs between calls; the noise strength is non-zero here
    rand = load_checkpoint_decoder(path, noise_mode="random")
    assert np.abs(rand(w) - rand(w)).max() > 0
    assert dec.latent_size == 16 and dec.image_size == 32
    assert str(path.resolve()) in dec.identity and "sha256:" in dec.identity


def test_encoder_loader(tiny_checkpoint):
    path, cfg = tiny_checkpoint
    enc = load_encoder(path)
    x = np.random.default_rng(0).uniform(-1, 1, (3, 1, 32, 32)).astype(np.float32)
    w = enc(x)
    assert w.shape == (3, 16) and w.dtype == np.float32
    with pytest.raises(SeegaanError, match="shape"):
        enc(x[:, :, :16])


def test_bad_checkpoints_are_refused(tmp_path, tiny_checkpoint):
    path, cfg = tiny_checkpoint
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(SeegaanError, match="cannot read"):
        load_checkpoint_decoder(junk)
    payload = torch.load(path, weights_only=True)
    payload["version"] = 99
    newer = tmp_path / "newer.pt"
    torch.save(payload, newer)
    with pytest.raises(SeegaanError, match="newer"):
        load_checkpoint_decoder(newer)
    payload["version"] = 1
    payload["config"]["generator_max_channels"] = 16  # config no longer matches the weights
    other = tmp_path / "other.pt"
    torch.save(payload, other)
    with pytest.raises(SeegaanError, match="another architecture"):
        load_checkpoint_decoder(other)
    with pytest.raises(SeegaanError, match="does not exist"):
        load_checkpoint_decoder(tmp_path / "missing.pt")


def test_cli_model_info_json():
    from typer.testing import CliRunner

    from seegaan.cli.app import app

    result = CliRunner().invoke(app, ["model", "info", "--image-size", "256", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {k: data["parameters"][k] for k in REFERENCE_COUNTS[256]} == REFERENCE_COUNTS[256]
    text = CliRunner().invoke(app, ["model", "info", "--image-size", "64"])
    assert text.exit_code == 0 and "11,645,006" in text.stdout
    bad = CliRunner().invoke(app, ["model", "info", "--image-size", "100"])
    assert bad.exit_code == 2


@pytest.mark.parametrize("channels", [1, 3])
def test_inference_path_equals_training_path(channels):
    """The in-place path used without gradients gives the same images as the autograd path, with one w
    for all layers and with per-layer w (style mixing), for gray and colour images."""
    cfg = replace(small_config(32, width=8, latent_size=16), channels=channels)
    gen = build_networks(cfg, seed=1).generator
    with torch.no_grad():
        for name, p in gen.named_parameters():
            if name.endswith("strength"):
                p.fill_(0.7)
    for mode, w in (
        ("const", torch.randn(3, 16)),
        ("none", torch.randn(3, 16)),
        ("const", torch.randn(3, gen.n_ws, 16)),
    ):
        with_grad = gen(w, noise_mode=mode)
        with torch.inference_mode():
            fused = gen(w, noise_mode=mode)
        gen.use_channels_last(True)  # (outside inference mode: the weights stay usable for autograd)
        with torch.inference_mode():
            fused_cl = gen(w, noise_mode=mode)
        gen.use_channels_last(False)
        torch.testing.assert_close(fused, with_grad.detach(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fused_cl, with_grad.detach(), rtol=1e-5, atol=1e-5)


def test_inference_cache_follows_weight_changes():
    cfg = small_config(32, width=8, latent_size=16)
    gen = build_networks(cfg, seed=1).generator
    w = torch.randn(2, 16)
    with torch.no_grad():
        before = gen(w, noise_mode="const")
        gen.blocks[1].layers[0].conv.weight.mul_(1.5)  # in-place update (as an optimiser step)
        gen.blocks[1].layers[0].bias.add_(0.3)
        gen.blocks[1].layers[0].noise.strength.fill_(0.5)
        after = gen(w, noise_mode="const")
    reference = gen(w, noise_mode="const").detach()  # autograd path: no cache
    assert (after - before).abs().max() > 1e-3
    torch.testing.assert_close(after, reference, rtol=1e-5, atol=1e-5)
    other = build_networks(cfg, seed=2).generator
    gen.load_state_dict(other.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(gen(w, noise_mode="const"), other(w, noise_mode="const"))


def test_three_channel_model(tmp_path):
    from dataclasses import replace

    cfg = replace(small_config(32, width=8, latent_size=16), channels=3)
    nets = build_networks(cfg)
    img = nets.generator(torch.randn(2, 16))
    assert img.shape == (2, 3, 32, 32)
    assert nets.encoder(img).shape == (2, 16) and nets.discriminator(img).shape == (2,)
    path = save_checkpoint(tmp_path / "rgb.pt", cfg, networks_state(nets, None))
    assert load_checkpoint_decoder(path)(np.zeros((2, 16), np.float32)).shape == (2, 32, 32, 3)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="the malloc setting is glibc's"
)
@pytest.mark.parametrize("setting, expected", [("1", "True"), ("0", "False")])
def test_decoder_allocator_setting_can_be_turned_off(setting, expected):
    code = "from seegaan.model import keep_freed_memory as k; a = k(); b = k(); assert a == b; print(a)"
    env = {**os.environ, "SEEGAAN_KEEP_FREED_MEMORY": setting}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def test_loading_a_decoder_leaves_the_allocator_alone(tiny_checkpoint):
    """Only an explicit keep_freed_memory() (the CLI's) changes malloc's settings, never a library call."""
    path, _ = tiny_checkpoint
    code = (
        "import numpy as np; from seegaan.model import load_checkpoint_decoder; "
        "from seegaan.model import allocator; "
        f"load_checkpoint_decoder({str(path)!r})(np.zeros((1, 16), np.float32)); print(allocator._TUNED)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_style_layer_inference_equals_autograd_path():
    from seegaan.model.layers import StyleLayer

    layer = StyleLayer(6, 5, 8, 16)
    with torch.no_grad():
        layer.noise.strength.fill_(0.5)
    x, w = torch.randn(3, 6, 16, 16), torch.randn(3, 8)
    expected = layer(x, w, "const")
    with torch.no_grad():
        got = layer(x, w, "const")
    torch.testing.assert_close(got, expected.detach(), rtol=1e-5, atol=1e-5)
