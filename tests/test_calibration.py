"""Calibration: under a true null the max-T family-wise error is ~alpha and the uncorrected pixel rate is
~alpha; with patients of two images, image-level shuffling is anti-conservative while the patient-aware
schemes are not; a planted effect is found where it was planted and nowhere else."""


import numpy as np
import pandas as pd
import pytest
from scipy import stats

import seegaan
from seegaan.stats import MaxT, as_correction

from ._decoders import linear8, planted

ALPHA = 0.05
N_COHORTS = 200
B = 99


def _null_cohort(rng, n_pat, per_patient):
    n = n_pat * per_patient
    pid = np.repeat([f"p{i}" for i in range(n_pat)], per_patient)
    anatomy = rng.standard_normal((n_pat, 8))
    w = anatomy[np.repeat(np.arange(n_pat), per_patient)]
    if per_patient > 1:
        w = w + 0.3 * rng.standard_normal((n, 8))
    age = np.repeat(rng.uniform(20, 90, n_pat), per_patient)   # patient-level, unrelated to w
    table = pd.DataFrame({"image_id": [f"i{i}" for i in range(n)], "patient_id": pid, "age": age})
    return seegaan.create_cohort(w, table)


def _error_rates(per_patient, scheme=None, seed=0, method="linear", correction="maxt", **options):
    if correction == "cluster":
        options = {"cluster_threshold": 2.0, **options}
    correction = as_correction(correction, **options)
    rng = np.random.default_rng(seed)
    any_fwe, pixel_rates = 0, []
    for r in range(N_COHORTS):
        ds = _null_cohort(rng, 40 // per_patient, per_patient)
        interp = seegaan.interpolate(ds, feature="age", method=method, steps=4)
        res = seegaan.sequence(interp, linear8, n_perm=B, seed=int(rng.integers(2**31)), scheme=scheme,
                               correction=correction)
        any_fwe += bool(res.significant.any())
        pixel_rates.append(float((res.p_value[1:] <= ALPHA).mean()))
    return any_fwe, float(np.mean(pixel_rates))


def _binomial_interval():
    lo, hi = stats.binom.interval(0.95, N_COHORTS, ALPHA)
    return lo, hi


def test_null_calibration_single_image_patients():
    fwe, pixel_rate = _error_rates(1, seed=1)
    lo, hi = _binomial_interval()
    assert lo <= fwe <= hi, f"max-T family-wise errors {fwe}/{N_COHORTS} outside [{lo}, {hi}]"
    assert abs(pixel_rate - ALPHA) < 0.015, f"uncorrected pixel rate {pixel_rate:.4f}"


@pytest.mark.parametrize("correction,options", [("maxd", {}), ("tfce", {}), ("cluster", {}),
                                                ("maxt", {"sd_offset": "median"}), ("maxt", {"sd_offset": "p90"})])
def test_null_calibration_other_fwer_corrections(correction, options):
    fwe, _ = _error_rates(1, seed=4, correction=correction, **options)
    lo, hi = _binomial_interval()
    assert lo <= fwe <= hi, f"{correction} family-wise errors {fwe}/{N_COHORTS} outside [{lo}, {hi}]"


def test_null_calibration_needs_patient_blocks():
    lo, hi = _binomial_interval()
    fwe, pixel_rate = _error_rates(2, seed=2)          # default: patient-label permutations
    assert lo <= fwe <= hi, f"patient-aware FWE {fwe}/{N_COHORTS} outside [{lo}, {hi}]"
    assert abs(pixel_rate - ALPHA) < 0.015
    fwe_blocks, _ = _error_rates(2, scheme="whole-block", seed=3)
    assert lo <= fwe_blocks <= hi, f"whole-block FWE {fwe_blocks}/{N_COHORTS} outside [{lo}, {hi}]"
    fwe_naive, _ = _error_rates(2, scheme="image", seed=2)  # shuffling single images: too narrow a null
    assert fwe_naive > hi, f"image-level shuffling should be anti-conservative here, got {fwe_naive}"


@pytest.mark.parametrize("correction", ["maxt", "maxd", "tfce", "cluster"])
def test_planted_effect_found_where_planted_only(correction):
    rng = np.random.default_rng(5)
    n = 300
    age = rng.uniform(20, 90, n)
    w = rng.standard_normal((n, 8))
    w[:, 0] += (age - 55) / 15                      # age moves latent 0 -> the top half of the image
    table = pd.DataFrame({"image_id": [f"i{i}" for i in range(n)], "patient_id": [f"p{i}" for i in range(n)],
                          "age": age})
    ds = seegaan.create_cohort(w, table)
    interp = seegaan.interpolate(ds, feature="age", steps=5)
    res = seegaan.sequence(interp, planted, n_perm=500, seed=0, correction=correction)
    sig = res.significant
    if correction in ("maxt", "maxd"):
        assert not sig[:, 4:].any(), "significant pixels outside the planted region"
    else:  # cluster-level methods can only claim the cluster: a neighbour row may join it
        assert not sig[:, 5:].any(), "significant pixels away from the planted region"
    assert sig[-1, :4].mean() > 0.9, "the planted region is not found at the last step"
    if correction != "maxd":  # maxd must beat the bottom half's large null changes: early steps fall short
        assert sig[1:, :4].sum() > 0.6 * sig[1:, :4].size


def test_min_change_controls_the_error_of_claiming_changes_above_it():
    """A true change everywhere, never larger than DELTA: plain max-T finds it (it is real), while max-T with
    --min-change DELTA claims "|change| > DELTA" somewhere in at most ~alpha of the cohorts."""
    rng = np.random.default_rng(11)
    A0 = linear8.A[0].astype(np.float64)          # how latent 0 shows in the image
    beta = 1.0                                    # latent 0 moves by beta per 15 years of age
    claims, found = 0, 0
    for _ in range(N_COHORTS):
        ds = _null_cohort(rng, 40, 1)
        age = ds["age"].values
        w = ds["w"].values.copy()
        w[:, 0] += beta * (age - 55) / 15
        ds["w"].values[:] = w
        interp = seegaan.interpolate(ds, feature="age", method="linear", steps=4)
        true_change = beta * (interp.grid[:, None] - interp.grid[0]) / 15 * A0[None]   # (K, 64)
        delta = float(np.abs(true_change).max())   # the largest true change: the boundary of the null
        seed = int(rng.integers(2**31))
        plain = seegaan.sequence(interp, linear8, n_perm=B, seed=seed)
        shrunk = seegaan.sequence(interp, linear8, n_perm=B, seed=seed, correction=MaxT(min_change=delta))
        found += bool(plain.significant.any())
        claims += bool(shrunk.significant.any())
    lo, hi = _binomial_interval()
    assert found > 0.9 * N_COHORTS, f"plain max-T found the real change in only {found}/{N_COHORTS} cohorts"
    assert claims <= hi, f"--min-change claimed a change above DELTA in {claims}/{N_COHORTS} cohorts (> {hi})"
