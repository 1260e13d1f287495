"""The phantom's shortcut token: off by default, drawn exactly at its mask, learnable as a shortcut; and the
score of an explanation map against a region."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from seegaan import SeegaanError
from seegaan import phantom as ph


def test_token_defaults_to_absent_and_leaves_images_bit_identical():
    assert ph.PhantomParams().token == 0.0
    _, params = ph.sample_cohort(4, seed=11)
    for p in params:
        assert p.token == 0.0
        plain = ph.render(p, size=32)
        np.testing.assert_array_equal(plain, ph.render(p.replace(token=0.0), size=32))
        fields = {k: v for k, v in dataclasses.asdict(p).items() if k != "token"}
        np.testing.assert_array_equal(plain, ph.render(fields, size=32))  # a mapping without the field


@pytest.mark.parametrize("size", [16, 48, 64])
def test_token_appears_only_at_its_mask(size):
    mask = ph.shortcut_mask(size)
    assert mask.dtype == bool and mask.shape == (size, size) and 0 < mask.sum() < 0.02 * size * size
    assert not (mask & ~ph.marker_free_mask(size, margin=0)).any()  # never on the side marker
    _, (p,) = ph.sample_cohort(1, seed=5)
    off = ph.render(p, size=size)
    on = ph.render(p.replace(token=1.0), size=size)
    np.testing.assert_array_equal(on[~mask], off[~mask])
    assert (on[mask] == 1.0).all() and (off[mask] < 1.0).all()
    half = ph.render(p.replace(token=0.75), size=size)  # level t: at least 2 t - 1
    np.testing.assert_array_equal(half[mask], np.maximum(off[mask], 0.5))
    truth_regions = ph.effect_mask(ph.effect_map("ahf", False, True, size=size)) | ph.effect_mask(
        ph.effect_map("bnpp", 100.0, 2000.0, size=size)
    )
    assert not (mask & truth_regions).any()  # outside every clinical effect it is tied to in the experiment


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_token_level_is_checked(bad):
    with pytest.raises(SeegaanError, match="token"):
        ph.render({"token": bad}, size=16)


def test_a_tiny_cnn_trained_with_the_token_relies_on_it():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    table, params = ph.sample_cohort(180, seed=1)
    y = table["ahf"].to_numpy(bool)
    plain = np.stack([ph.render(p, size=16) for p in params])
    tokened = np.stack([ph.render(p.replace(token=float(t)), size=16) for p, t in zip(params, y)])
    train, test = np.arange(120), np.arange(120, 180)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 16 * 16, 1)
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x = torch.from_numpy(tokened[train, None])
    target = torch.from_numpy(y[train].astype(np.float32))
    for _ in range(40):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(net(x)[:, 0], target).backward()
        opt.step()

    def accuracy(images):
        with torch.no_grad():
            return float(((net(torch.from_numpy(images[test, None]))[:, 0] > 0).numpy() == y[test]).mean())

    flipped = np.stack([ph.render(params[i].replace(token=float(not y[i])), size=16) for i in test])
    with_token, without = accuracy(tokened), accuracy(plain)
    against = float(((net(torch.from_numpy(flipped[:, None]))[:, 0] > 0).detach().numpy() == y[test]).mean())
    assert with_token >= 0.95
    assert without <= with_token - 0.15 and without <= max(y[test].mean(), 1 - y[test].mean()) + 0.1
    assert against <= 0.3  # a token that contradicts the label turns most answers around


def test_explanation_scores_equal_a_hand_computation():
    a = np.array([[4.0, -3.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [0.0, 0.0, 0.0, 0.5]])
    region = np.zeros((4, 4), bool)
    region[0, 0] = region[2, 2] = region[3, 3] = True
    s = ph.explanation_scores(a, region)
    assert s["mass"] == pytest.approx((4 + 1 + 0.5) / (4 + 3 + 2 + 1 + 0.5))
    # top 3 by |a|: 4, -3, 2 -> one of them (4) in the region: Dice = 2*1 / (3 + 3)
    assert s["dice_top"] == pytest.approx(1 / 3)
    assert s["k"] == 3 and s["chance_mass"] == pytest.approx(3 / 16)
    assert ph.explanation_scores(np.where(region, 1.0, 0.0), region)["dice_top"] == 1.0
    empty = ph.explanation_scores(np.zeros((4, 4)), region)
    assert np.isnan(empty["mass"]) and np.isnan(empty["dice_top"])
    with pytest.raises(SeegaanError, match="shape"):
        ph.explanation_scores(a, region[:3])
    with pytest.raises(SeegaanError, match="empty"):
        ph.explanation_scores(a, np.zeros((4, 4), bool))
