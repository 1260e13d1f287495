"""The fast version of the known-truth benchmark of explanations (seegaan.testing.explain_benchmark).

One seed, uncorrelated factors (r = 0), two explained images per CNN. The premise is checked first, by
intervention: the linear autoencoder draws both factors (R² >= 0.9), the size CNN responds to size and not to
density, the density CNN the other way. Then, where the factors are uncorrelated, the directions that follow
the CNN must put most of their change on the factor the CNN uses: a faithful method can lose this test.
"""

import numpy as np
import pytest

from seegaan.testing import explain_benchmark as bench


@pytest.fixture(scope="module")
def fast():
    pytest.importorskip("captum")
    return bench.run(
        rs=(0.0,),
        seeds=(0,),
        n_train=600,
        n_explain=200,
        n_images=2,
        epochs=6,
        methods=("mean", "gradient", "minimal", "global sequence", "ig"),
    )


def test_the_premise_holds_by_intervention(fast):
    _, facts = fast
    f = facts[0]
    assert f["r2"]["size"] >= 0.9 and f["r2"]["density"] >= 0.9
    rel = f["reliance"]
    assert rel["size"]["size"] > 5 * abs(rel["size"]["density"])
    assert rel["density"]["density"] > 5 * abs(rel["density"]["size"])
    assert rel["both"]["size"] > 0.3 and rel["both"]["density"] > 0.3


def test_at_r_0_the_cnn_directions_find_the_factor_the_cnn_uses(fast):
    table, _ = fast
    med = table.groupby(["cnn", "method"])["share"].median()
    for method in ("gradient", "minimal", "mean", "global sequence"):
        assert med[("size", method)] > 0.6, method
        assert med[("density", method)] < 0.3, method
    assert table["share"].dropna().between(0, 1).all()
    assert table["share"].isna().sum() <= 2  # a target a direction cannot reach within its λ range
    assert set(table["method"]) == {"mean", "gradient", "minimal", "global sequence", "ig"}


def test_the_share_score_recovers_a_known_mixture():
    t_s, t_d = bench.truth_maps(32)
    assert bench.share(t_s, t_s, t_d) == pytest.approx(1.0)
    assert bench.share(-2 * t_d, t_s, t_d) == pytest.approx(0.0, abs=1e-12)
    mix = 0.5 * t_s / np.linalg.norm(t_s) + 0.5 * t_d / np.linalg.norm(t_d)
    assert bench.share(mix, t_s, t_d) == pytest.approx(0.5, abs=1e-9)
