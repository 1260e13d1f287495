"""seegaan.decoder: resolving decoder specs (module:attr, callable, checkpoint) and checking the images."""

from __future__ import annotations

import numpy as np
import pytest

from seegaan._internal.errors import SeegaanError
from seegaan.decoder import Decoder, load_decoder
from seegaan.testing.decoders import linear8

W = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)


def test_module_attr_spec():
    dec = load_decoder("seegaan.testing.decoders:linear8")
    assert isinstance(dec, Decoder) and dec.fn is linear8
    out = dec(W)
    assert out.shape == (3, 8, 8) and out.dtype == np.float32
    np.testing.assert_array_equal(out, linear8(W))
    # the identity names the spec and the hash of the module's source
    assert dec.identity.startswith("seegaan.testing.decoders:linear8 (sha256:")


def test_dotted_attribute():
    dec = load_decoder("seegaan.testing.decoders:linear8.__call__")
    np.testing.assert_array_equal(dec(W), linear8(W))


def test_callable_and_decoder_objects():
    dec = load_decoder(linear8)
    assert dec.identity == "seegaan.testing.decoders:make_linear.<locals>.decode"
    np.testing.assert_array_equal(dec(W), linear8(W))
    assert load_decoder(dec) is dec

    class Named:
        identity = "my decoder v1"

        def __call__(self, w):
            return linear8(w)

    assert load_decoder(Named()).identity == "my decoder v1"


def test_outputs_are_normalised():
    """Torch tensors, float64 and (B, 1, H, W) come back as float32 (B, H, W); latents become float32."""
    seen = []

    def channel_first(w):
        seen.append(w.dtype)
        return linear8(w).astype(np.float64)[:, None]

    out = load_decoder(channel_first)(W.astype(np.float64))
    assert out.shape == (3, 8, 8) and out.dtype == np.float32 and seen == [np.float32]
    torch = pytest.importorskip("torch")
    out = load_decoder(lambda w: torch.from_numpy(linear8(w)).requires_grad_(True))(W)
    assert isinstance(out, np.ndarray) and out.shape == (3, 8, 8)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("seegaan.testing.decoders:wrong_shape", "returned shape"),
        ("seegaan.testing.decoders:nan_images", "NaN or inf"),
        ("seegaan.testing.decoders:linear16", "failed on latents"),  # 16 latents expected, 8 given
    ],
)
def test_bad_outputs_are_one_clear_error(spec, message):
    with pytest.raises(SeegaanError, match=message):
        load_decoder(spec)(W)


def test_too_few_or_many_images_and_bad_latents():
    with pytest.raises(SeegaanError, match="returned shape"):
        load_decoder(lambda w: linear8(w)[:1])(W)
    with pytest.raises(SeegaanError, match="2-D"):
        load_decoder(linear8)(W[0])


def test_decoder_errors_pass_through():
    def refuses(w):
        raise SeegaanError("this decoder says no")

    with pytest.raises(SeegaanError, match="says no"):
        load_decoder(refuses)(W)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("seegaan.testing.decoders:missing", "no attribute"),
        ("no_such_module_xyz:fn", "cannot import"),
        ("seegaan.testing.decoders:", "neither a checkpoint"),
        ("seegaan.testing.decoders:make_linear.__doc__", "not callable"),
        ("missing_file.pt", "does not exist"),
        ("plain_name", "does not exist"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(SeegaanError, match=message):
        load_decoder(spec)


def test_bad_spec_types():
    with pytest.raises(SeegaanError, match="checkpoint path"):
        load_decoder(42)


def test_a_file_that_is_not_a_checkpoint(tmp_path):
    pytest.importorskip("torch")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(SeegaanError, match="cannot read"):
        load_decoder(junk)


@pytest.fixture
def checkpoint(tmp_path):
    pytest.importorskip("torch")
    from seegaan.model import build_networks, small_config
    from seegaan.model.checkpoint import networks_state, save_checkpoint

    cfg = small_config(32, width=8, latent_size=8)
    return save_checkpoint(tmp_path / "tiny.pt", cfg, networks_state(build_networks(cfg, seed=0), None))


def test_checkpoint_path(checkpoint):
    from seegaan.model import load_checkpoint_decoder

    dec = load_decoder(checkpoint)
    assert dec.identity == load_checkpoint_decoder(checkpoint).identity
    assert "sha256:" in dec.identity and dec.fn.batch_invariant
    out = dec(W)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32
    np.testing.assert_array_equal(out, load_checkpoint_decoder(checkpoint)(W))
    assert load_decoder(str(checkpoint)).identity == dec.identity  # a str path too


def test_checkpoint_keywords_go_to_the_checkpoint_loader(checkpoint):
    assert load_decoder(checkpoint, noise_mode="none").fn.noise_mode == "none"
    with pytest.raises(SeegaanError, match="noise_mode"):
        load_decoder(checkpoint, noise_mode="sometimes")
