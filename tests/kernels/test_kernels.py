"""Tests of the streaming permutation kernels (``seegaan_kernels``): Numba and NumPy paths give the same
bits, batches can be split anywhere, counts match brute force, and the disabled-Numba path works."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import seegaan_kernels as sk
from seegaan_kernels import _jit, _numpy

ALTERNATIVES = (0, 1, 2)
BLOCK = _jit._BLOCK  # pixels per parallel work item: shapes below straddle it


@pytest.fixture(params=["numba", "numpy"])
def backend(request):
    """Run a test on both code paths (MNE style)."""
    return request.param


def stat(x, alternative):
    return {0: np.abs, 1: np.positive, 2: np.negative}[alternative](x)


def brute_counts(null, observed, alternative):
    return (stat(null, alternative) >= stat(observed, alternative)[None, :]).sum(axis=0)


def sequential_sums(null, total=None, total_sq=None):
    """Plain Python-order reference: add one permutation at a time."""
    m = null.shape[1]
    total = np.zeros(m) if total is None else total.copy()
    total_sq = np.zeros(m) if total_sq is None else total_sq.copy()
    for row in null.astype(np.float64):
        with np.errstate(invalid="ignore", over="ignore"):  # special values on purpose: inf - inf is NaN
            total = total + row
            total_sq = total_sq + row * row
    return total, total_sq


def fresh_state(m):
    return np.zeros(m, np.int64), np.zeros(m, np.float64), np.zeros(m, np.float64)


def accumulate(null, observed, alternative, *, backend, splits=()):
    """Accumulate ``null`` in consecutive batches cut at ``splits``; return (counts, total, total_sq)."""
    counts, total, total_sq = fresh_state(null.shape[1])
    edges = [0, *sorted(splits), null.shape[0]]
    for lo, hi in zip(edges[:-1], edges[1:]):
        batch = np.ascontiguousarray(null[lo:hi])
        sk.accumulate_exceedances(batch, observed, alternative, counts, total, total_sq, backend=backend)
    return counts, total, total_sq


def random_maps(rng, nb, m, *, ties=True):
    """float32 null batch and observed map; with ``ties`` many values repeat (and flip sign) exactly."""
    null = rng.standard_normal((nb, m)).astype(np.float32)
    observed = rng.standard_normal(m).astype(np.float32)
    if ties and nb:
        hit = rng.random((nb, m)) < 0.2
        null[hit] = np.broadcast_to(observed, (nb, m))[hit] * rng.choice([-1, 1], hit.sum()).astype(np.float32)
        grid = rng.random((nb, m)) < 0.1
        null[grid] = np.round(null[grid])  # integers: ties across pixels too
        rounded = rng.random(m) < 0.1
        observed[rounded] = np.round(observed[rounded])
    return null, observed


def assert_bitwise(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


# ---------------------------------------------------------------- accumulate_exceedances


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize("nb", [1, 3, 4, 7, 16])
def test_exceedances_match_brute_force(backend, alternative, nb):
    rng = np.random.default_rng(nb * 10 + alternative)
    m = 2 * BLOCK + 37  # remainder block
    null, observed = random_maps(rng, nb, m)
    counts, total, total_sq = accumulate(null, observed, alternative, backend=backend)
    np.testing.assert_array_equal(counts, brute_counts(null, observed, alternative))
    ref_total, ref_sq = sequential_sums(null)
    assert_bitwise(total, ref_total)
    assert_bitwise(total_sq, ref_sq)
    np.testing.assert_allclose(total, null.astype(np.float64).sum(axis=0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_backends_bitwise_identical(alternative):
    rng = np.random.default_rng(42 + alternative)
    null, observed = random_maps(rng, 13, 3 * BLOCK + 5)
    null *= np.float32(1e3)  # large values: float64 rounding of the sums is exercised
    start = (rng.integers(0, 50, null.shape[1]), rng.standard_normal(null.shape[1]), rng.random(null.shape[1]))
    results = {}
    for name in ("numba", "numpy"):
        counts, total, total_sq = (a.copy() for a in start)
        sk.accumulate_exceedances(null, observed, alternative, counts, total, total_sq, backend=name)
        results[name] = (counts, total, total_sq)
    for a, b in zip(results["numba"], results["numpy"]):
        assert_bitwise(a, b)
    # starting from non-zero state = continuing an earlier batch
    ref_total, ref_sq = sequential_sums(null, start[1], start[2])
    assert_bitwise(results["numba"][1], ref_total)
    assert_bitwise(results["numba"][2], ref_sq)


@settings(deadline=None, max_examples=40)
@given(
    seed=st.integers(0, 2**32 - 1),
    nb=st.integers(1, 12),
    m=st.integers(1, BLOCK + 300),
    alternative=st.sampled_from(ALTERNATIVES),
    backend=st.sampled_from(["numba", "numpy"]),
    cuts=st.lists(st.integers(1, 11), max_size=5),
    wide=st.booleans(),
)
def test_any_batch_split_gives_identical_results(seed, nb, m, alternative, backend, cuts, wide):
    rng = np.random.default_rng(seed)
    null, observed = random_maps(rng, nb, m)
    if wide:  # exponents far apart: float64 sums round, so any change of summation order shows
        null *= (2.0 ** rng.integers(-40, 40, null.shape)).astype(np.float32)
    splits = sorted({c for c in cuts if c < nb})
    whole = accumulate(null, observed, alternative, backend=backend)
    parts = accumulate(null, observed, alternative, backend=backend, splits=splits)
    other = accumulate(null, observed, alternative, backend="numpy" if backend == "numba" else "numba", splits=splits)
    for a, b, c in zip(whole, parts, other):
        assert_bitwise(a, b)
        assert_bitwise(a, c)
    counts = whole[0]
    assert counts.min() >= 0 and counts.max() <= nb
    np.testing.assert_array_equal(counts, brute_counts(null, observed, alternative))


special_floats = st.sampled_from(
    [0.0, -0.0, 1.0, -1.0, 0.5, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 3.4e38, -3.4e38, 2.0**-20]
)


@settings(deadline=None, max_examples=60)
@given(
    values=st.lists(st.one_of(special_floats, st.floats(width=32)), min_size=2, max_size=60),
    nb=st.integers(1, 6),
    alternative=st.sampled_from(ALTERNATIVES),
)
def test_special_values_agree_with_brute_force(values, nb, alternative):
    m = max(1, len(values) // (nb + 1))
    pool = np.resize(np.array(values, dtype=np.float32), (nb + 1) * m)
    observed, null = pool[:m].copy(), pool[m:].reshape(nb, m).copy()
    results = {name: accumulate(null, observed, alternative, backend=name) for name in ("numba", "numpy")}
    np.testing.assert_array_equal(results["numba"][0], brute_counts(null, observed, alternative))
    ref = sequential_sums(null)
    for counts, total, total_sq in results.values():
        np.testing.assert_array_equal(counts, results["numpy"][0])
        for got, want in zip((total, total_sq), ref):
            np.testing.assert_array_equal(got, want)  # NaN positions equal
            finite = np.isfinite(want)
            assert_bitwise(got[finite], want[finite])


def test_ties_count_against(backend):
    observed = np.array([1.5, -2.0, 0.0, 3.0], np.float32)
    for alternative in ALTERNATIVES:
        counts, _, _ = accumulate(np.stack([observed] * 5), observed, alternative, backend=backend)
        np.testing.assert_array_equal(counts, 5)
    # two-sided: the mirror image ties too
    counts, _, _ = accumulate(np.stack([-observed] * 3), observed, 0, backend=backend)
    np.testing.assert_array_equal(counts, 3)


@pytest.mark.parametrize(("alternative", "expected"), [(0, 3), (1, 2), (2, 3), ("two-sided", 3), ("less", 3)])
def test_alternatives_hand_worked(backend, alternative, expected):
    null = np.array([[2.0], [0.5], [-3.0], [1.0]], np.float32)
    counts, total, total_sq = accumulate(null, np.array([1.0], np.float32), alternative, backend=backend)
    assert counts.tolist() == [expected]
    assert total.tolist() == [0.5] and total_sq.tolist() == [4 + 0.25 + 9 + 1]


def test_nan_never_exceeds(backend):
    null = np.array([[np.nan, 1.0], [2.0, np.nan]], np.float32)
    counts, total, _ = accumulate(null, np.array([1.0, np.nan], np.float32), 0, backend=backend)
    assert counts.tolist() == [1, 0]
    assert np.isnan(total).all()


def test_empty_batch_is_a_no_op(backend):
    counts, total, total_sq = fresh_state(5)
    counts += 2
    sk.accumulate_exceedances(
        np.zeros((0, 5), np.float32), np.ones(5, np.float32), 0, counts, total, total_sq, backend=backend
    )
    assert counts.tolist() == [2] * 5 and not total.any() and not total_sq.any()


@pytest.mark.skipif(not sk.has_numba(), reason="numba not available")
def test_numba_result_independent_of_thread_count():
    import numba

    rng = np.random.default_rng(5)
    null, observed = random_maps(rng, 9, 5 * BLOCK + 11)
    scale = rng.random(null.shape[1])
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = accumulate(null, observed, 0, backend="numba")
        m_one = sk.accumulate_maxima(null, scale, 0)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = accumulate(null, observed, 0, backend="numba")
        m_many = sk.accumulate_maxima(null, scale, 0)
    finally:
        numba.set_num_threads(before)
    for a, b in zip(one, many):
        assert_bitwise(a, b)
    assert_bitwise(m_one, m_many)


def _good_args(m=4, nb=2):
    return [np.zeros((nb, m), np.float32), np.zeros(m, np.float32), 0, *fresh_state(m)]


@pytest.mark.parametrize(
    ("position", "bad", "message"),
    [
        (0, np.zeros((2, 4), np.float64), "null must have dtype float32"),
        (0, np.zeros((2, 8), np.float32)[:, ::2], "null must be C-contiguous"),
        (0, np.zeros(4, np.float32), "null must be 2-D"),
        (0, [[0.0] * 4] * 2, "null must be a numpy.ndarray"),
        (1, np.zeros(5, np.float32), "observed has 5 elements"),
        (2, 3, "alternative code must be"),
        (2, "two_sided", "alternative must be one of"),
        (2, True, "alternative must be 0, 1, 2"),
        (3, np.zeros(4, np.int32), "counts must have dtype int64"),
        (4, np.zeros(4, np.float32), "total must have dtype float64"),
        (5, np.zeros(3, np.float64), "total_sq has 3 elements"),
    ],
)
def test_exceedances_validation(position, bad, message):
    args = _good_args()
    args[position] = bad
    with pytest.raises(ValueError, match=message):
        sk.accumulate_exceedances(*args)


def test_exceedances_validation_in_place_and_backend():
    args = _good_args()
    args[3].flags.writeable = False
    with pytest.raises(ValueError, match="counts must be writeable"):
        sk.accumulate_exceedances(*args)
    args = _good_args()
    args[5] = args[4]
    with pytest.raises(ValueError, match="different arrays"):
        sk.accumulate_exceedances(*args)
    with pytest.raises(ValueError, match="backend must be"):
        sk.accumulate_exceedances(*_good_args(), backend="cuda")


# ---------------------------------------------------------------- accumulate_maxima


def brute_maxima(null, scale, alternative):
    out = np.full(null.shape[0], -np.inf)
    keep = scale != 0
    for b in range(null.shape[0]):
        v = stat(null[b].astype(np.float64), alternative)[keep] * scale[keep]
        v = v[~np.isnan(v)]
        if v.size:
            out[b] = v.max()
    return out


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize("nb", [1, 2, 5, 16])
def test_maxima_match_brute_force_and_skip_zero_scale(backend, alternative, nb):
    rng = np.random.default_rng(100 + nb + alternative)
    m = 2 * BLOCK + 45  # lane and block remainders
    null, _ = random_maps(rng, nb, m)
    scale = rng.random(m) * 3
    scale[rng.random(m) < 0.3] = 0.0
    # huge values at skipped pixels must not win, whatever the alternative
    skipped = np.flatnonzero(scale == 0)[:5]
    null[:, skipped] = np.float32(1e30) * np.float32(1 if alternative != 2 else -1)
    got = sk.accumulate_maxima(null, scale, alternative, backend=backend)
    assert got.dtype == np.float64 and got.shape == (nb,)
    assert_bitwise(got, brute_maxima(null, scale, alternative))
    assert (got < 1e29).all()


def test_maxima_backends_identical_and_nan_ignored():
    rng = np.random.default_rng(7)
    null, _ = random_maps(rng, 6, BLOCK + 3)
    null[:, rng.random(null.shape[1]) < 0.05] = np.nan
    scale = rng.random(null.shape[1])
    scale[::3] = 0.0
    for alternative in ALTERNATIVES:
        a = sk.accumulate_maxima(null, scale, alternative, backend="numba")
        b = sk.accumulate_maxima(null, scale, alternative, backend="numpy")
        np.testing.assert_array_equal(a, b)
        assert np.isfinite(a).all()
        np.testing.assert_array_equal(a, brute_maxima(null, scale, alternative))


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_maxima_skip_zero_scale_when_every_statistic_is_negative(backend, alternative):
    # a skipped pixel would contribute stat * 0 = 0, above every kept (negative) value
    rng = np.random.default_rng(200 + alternative)
    m = 2 * BLOCK + 45
    sign = {0: 1.0, 1: -1.0, 2: 1.0}[alternative]
    null = (sign * (rng.random((5, m)) + 0.5)).astype(np.float32)
    scale = rng.random(m) + 0.1
    scale[rng.random(m) < 0.5] = 0.0
    if alternative == 0:  # |x| >= 0: make the scale negative instead
        scale = -scale
    got = sk.accumulate_maxima(null, scale, alternative, backend=backend)
    assert (got < 0).all()
    assert_bitwise(got, brute_maxima(null, scale, alternative))


def test_maxima_all_skipped_is_minus_inf(backend):
    for m in (10, 2 * BLOCK + 45):
        null = np.ones((3, m), np.float32)
        got = sk.accumulate_maxima(null, np.zeros(m), 0, backend=backend)
        assert got.tolist() == [-np.inf] * 3
    nan_null = np.full((2, 10), np.nan, np.float32)
    assert sk.accumulate_maxima(nan_null, np.ones(10), 1, backend=backend).tolist() == [-np.inf] * 2


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_identity_permutation_ties_with_observed_statistic(backend, alternative):
    """The observed map run through the maxima kernel reaches exactly max(standardized_statistic)."""
    rng = np.random.default_rng(11)
    observed = rng.standard_normal(BLOCK + 99).astype(np.float32)
    scale = 1.0 / (rng.random(observed.size) + 0.1)
    scale[:10] = 0.0
    obs_stat = sk.standardized_statistic(observed, scale, alternative)
    assert np.isneginf(obs_stat[:10]).all()
    m_obs = sk.accumulate_maxima(observed[None, :], scale, alternative, backend=backend)
    assert m_obs[0] == obs_stat.max()
    counts = sk.maxt_counts(obs_stat, m_obs)
    assert counts[np.argmax(obs_stat)] == 1  # ties count


def test_maxima_validation():
    null = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="scale must have dtype float64"):
        sk.accumulate_maxima(null, np.ones(4, np.float32), 0)
    with pytest.raises(ValueError, match="scale has 5 elements"):
        sk.accumulate_maxima(null, np.ones(5), 0)
    with pytest.raises(ValueError, match="null must have dtype float32"):
        sk.accumulate_maxima(null.astype(np.float16), np.ones(4), 0)
    assert sk.accumulate_maxima(np.zeros((0, 4), np.float32), np.ones(4), 0).shape == (0,)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_backends_agree_across_numpy_blocks(alternative):
    rng = np.random.default_rng(300 + alternative)
    m = _numpy._BLOCK + 17
    null, observed = random_maps(rng, 5, m)
    scale = rng.random(m)
    scale[: _numpy._BLOCK] = 0.0  # a whole NumPy block skipped
    scale[-5:] = 0.0
    maxima = {name: sk.accumulate_maxima(null, scale, alternative, backend=name) for name in ("numba", "numpy")}
    assert_bitwise(maxima["numba"], maxima["numpy"])
    assert_bitwise(maxima["numpy"], brute_maxima(null, scale, alternative))
    states = [accumulate(null, observed, alternative, backend=name, splits=[2]) for name in ("numba", "numpy")]
    for a, b in zip(*states):
        assert_bitwise(a, b)
    np.testing.assert_array_equal(states[1][0], brute_counts(null, observed, alternative))


# ---------------------------------------------------------------- maxt_counts


@settings(deadline=None, max_examples=80)
@given(
    observed=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=30),
    maxima=st.lists(st.one_of(st.floats(allow_nan=False), st.sampled_from([0.0, 1.0, -np.inf])), max_size=30),
)
def test_maxt_counts_match_brute_force(observed, maxima):
    obs = np.array(observed, dtype=np.float64)
    mx = np.array(maxima, dtype=np.float64)
    got = sk.maxt_counts(obs, mx)
    want = (mx[None, :] >= obs[:, None]).sum(axis=1)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


def test_maxt_counts_keeps_shape_and_ties():
    obs = np.array([[0.5, 2.0], [-np.inf, 3.0]])
    got = sk.maxt_counts(obs, np.array([2.0, 1.0, 2.0]))
    assert got.shape == (2, 2)
    assert got.tolist() == [[3, 2], [3, 0]]
    with pytest.raises(ValueError, match="NaN"):
        sk.maxt_counts(obs, np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="1-D"):
        sk.maxt_counts(obs, np.ones((2, 2)))


# ---------------------------------------------------------------- import weight and disabled Numba

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run_python(code, **env):
    full_env = {**os.environ, **env}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_does_not_load_numba():
    out = _run_python("import sys, seegaan_kernels; print('numba' in sys.modules)")
    assert out.strip() == "False"


DISABLED_SCRIPT = """
import json, sys
import numpy as np
import seegaan_kernels as sk
from seegaan_kernels import _jit, _numpy, _numba

rng = np.random.default_rng(3)
null = rng.standard_normal((5, 300)).astype(np.float32)
null[:, ::7] = 0.5
obs = np.full(300, 0.5, np.float32)
obs[1::2] = rng.standard_normal(150).astype(np.float32)
scale = rng.random(300)
scale[::5] = 0.0
report = {"has_numba": sk.has_numba(), "shim": _numba.HAS_NUMBA, "alts": []}
for alt in (0, 1, 2):
    states = []
    for run in ("numba", "numpy", "python-loops"):
        c, t, q = np.zeros(300, np.int64), np.zeros(300), np.zeros(300)
        if run == "python-loops":  # the un-jitted kernel source, executed as plain Python
            _jit.exceedances_numba(null, obs, alt, c, t, q)
            mx = _jit.maxima_numba(null, scale, alt)
        else:
            sk.accumulate_exceedances(null, obs, alt, c, t, q, backend=run)
            mx = sk.accumulate_maxima(null, scale, alt, backend=run)
        states.append([c.tobytes().hex(), t.tobytes().hex(), q.tobytes().hex(), mx.tobytes().hex()])
    report["alts"].append(states[0] == states[1] == states[2])
report["numba_imported"] = "numba" in sys.modules
print(json.dumps(report))
"""


def test_disabled_numba_path_runs_numpy_and_plain_python():
    report = json.loads(_run_python(DISABLED_SCRIPT, SEEGAAN_DISABLE_NUMBA="1").strip().splitlines()[-1])
    assert report == {"has_numba": False, "shim": False, "alts": [True, True, True], "numba_imported": False}


def test_numpy_twin_statistic():
    x = np.array([-2.0, 0.0, 3.0], np.float32)
    assert _numpy.statistic(x, 0).tolist() == [2.0, 0.0, 3.0]
    assert _numpy.statistic(x, 1).tolist() == [-2.0, 0.0, 3.0]
    assert _numpy.statistic(x, 2).tolist() == [2.0, -0.0, -3.0]
    assert sk.alternative_code("greater") == 1 and sk.ALTERNATIVE_CODES["less"] == 2


def test_preload_loads_the_kernels_once_in_a_background_thread():
    """In a fresh process preload() returns a running thread that leaves the pass-1 and max-T kernels
    compiled; a second call (or the NumPy backend) has nothing to load."""
    code = (
        "import threading, seegaan_kernels as sk\n"
        "assert sk.preload('numpy') is None\n"
        "t = sk.preload()\n"
        "assert isinstance(t, threading.Thread) and t.daemon\n"
        "assert sk.preload() is None\n"
        "t.join()\n"
        "if sk.has_numba():\n"
        "    from seegaan_kernels import _jit\n"
        "    assert _jit.exceedances_numba.signatures and _jit.maxima_numba.signatures\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
