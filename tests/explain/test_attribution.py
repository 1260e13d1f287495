"""seegaan.explain.attribution: captum maps (shape, content, checks against autograd) and the Fig. 6 panel."""

import numpy as np
import pytest
import torch

from seegaan._internal.errors import SeegaanError
from seegaan.explain.attribution import attributions, plot_explanation
from seegaan.explain.cnn import load_model
from seegaan.explain.counterfactual import explain
from seegaan.testing import cnns as _cnns
from seegaan.testing.cohorts import make_cohort

pytest.importorskip("captum")


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(-1, 1, (3, 16, 16)).astype(np.float32)


def test_maps_have_the_image_shape_and_are_not_constant(images):
    maps = attributions(_cnns.TinyCNN(seed=1), images)
    assert list(maps) == ["vg", "gradcam", "ig"]
    for name, m in maps.items():
        assert m.shape == (3, 16, 16) and m.dtype == np.float32, name
        assert np.isfinite(m).all() and all(np.ptp(m[b]) > 0 for b in range(3)), name
    assert (maps["vg"] >= 0).all() and (maps["gradcam"] >= 0).all()  # |gradient|, ReLU'd Grad-CAM


def test_vanilla_gradient_is_the_absolute_autograd_gradient(images):
    net = _cnns.TinyCNN(seed=2).eval()
    x = torch.from_numpy(images[:, None]).requires_grad_(True)
    net(x)[:, 0].sum().backward()
    vg = attributions(net, images, methods=["vg"])["vg"]
    np.testing.assert_allclose(vg, x.grad.abs()[:, 0].numpy(), rtol=1e-5, atol=1e-7)


def test_integrated_gradients_add_up_to_the_change_from_the_baseline(images):
    net = _cnns.TinyCNN(seed=3).eval()
    ig = attributions(net, images, methods=["ig"], ig_steps=128)["ig"]
    model = load_model(net)
    change = model(images[:, None]) - model(-np.ones_like(images)[:, None])
    np.testing.assert_allclose(ig.sum(axis=(1, 2)), change, rtol=0.02, atol=1e-3)
    mean_base = images.mean(0)
    ig_mean = attributions(net, images, methods=["ig"], baseline=mean_base, ig_steps=128)["ig"]
    change = model(images[:, None]) - model(np.broadcast_to(mean_base, images.shape)[:, None])
    np.testing.assert_allclose(ig_mean.sum(axis=(1, 2)), change, rtol=0.02, atol=1e-3)


def test_gradcam_layer_by_name_and_through_a_resize(images):
    net = _cnns.TinyCNN(seed=1)
    first = attributions(net, images, methods=["gradcam"], layer="features.0")["gradcam"]
    last = attributions(net, images, methods=["gradcam"])["gradcam"]
    named_last = attributions(net, images, methods=["gradcam"], layer="features.2")["gradcam"]
    np.testing.assert_array_equal(last, named_last)  # the default is the last Conv2d
    assert not np.allclose(first, last)
    resized = attributions(load_model(net, input_size=32), images, methods=["gradcam", "vg"])
    assert resized["gradcam"].shape == resized["vg"].shape == (3, 16, 16)
    with pytest.raises(SeegaanError, match=r"no layer 'features.9'; its Conv2d layers: features.0, features.2"):
        attributions(net, images, methods=["gradcam"], layer="features.9")


def test_models_the_methods_cannot_use_are_refused(images, tmp_path):
    with pytest.raises(SeegaanError, match="need a torch nn.Module .* plain function"):
        attributions(_cnns.plain_mean, images)
    with pytest.raises(SeegaanError, match="has no Conv2d layer"):
        attributions(_cnns.region_mean, images, methods=["gradcam"])
    assert attributions(_cnns.region_mean, images, methods=["vg"])["vg"].shape == (3, 16, 16)
    path = tmp_path / "tiny.pt"
    with pytest.warns(DeprecationWarning):
        torch.jit.save(torch.jit.script(_cnns.TinyCNN()), str(path))
    with pytest.raises(SeegaanError, match="Grad-CAM needs forward hooks"):
        attributions(path, images, methods=["gradcam"])
    assert attributions(path, images, methods=["vg"])["vg"].shape == (3, 16, 16)  # gradients work on TorchScript
    with pytest.raises(SeegaanError, match="unknown attribution method 'cam'"):
        attributions(_cnns.TinyCNN(), images, methods=["cam"])
    with pytest.raises(SeegaanError, match="--layer is used by Grad-CAM only"):
        attributions(_cnns.TinyCNN(), images, methods=["vg"], layer="features.0")
    with pytest.raises(SeegaanError, match="IG baseline"):
        attributions(_cnns.TinyCNN(), images, methods=["ig"], baseline=np.zeros((4, 4)))


def test_panel_figure(tmp_path):
    import matplotlib

    c = make_cohort(n=30, seed=1)
    r = explain(
        c,
        "seegaan.testing.decoders:linear8",
        _cnns.region_mean,
        image_id="img0004",
        target=0.0,
        feature="sex",
        lambda_range=(-30, 30),
        tol=0.05,
        attributions=["vg", "ig"],
    )
    fig = r.plot(tmp_path / "panel.png")
    assert isinstance(fig, matplotlib.figure.Figure)
    assert (tmp_path / "panel.png").stat().st_size > 1000
    titled = [ax.get_title() for ax in fig.axes]
    assert "vanilla gradient" in titled and "integrated gradients" in titled and "Grad-CAM" not in titled
    assert sum(t.startswith("λ=") for t in titled) == 5
    assert plot_explanation(r.to_dataset()).axes  # also from a dataset (a saved file)
    assert (
        "matplotlib.pyplot" not in __import__("sys").modules or not __import__("matplotlib.pyplot").pyplot.get_fignums()
    )  # nothing left in pyplot's global state
