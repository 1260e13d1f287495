"""Tests of the spatial permutation statistics (``seegaan_kernels.spatial``): TFCE and cluster mass.

TFCE is checked against hand-worked values and an independent pure-Python brute force (flood fill at
every threshold). The Numba kernel and the NumPy twin agree to rounding only: the kernel stores each
threshold's contribution once per component and, on a merge, subtracts the absorbing component's running
total (``(a - b) + b'`` instead of a plain running sum), so a pixel's score carries an error of a few ulps
of the largest score in its component (measured: ~1e-16 relative on the maxima, up to ~1e-10 on low pixels
next to a high blob). Cluster labels and masses are bit-identical between backends.
"""

import json
import math
import os
import subprocess
import sys
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from seegaan_kernels import spatial

RTOL = 1e-9  # numba vs numpy TFCE (see the module docstring)


@pytest.fixture(params=["numba", "numpy"])
def backend(request):
    """Run a test on both code paths."""
    return request.param


def neighbours(r, c, nrow, ncol, connectivity):
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if (dr, dc) == (0, 0) or (connectivity == 4 and dr != 0 and dc != 0):
                continue
            if 0 <= r + dr < nrow and 0 <= c + dc < ncol:
                yield r + dr, c + dc


def components(mask, connectivity):
    """Pure-Python flood fill: list of pixel lists, in raster order of their first pixel."""
    nrow, ncol = mask.shape
    seen = np.zeros(mask.shape, bool)
    comps = []
    for r in range(nrow):
        for c in range(ncol):
            if mask[r, c] and not seen[r, c]:
                seen[r, c] = True
                queue, comp = deque([(r, c)]), []
                while queue:
                    p = queue.popleft()
                    comp.append(p)
                    for q in neighbours(*p, nrow, ncol, connectivity):
                        if mask[q] and not seen[q]:
                            seen[q] = True
                            queue.append(q)
                comps.append(comp)
    return comps


def brute_tfce(stat, dh, E, H, connectivity):
    """TFCE straight from the definition: flood fill at every threshold h = j * dh <= max."""
    out = np.zeros(stat.shape)
    for k, image in enumerate(stat):
        j = 1
        while np.any(image >= j * dh):
            h = j * dh
            for comp in components(image >= h, connectivity):
                for p in comp:
                    out[(k, *p)] += len(comp) ** E * h**H * dh
            j += 1
    return out


def brute_clusters(stat, threshold, connectivity):
    labels = np.zeros(stat.shape, np.int64)
    masses = []
    for k, image in enumerate(stat):
        for comp in components(image > threshold, connectivity):
            masses.append(sum(image[p] - threshold for p in comp))
            for p in comp:
                labels[(k, *p)] = len(masses)
    return labels, np.array(masses)


def smooth_maps(rng, shape, nb=1, sigma=1.0, scale=2.5):
    """Spatially correlated |z|-like maps with plateaus (ties) and untestable pixels."""
    from scipy import ndimage

    x = ndimage.gaussian_filter(rng.standard_normal((nb, *shape)), (0, 0, sigma, sigma))
    x *= scale / max(x.std(), 1e-12)
    x[:, :, ::3] = np.round(x[:, :, ::3], 1)  # exact ties between pixels
    return x


# ---------------------------------------------------------------- TFCE: hand-worked values


def test_tfce_hand_worked_3x3(backend):
    stat = np.array([[[2.0, 0.0, 1.0], [2.0, 0.0, 0.0], [0.0, 0.0, 1.5]]])
    got = spatial.tfce(stat, dh=1.0, H=2.0, E=0.5, backend=backend)
    # h = 1: components {(0,0),(1,0)} (extent 2), {(0,2)}, {(2,2)}; h = 2: {(0,0),(1,0)}
    blob = math.sqrt(2) * 1 * 1 + math.sqrt(2) * 4 * 1
    expected = np.array([[[blob, 0, 1], [blob, 0, 0], [0, 0, 1]]])  # 1.5 only reaches h = 1
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    # E = 1, H = 1, dh = 0.5: levels 0.5, 1, 1.5, 2
    got = spatial.tfce(stat, dh=0.5, H=1.0, E=1.0, backend=backend)
    blob = sum(2 * h * 0.5 for h in (0.5, 1.0, 1.5, 2.0))
    single = sum(1 * h * 0.5 for h in (0.5, 1.0))
    corner = sum(1 * h * 0.5 for h in (0.5, 1.0, 1.5))
    np.testing.assert_allclose(got, [[[blob, 0, single], [blob, 0, 0], [0, 0, corner]]], rtol=1e-14)


def test_tfce_default_dh_is_max_over_n_steps(backend):
    stat = np.array([[[4.0, 4.0], [0.0, 2.0]]])
    got = spatial.tfce(stat, n_steps=2, backend=backend)  # dh = 2: levels 2 and 4
    top = math.sqrt(3) * 4 * 2 + math.sqrt(2) * 16 * 2
    low = math.sqrt(3) * 4 * 2
    np.testing.assert_allclose(got, [[[top, top], [0, low]]], rtol=1e-14)
    assert spatial.tfce_step(stat, n_steps=2) == 2.0
    np.testing.assert_array_equal(got, spatial.tfce(stat, dh=2.0, backend=backend))


def test_blob_pixel_beats_isolated_pixel_of_same_height(backend):
    stat = np.zeros((1, 9, 9))
    stat[0, 1:4, 1:4] = 3.0  # 3 x 3 blob
    stat[0, 7, 7] = 3.0  # isolated
    got = spatial.tfce(stat, dh=0.25, backend=backend)
    assert got[0, 2, 2] > got[0, 7, 7] > 0
    np.testing.assert_allclose(got[0, 1:4, 1:4], 3 * got[0, 7, 7], rtol=1e-13)  # sqrt(9) = 3


def test_non_positive_and_untestable_pixels_score_zero(backend):
    rng = np.random.default_rng(3)
    stat = -np.abs(rng.standard_normal((2, 6, 7)))
    np.testing.assert_array_equal(spatial.tfce(stat, dh=0.1, backend=backend), 0.0)
    assert spatial.tfce_step(stat) == 1.0  # no positive value: any step gives zeros
    np.testing.assert_array_equal(spatial.tfce(stat, backend=backend), 0.0)
    stat = np.full((1, 1, 5), 2.0)
    stat[0, 0, 2] = np.nan
    stat[0, 0, 4] = -np.inf
    got = spatial.tfce(stat, dh=1.0, backend=backend)
    # NaN splits the row into two components of 2 and 1 pixels
    np.testing.assert_allclose(got[0, 0], [5 * math.sqrt(2), 5 * math.sqrt(2), 0, 5, 0], rtol=1e-14)
    assert spatial.tfce(stat, dh=2.5, backend=backend).max() == 0.0  # every value below the first level


def test_connectivity_matters_on_a_diagonal(backend):
    stat = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])
    four = spatial.tfce(stat, dh=1.0, connectivity=4, backend=backend)
    eight = spatial.tfce(stat, dh=1.0, connectivity=8, backend=backend)
    np.testing.assert_allclose(np.diagonal(four[0]), 1.0)
    np.testing.assert_allclose(np.diagonal(eight[0]), math.sqrt(3))
    _, m4 = spatial.cluster_masses(stat, 0.5, connectivity=4, backend=backend)
    _, m8 = spatial.cluster_masses(stat, 0.5, connectivity=8, backend=backend)
    np.testing.assert_allclose(m4, [0.5, 0.5, 0.5])
    np.testing.assert_allclose(m8, [1.5])


def test_steps_are_separate_images(backend):
    stat = np.ones((3, 2, 2))
    got = spatial.tfce(stat, dh=1.0, backend=backend)
    np.testing.assert_allclose(got, 2.0)  # extent 4, not 12
    labels, masses = spatial.cluster_masses(stat, 0.0, backend=backend)
    np.testing.assert_array_equal(labels[:, 0, 0], [1, 2, 3])
    np.testing.assert_array_equal(masses, [4.0, 4.0, 4.0])


def test_tfce_scales_exactly_with_the_map():
    """Doubling the map and dh multiplies every score by 2 ** (H + 1) (powers of two are exact)."""
    rng = np.random.default_rng(5)
    stat = smooth_maps(rng, (2, 12, 10))[0]
    for backend in ("numba", "numpy"):
        base = spatial.tfce(stat, dh=0.2, H=2.0, E=0.5, backend=backend)
        doubled = spatial.tfce(2 * stat, dh=0.4, H=2.0, E=0.5, backend=backend)
        np.testing.assert_array_equal(doubled, 8 * base)


# ---------------------------------------------------------------- TFCE: backends and brute force


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("E, H", [(0.5, 2.0), (1.0, 2.0), (0.66, 1.5)])
def test_tfce_backends_agree_with_brute_force(connectivity, E, H):
    rng = np.random.default_rng(int(E * 100) + connectivity)
    for shape in [(1, 1, 1), (1, 1, 9), (2, 7, 1), (2, 8, 9), (1, 13, 11)]:
        stat = smooth_maps(rng, shape)[0]
        stat[0, 0, 0] = np.nan
        dh = 0.15
        numba_ = spatial.tfce(stat, dh=dh, E=E, H=H, connectivity=connectivity, backend="numba")
        numpy_ = spatial.tfce(stat, dh=dh, E=E, H=H, connectivity=connectivity, backend="numpy")
        brute = brute_tfce(np.nan_to_num(stat, nan=-1.0), dh, E, H, connectivity)
        np.testing.assert_allclose(numba_, numpy_, rtol=RTOL, atol=0)
        np.testing.assert_allclose(numba_, brute, rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("connectivity", [4, 8])
def test_tfce_max_is_max_of_tfce(dtype, connectivity):
    rng = np.random.default_rng(11)
    shape = (3, 16, 12)
    batch = np.ascontiguousarray(smooth_maps(rng, shape, nb=6).reshape(6, -1).astype(dtype))
    batch[2] = -np.abs(batch[2])  # no positive value: max 0
    dh = 0.1
    expected = np.array(
        [
            spatial.tfce(row.astype(np.float64).reshape(shape), dh=dh, connectivity=connectivity, backend="numpy").max()
            for row in batch
        ]
    )
    assert expected[2] == 0.0
    got = {
        b: spatial.tfce_max(batch, shape=shape, dh=dh, connectivity=connectivity, backend=b) for b in ("numba", "numpy")
    }
    np.testing.assert_array_equal(got["numpy"], expected)
    np.testing.assert_allclose(got["numba"], expected, rtol=RTOL, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_identity_map_ties_with_observed_bit_for_bit(backend, dtype):
    """The observed map passed as a null map gives exactly its TFCE maximum (p-values count it)."""
    rng = np.random.default_rng(2)
    stat = smooth_maps(rng, (4, 20, 18))[0].astype(dtype)
    dh = spatial.tfce_step(stat)
    observed = spatial.tfce(stat, dh=dh, backend=backend).max()
    null = stat.reshape(1, -1).copy()
    assert spatial.tfce_max(null, shape=stat.shape, dh=dh, backend=backend)[0] == observed
    assert spatial.cluster_max(null, shape=stat.shape, threshold=1.0, backend=backend)[0] == (
        spatial.cluster_masses(stat, 1.0, backend=backend)[1].max()
    )


# ---------------------------------------------------------------- cluster mass


@pytest.mark.parametrize("connectivity", [4, 8])
def test_cluster_masses_match_brute_force_and_backends_bitwise(connectivity):
    rng = np.random.default_rng(connectivity)
    for shape in [(1, 1, 1), (1, 1, 7), (3, 9, 8), (2, 15, 17)]:
        stat = smooth_maps(rng, shape)[0]
        stat[0, 0, -1] = np.nan
        for threshold in (-0.5, 0.8, 2.0, 100.0):
            labels, masses = spatial.cluster_masses(stat, threshold, connectivity=connectivity)
            labels_np, masses_np = spatial.cluster_masses(stat, threshold, connectivity=connectivity, backend="numpy")
            ref_labels, ref_masses = brute_clusters(np.nan_to_num(stat, nan=-np.inf), threshold, connectivity)
            assert labels.dtype == np.int64 and masses.dtype == np.float64
            np.testing.assert_array_equal(labels, ref_labels)
            np.testing.assert_array_equal(labels_np, ref_labels)
            assert masses.tobytes() == masses_np.tobytes()
            np.testing.assert_allclose(masses, ref_masses.reshape(-1), rtol=1e-12)
            assert masses.shape == (labels.max(),)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cluster_max_is_max_of_cluster_masses(dtype, backend):
    rng = np.random.default_rng(4)
    shape = (2, 11, 13)
    batch = np.ascontiguousarray(smooth_maps(rng, shape, nb=5).reshape(5, -1).astype(dtype))
    batch[1] = 0.0  # no cluster: 0
    expected = [
        spatial.cluster_masses(row.astype(np.float64).reshape(shape), 1.2, connectivity=8, backend="numpy")[1].max(
            initial=0.0
        )
        for row in batch
    ]
    got = spatial.cluster_max(batch, shape=shape, threshold=1.2, connectivity=8, backend=backend)
    assert got[1] == 0.0
    np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------- properties


maps = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 2), st.integers(1, 7), st.integers(1, 7)),
    elements=st.sampled_from([-1.0, 0.0, 0.25, 0.5, 1.0, 1.7, 3.0]),
)


@settings(deadline=None, max_examples=40)
@given(stat=maps, connectivity=st.sampled_from([4, 8]), E=st.sampled_from([0.5, 1.0]))
def test_enlarging_the_map_never_lowers_the_maxima(stat, connectivity, E):
    """Each pixel becoming a 2 x 2 block keeps the components and multiplies their extent by 4."""
    big = np.kron(stat, np.ones((1, 2, 2)))
    for backend in ("numba", "numpy"):
        t_small = spatial.tfce_max(
            stat.reshape(1, -1), shape=stat.shape, dh=0.25, E=E, connectivity=connectivity, backend=backend
        )[0]
        t_big = spatial.tfce_max(
            big.reshape(1, -1), shape=big.shape, dh=0.25, E=E, connectivity=connectivity, backend=backend
        )[0]
        assert t_big >= t_small
        assert t_big == pytest.approx(4**E * t_small, rel=1e-12)
        c_small = spatial.cluster_max(
            stat.reshape(1, -1), shape=stat.shape, threshold=0.3, connectivity=connectivity, backend=backend
        )[0]
        c_big = spatial.cluster_max(
            big.reshape(1, -1), shape=big.shape, threshold=0.3, connectivity=connectivity, backend=backend
        )[0]
        assert c_big >= c_small
        assert c_big == pytest.approx(4 * c_small, rel=1e-12)


@settings(deadline=None, max_examples=40)
@given(stat=maps, bump=st.data(), connectivity=st.sampled_from([4, 8]))
def test_raising_values_never_lowers_any_score(stat, bump, connectivity):
    extra = bump.draw(hnp.arrays(np.float64, stat.shape, elements=st.sampled_from([0.0, 0.0, 0.5, 2.0])))
    low = spatial.tfce(stat, dh=0.25, connectivity=connectivity)
    high = spatial.tfce(stat + extra, dh=0.25, connectivity=connectivity)
    assert np.all(high >= low * (1 - 1e-12))
    np.testing.assert_allclose(low, brute_tfce(stat, 0.25, 0.5, 2.0, connectivity), rtol=1e-12)


# ---------------------------------------------------------------- validation and fallback


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(connectivity=6), "connectivity must be 4 or 8"),
        (dict(dh=0.0), "dh must be > 0"),
        (dict(dh=float("nan")), "dh must be finite"),
        (dict(dh=1e-9), "thresholds"),
        (dict(E=-1.0), "E must be >= 0"),
        (dict(backend="cuda"), "backend must be"),
    ],
)
def test_tfce_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        spatial.tfce(np.ones((1, 2, 2)), **kwargs)


def test_too_many_levels_has_its_own_error_type():
    """Callers tell this refusal from other ValueErrors by its type, not by its message."""
    with pytest.raises(spatial.TooManyLevelsError, match="thresholds"):
        spatial.tfce(np.ones((1, 2, 2)), dh=1e-9)
    assert issubclass(spatial.TooManyLevelsError, ValueError)


def test_validation_of_maps_and_batches():
    with pytest.raises(ValueError, match="3-D"):
        spatial.tfce(np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"\+inf"):
        spatial.cluster_masses(np.full((1, 2, 2), np.inf), 0.0)
    with pytest.raises(ValueError, match="dtype"):
        spatial.tfce(np.ones((1, 2, 2), dtype=np.int64))
    batch = np.ones((3, 8))
    with pytest.raises(ValueError, match="holds 12 values"):
        spatial.tfce_max(batch, shape=(1, 3, 4), dh=0.1)
    with pytest.raises(ValueError, match="shape must be"):
        spatial.cluster_max(batch, shape=(2, 4), threshold=0.0)
    with pytest.raises(ValueError, match="C-contiguous"):
        spatial.cluster_max(np.ones((8, 3)).T, shape=(1, 2, 4), threshold=0.0)
    with pytest.raises(ValueError, match="threshold must be finite"):
        spatial.cluster_max(batch, shape=(2, 2, 2), threshold=np.inf)
    assert spatial.tfce_max(np.ones((0, 8)), shape=(2, 2, 2), dh=0.1).shape == (0,)
    assert spatial.cluster_max(np.ones((0, 8)), shape=(2, 2, 2), threshold=0.1).shape == (0,)


def test_disabled_numba_falls_back_to_numpy():
    code = (
        "import json, numpy as np\n"
        "from seegaan_kernels import spatial\n"
        "x = np.arange(12.0).reshape(1, 3, 4) - 4\n"
        "print(json.dumps([spatial._resolve_backend('numba') is None, spatial.tfce(x, dh=1.0).tolist(),"
        " spatial.cluster_masses(x, 0.5)[1].tolist()]))\n"
    )
    env = dict(os.environ, SEEGAAN_DISABLE_NUMBA="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    disabled, scores, masses = json.loads(out.stdout)
    assert disabled
    x = np.arange(12.0).reshape(1, 3, 4) - 4
    np.testing.assert_allclose(scores, spatial.tfce(x, dh=1.0, backend="numba"), rtol=RTOL)
    np.testing.assert_array_equal(masses, spatial.cluster_masses(x, 0.5)[1])


def test_numba_maxima_do_not_depend_on_thread_count():
    numba = pytest.importorskip("numba")

    rng = np.random.default_rng(8)
    shape = (2, 10, 9)
    batch = np.ascontiguousarray(smooth_maps(rng, shape, nb=7).reshape(7, -1))
    before = numba.get_num_threads()
    results = []
    try:
        for n_threads in sorted({1, before}):
            numba.set_num_threads(n_threads)
            results.append(
                (
                    spatial.tfce_max(batch, shape=shape, dh=0.1).tobytes(),
                    spatial.cluster_max(batch, shape=shape, threshold=1.0).tobytes(),
                )
            )
    finally:
        numba.set_num_threads(before)
    assert all(r == results[0] for r in results)
