"""Corrections of p-values: R's p.adjust values, shape kept, the family respected, feasibility warnings."""

import numpy as np
import pytest

import seegaan
from seegaan._internal.errors import SeegaanError
from seegaan.stats import PValues, SeegaanWarning, as_correction, correct_pvalues, feasibility_warning
from seegaan.testing.cohorts import make_cohort
from seegaan.testing.decoders import linear8

P = np.array([0.01, 0.02, 0.03, 0.04, 0.05])
# p.adjust(c(0.01, 0.02, 0.03, 0.04, 0.05), method) in R
R_ADJUSTED = {
    "none": P,
    "bonferroni": [0.05, 0.10, 0.15, 0.20, 0.25],
    "holm": [0.05, 0.08, 0.09, 0.09, 0.09],
    "fdr_bh": [0.05] * 5,
    "fdr_by": [0.05 * (1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5)] * 5,
}


@pytest.mark.parametrize("method", sorted(R_ADJUSTED))
def test_adjusted_pvalues_match_r(method):
    adjusted, reject = correct_pvalues(P, method, alpha=0.05)
    np.testing.assert_allclose(adjusted, R_ADJUSTED[method], rtol=1e-12)
    np.testing.assert_array_equal(reject, adjusted <= 0.05)


@pytest.mark.parametrize("method", ["bonferroni", "holm", "fdr_bh"])
def test_shape_is_kept_and_only_the_family_counts(method):
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.2, size=(3, 4, 5))
    mask = np.zeros(p.shape, bool)
    mask[1] = True
    adjusted, reject = correct_pvalues(p, method, mask=mask)
    assert adjusted.shape == p.shape and reject.shape == p.shape
    assert np.all(adjusted[~mask] == 1) and not reject[~mask].any()
    np.testing.assert_allclose(adjusted[1], correct_pvalues(p[1], method)[0].reshape(4, 5))
    assert np.all(adjusted >= p - 1e-15)


def test_bad_input_is_refused():
    with pytest.raises(SeegaanError, match="unknown correction"):
        correct_pvalues(P, "sidak")
    with pytest.raises(SeegaanError, match="alpha"):
        correct_pvalues(P, "holm", alpha=1.5)
    with pytest.raises(ValueError, match="within"):
        correct_pvalues(P + 1, "holm")
    with pytest.raises(SeegaanError, match="unknown correction"):
        PValues("maxt")


def test_pvalues_options_object():
    p = np.full((2, 3), 0.01)
    family = np.ones(p.shape, bool)
    adjusted, significant, messages = PValues("bonferroni").adjust(p, family, alpha=0.05, n_perm=99)
    np.testing.assert_allclose(adjusted, 0.06)
    assert not significant.any() and messages[0].startswith("bonferroni: with 99 permutations")
    assert PValues("bonferroni").adjust(p, family, alpha=0.05, n_perm=999)[2] == ()
    assert as_correction("holm") == PValues("holm") and PValues().name == "fdr_bh"
    assert feasibility_warning("none", 100, 99, 0.05) is None


def test_too_few_permutations_warn():
    interp = seegaan.interpolate(make_cohort(n=30), feature="age", steps=3)
    with pytest.warns(SeegaanWarning, match="nothing can be rejected"):
        seegaan.sequence(interp, linear8, n_perm=100, correction="bonferroni")
    with pytest.warns(SeegaanWarning, match="at least"):
        seegaan.sequence(interp, linear8, n_perm=100, correction="fdr_bh")
    with pytest.warns(SeegaanWarning, match="nothing can be significant"):
        seegaan.sequence(interp, linear8, n_perm=10, correction="maxt")
