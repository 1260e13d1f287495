"""FID: Inception-v3 without torchvision, weights from local files only, Fréchet distance, training use."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
scipy_linalg = pytest.importorskip("scipy.linalg")

from seegaan._internal.errors import SeegaanError  # noqa: E402
from seegaan.model import small_config  # noqa: E402
from seegaan.model.checkpoint import read_checkpoint  # noqa: E402
from seegaan.model.fid import (  # noqa: E402
    InceptionV3,
    feature_statistics,
    fid,
    find_inception_weights,
    frechet_distance,
    load_fid_features,
    load_inception,
)
from seegaan.model.training import TrainConfig, train  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _weights_file(path, classes: int, *, aux: bool = False, seed: int = 0):
    """A state dict laid out like pytorch-fid's (1008 classes) or torchvision's (1000, with AuxLogits)."""
    torch.manual_seed(seed)
    model = InceptionV3(classes)
    state = dict(model.state_dict())
    for name, tensor in state.items():  # non-trivial batch-norm statistics
        if name.endswith("running_var"):
            state[name] = tensor.uniform_(0.5, 2.0)
        elif name.endswith("running_mean"):
            state[name] = tensor.normal_(0, 0.1)
    if aux:
        state["AuxLogits.conv0.conv.weight"] = torch.zeros(128, 768, 1, 1)
        state["AuxLogits.fc.weight"] = torch.zeros(classes, 768)
    torch.save(state, path)
    return path


def test_torchvision_layout_and_parameter_count():
    model = InceptionV3(1000)
    # torchvision's inception_v3 has 27,161,264 parameters, 3,326,696 of them in the auxiliary classifier
    assert sum(p.numel() for p in model.parameters()) == 23_834_568
    keys = set(model.state_dict())
    for key in (
        "Conv2d_1a_3x3.conv.weight",
        "Conv2d_1a_3x3.bn.running_var",
        "Mixed_5b.branch_pool.conv.weight",
        "Mixed_6e.branch7x7dbl_5.bn.bias",
        "Mixed_7c.branch3x3dbl_3b.conv.weight",
        "fc.weight",
    ):
        assert key in keys
    assert model.Mixed_5b.branch5x5_2.conv.weight.shape == (64, 48, 5, 5)
    assert model.Mixed_6b.branch7x7_2.conv.weight.shape == (128, 128, 1, 7)
    x = torch.zeros(1, 3, 299, 299)
    with torch.inference_mode():
        assert model.eval().features(x).shape == (1, 2048)


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((200, 12)) @ rng.standard_normal((12, 12))
    b = rng.standard_normal((150, 12)) @ rng.standard_normal((12, 12)) + 0.3
    (mu_a, s_a), (mu_b, s_b) = feature_statistics(a), feature_statistics(b)
    covmean = scipy_linalg.sqrtm(s_a @ s_b).real
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2 * covmean)
    assert frechet_distance(mu_a, s_a, mu_b, s_b) == pytest.approx(expected, rel=1e-8)
    assert fid(a, b) == pytest.approx(fid(b, a), rel=1e-8)
    assert abs(fid(a, a)) < 1e-8
    shift = np.full(12, 2.0)  # moving one set moves only the mean term
    assert fid(a, a + shift) == pytest.approx(np.sum(shift**2), rel=1e-8)
    with pytest.raises(SeegaanError, match="at least 2"):
        feature_statistics(a[:1])


def test_weights_only_from_local_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert find_inception_weights(None) is None  # nothing local: no download, no error
    with pytest.raises(SeegaanError, match="does not exist"):
        find_inception_weights(tmp_path / "missing.pth")
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    _weights_file(hub / "inception_v3_google-0cc3c7bd.pth", 1000, aux=True)
    assert find_inception_weights(None).name.startswith("inception_v3_google")
    _weights_file(hub / "pt_inception-2015-12-05-6726825d.pth", 1008)
    assert find_inception_weights(None).name.startswith("pt_inception")  # the FID graph is preferred


def test_pytorch_fid_and_torchvision_weights_load_with_their_graphs(tmp_path):
    tf_model = load_inception(_weights_file(tmp_path / "pt_inception.pth", 1008))
    tv_model = load_inception(_weights_file(tmp_path / "tv.pth", 1000, aux=True))
    assert tf_model.tf_graph and tf_model.Mixed_7c.pool == "max" and tf_model.Mixed_5b.tf_graph
    assert not tv_model.tf_graph and tv_model.Mixed_7c.pool == "avg"
    saved = torch.load(tmp_path / "pt_inception.pth", weights_only=True)
    torch.testing.assert_close(
        tf_model.state_dict()["Mixed_6c.branch1x1.bn.running_var"], saved["Mixed_6c.branch1x1.bn.running_var"]
    )
    # the same weights run through the two graphs give different features (the pooling differs)
    same = InceptionV3(1008).eval()  # the torchvision graph
    same.load_state_dict(tf_model.state_dict())
    x = torch.rand(2, 3, 299, 299) * 2 - 1
    with torch.inference_mode():
        assert not torch.allclose(tf_model.features(x), same.features(x))


def test_bad_weights_are_refused(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(SeegaanError, match="cannot read Inception weights"):
        load_inception(tmp_path / "junk.pth")
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "vgg.pth")
    with pytest.raises(SeegaanError, match="not an Inception-v3 state dict"):
        load_inception(tmp_path / "vgg.pth")
    state = InceptionV3(1000).state_dict()
    state.pop("Mixed_7c.branch_pool.conv.weight")
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(SeegaanError, match="not an Inception-v3 state dict"):
        load_inception(tmp_path / "partial.pth")


def test_features_resize_and_repeat_gray_images(tmp_path):
    features = load_fid_features(_weights_file(tmp_path / "w.pth", 1008), batch_size=3)
    assert "tensorflow-fid" in features.source
    gray = np.random.default_rng(0).uniform(-1, 1, (4, 1, 32, 32)).astype(np.float32)
    out = features(gray)
    assert out.shape == (4, 2048) and out.dtype == np.float64
    np.testing.assert_allclose(features(np.repeat(gray, 3, axis=1)), out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(features(gray[2:3]), out[2:3], rtol=1e-4, atol=1e-5)  # batching
    with pytest.raises(SeegaanError, match="shape"):
        features(gray[:, 0])


@pytest.mark.slow
def test_training_selects_best_checkpoint_by_fid(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cached weights found by accident
    rng = np.random.default_rng(0)
    data = (
        rng.uniform(-1, 1, (16, 1, 32, 32)).astype(np.float32),
        rng.uniform(-1, 1, (4, 1, 32, 32)).astype(np.float32),
    )
    weights = _weights_file(tmp_path / "pt_inception-2015-12-05-test.pth", 1008)
    messages = []
    cfg = small_config(32, width=8, latent_size=16, mapping_layers=2)
    result = train(
        data,
        out_dir=tmp_path / "run",
        model_config=cfg,
        fid_weights=weights,
        log=messages.append,
        config=TrainConfig(steps=3, batch_size=2, checkpoint_every=1, val_every=1, val_images=4),
    )
    assert any(m.startswith("FID: Inception-v3 from") for m in messages)
    fids = [h["val_fid"] for h in result.history]
    assert len(fids) == 3 and all(np.isfinite(fids)) and min(fids) > 0
    last = read_checkpoint(result.last)["train"]
    assert last["selection_metric"] == "val_fid" and str(weights) in last["fid"]
    assert last["best_metric"] == pytest.approx(min(fids))
    assert read_checkpoint(result.best)["train"]["step"] == 1 + int(np.argmin(fids))
    # resuming without the weights switches to L2 selection and says so
    messages.clear()
    train(
        data,
        out_dir=tmp_path / "run",
        model_config=cfg,
        log=messages.append,
        config=TrainConfig(steps=4, batch_size=2, checkpoint_every=1, val_every=1, val_images=4),
    )
    assert any("FID: none" in m for m in messages) and any("new best.pt" in m for m in messages)
    assert read_checkpoint(tmp_path / "run" / "last.pt")["train"]["selection_metric"] == "val_l2"
