"""Permutation plans: schemes, exact enumeration, patients never split."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from seegaan.stats.permutation import choose_scheme, draw_permutations


# ---------------------------------------------------------------------------------------------
# the plans
# ---------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=2, max_size=9), st.integers(0, 2**16), st.booleans())
def test_permutations_never_split_a_patient(sizes, seed, patient_level):
    pid = np.concatenate([[f"p{i}"] * s for i, s in enumerate(sizes)])
    rng = np.random.default_rng(seed)
    pat_x = rng.normal(size=len(sizes))
    feature = (
        np.concatenate([[pat_x[i]] * s for i, s in enumerate(sizes)]) if patient_level else rng.normal(size=pid.size)
    )
    plan = draw_permutations(pid, 20, feature=feature, seed=seed)
    for idx in plan.indices:
        for p in np.unique(pid):
            members = np.flatnonzero(pid == p)
            # every image of a patient draws from one and the same patient
            assert len(set(pid[idx[members]])) == 1
            if plan.scheme == "whole-block":
                donor = np.flatnonzero(pid == pid[idx[members]][0])
                assert np.array_equal(np.sort(idx[members]), donor)
        if plan.scheme in ("image", "whole-block"):
            assert np.array_equal(np.sort(idx), np.arange(pid.size))  # a true permutation of images


def test_scheme_choice():
    assert choose_scheme(["a", "b", "c"]) == "image"
    assert choose_scheme(["a", "a", "b"], [1, 1, 2]) == "patient-label"
    assert choose_scheme(["a", "a", "b"], [1, 2, 2]) == "whole-block"
    assert choose_scheme(["a", "a", "b"], [1, 1, 2], covariates=True) == "whole-block"


def test_exact_enumeration_counts():
    plan = draw_permutations([f"p{i}" for i in range(5)], "exact")
    assert plan.n_perm == 119 and plan.exact
    assert len({tuple(r) for r in plan.indices}) == 119
    plan = draw_permutations(["a", "a", "b", "b", "c"], "exact", feature=[0, 0, 1, 1, 2])
    assert plan.scheme == "patient-label" and plan.n_perm == 5


def test_plans_do_not_depend_on_how_they_are_used():
    """The same seed gives the same indices; a forced scheme that does not exist is refused."""
    import pytest

    from seegaan._internal.errors import SeegaanError

    pid = [f"p{i}" for i in range(9)]
    a = draw_permutations(pid, 25, seed=4)
    b = draw_permutations(pid, 25, seed=np.random.default_rng(4))
    np.testing.assert_array_equal(a.indices, b.indices)
    assert [len(rows) for _, rows in a.batches(10)] == [10, 10, 5]
    with pytest.raises(SeegaanError, match="unknown permutation scheme"):
        draw_permutations(pid, 5, scheme="shuffle")
