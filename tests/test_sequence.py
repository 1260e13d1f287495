"""sequence() and the streaming permutation engine: p-value properties, brute force, same bits, masks."""

import itertools
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import seegaan
from seegaan._internal.errors import SeegaanError
from seegaan.stats import TFCE, Cluster, MaxD, MaxT, SeegaanWarning, as_correction
from seegaan.testing.cohorts import make_cohort
from seegaan.testing.decoders import linear8, planted


def _small_cohort(n_pat, per_patient, D, seed, patient_level=True):
    rng = np.random.default_rng(seed)
    sizes = [per_patient[i % len(per_patient)] for i in range(n_pat)]
    pid = np.concatenate([[f"p{i}"] * s for i, s in enumerate(sizes)])
    n = pid.size
    pat_x = rng.normal(size=n_pat)
    x = np.concatenate([[pat_x[i]] * s for i, s in enumerate(sizes)]) if patient_level else rng.normal(size=n)
    table = pd.DataFrame(
        {
            "image_id": [f"i{i}" for i in range(n)],
            "patient_id": pid,
            "x": x,
            "g": np.where(np.arange(n) % 2 == 0, "a", "b"),
        }
    )
    return seegaan.create_cohort(rng.normal(size=(n, D)), table)


# ---------------------------------------------------------------------------------------------
# the test statistics
# ---------------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_pat=st.integers(4, 10),
    per=st.sampled_from([[1], [1, 2], [2], [1, 3, 2]]),
    B=st.integers(1, 40),
    seed=st.integers(0, 1000),
    alternative=st.sampled_from(["two-sided", "greater", "less"]),
    correction=st.sampled_from(["maxt", "maxd", "none", "fdr_bh", "fdr_by", "bonferroni", "holm", "tfce", "cluster"]),
    method=st.sampled_from(["linear", "class-mean-g"]),
)
def test_pvalue_properties(n_pat, per, B, seed, alternative, correction, method):
    ds = _small_cohort(n_pat, per, 8, seed)
    feature, meth = ("g", "class-mean") if method == "class-mean-g" else ("x", "linear")
    interp = seegaan.interpolate(ds, feature=feature, method=meth, steps=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeegaanWarning)
        try:
            res = seegaan.sequence(interp, linear8, n_perm=B, seed=seed, alternative=alternative, correction=correction)
        except seegaan.SeegaanError as exc:  # e.g. B = 1 with two almost equal maps: z ~ 1e6 (found by hypothesis)
            assert correction == "tfce" and "use more permutations" in str(exc)
            return
        raw = seegaan.sequence(interp, linear8, n_perm=B, seed=seed, alternative=alternative, correction="none")
    p = res.p_value
    assert p.min() >= 1 / (B + 1) - 1e-15 and p.max() <= 1
    assert np.all(p[0] == 1)  # step 0 has no difference
    assert res.p_adjusted.min() >= 1 / (B + 1) - 1e-15 and res.p_adjusted.max() <= 1
    if correction not in ("tfce", "cluster"):  # spatial methods may reject pixels that fail alone
        assert np.all(res.p_adjusted >= p - 1e-12)  # corrections never lower a p-value
        assert not np.any(res.significant & ~raw.significant)  # corrected rejections within uncorrected
    assert not res.significant[0].any()
    np.testing.assert_array_equal(res.significant_difference != 0, res.significant & (res.difference != 0))


def _brute_force_p(ds, feature, decoder, steps, alternative):
    """Refit the regression for every ordering of the latents and count exceedances."""
    x = ds[feature].values.astype(float)
    W = ds["w"].values.astype(float)
    n = x.size
    lo, hi = np.percentile(x, [5, 95])
    G = np.column_stack([np.ones(steps), np.linspace(lo, hi, steps)])
    X = np.column_stack([np.ones(n), x])

    def diff(Wp):
        coef = np.linalg.lstsq(X, Wp, rcond=None)[0]
        img = decoder((G @ coef).astype(np.float32)).astype(float)
        return img - img[0]

    stat = {"two-sided": np.abs, "greater": lambda v: v, "less": lambda v: -v}[alternative]
    obs = stat(diff(W))
    count = np.zeros_like(obs)
    total = 0
    for perm in itertools.permutations(range(n)):
        count += stat(diff(W[list(perm)])) >= obs - 1e-9
        total += 1
    return count / total


@pytest.mark.parametrize("alternative", ["two-sided", "greater"])
def test_exact_enumeration_equals_brute_force(alternative):
    rng = np.random.default_rng(11)
    n = 6
    table = pd.DataFrame(
        {"image_id": [f"i{i}" for i in range(n)], "patient_id": [f"p{i}" for i in range(n)], "x": rng.normal(size=n)}
    )
    ds = seegaan.create_cohort(rng.normal(size=(n, 8)), table)
    interp = seegaan.interpolate(ds, feature="x", method="linear", steps=3)
    res = seegaan.sequence(
        interp, linear8, n_perm="exact", correction="none", alternative=alternative, null="permutation"
    )
    assert res.attrs["n_perm"] == 719
    brute = _brute_force_p(ds, "x", linear8, 3, alternative)
    np.testing.assert_allclose(res.p_value, brute, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(method="linear", feature="age"),
        dict(feature="age", gam_lam="auto"),
        dict(feature="sex"),
        dict(feature="age", method="linear", adjust="bnpp"),
    ],
)
@pytest.mark.parametrize("correction", ["maxt", "maxd", "tfce", "cluster"])
def test_same_seed_same_bits_across_batch_sizes(kwargs, backend, correction):
    ds = make_cohort(n=40, seed=3, images_per_patient=2, effect=1.0)
    interp = seegaan.interpolate(ds, steps=4, **kwargs)
    runs = [
        seegaan.sequence(
            interp,
            linear8,
            n_perm=37,
            seed=123,
            batch_size=bs,
            null_cache_mb=cache,
            backend=backend,
            correction=Cluster(threshold=1.5) if correction == "cluster" else correction,
        )
        for bs, cache in [(1, 1024), (5, 0), (64, 1024), (7, 0)]
    ]
    for other in runs[1:]:
        for name in ("p_value", "p_adjusted", "null_max", "images"):
            np.testing.assert_array_equal(getattr(runs[0], name), getattr(other, name))
    different = seegaan.sequence(interp, linear8, n_perm=37, seed=124)
    assert not np.array_equal(different.null_max, runs[0].null_max)


def _all_maps(interp, observed, n_perm, seed):
    """The observed difference map and the B null ones, decoded one by one: (B + 1, K - 1, H, W) float64
    (step 0 is not tested), for the default sign-flip null."""
    plan = seegaan.stats.draw_signflips(interp.patient_ids, n_perm, seed=seed)
    maps = [observed]
    for signs in plan.indices:
        frames = linear8(interp.flip_trajectories(signs[None])[0].astype(np.float32))
        maps.append(frames - frames[0])
    return np.stack(maps)[:, 1:].astype(np.float64)


@pytest.mark.parametrize(
    "correction,sd_offset", [("maxt", None), ("maxt", "median"), ("maxt", "p90"), ("maxt", 0.05), ("maxd", None)]
)
def test_max_statistic_pvalues_equal_brute_force(correction, sd_offset):
    """maxt/maxd adjusted p = share of the B + 1 maps (identity included) whose largest statistic over all
    pixels and steps reaches the observed one, with the SD taken over those B + 1 maps (maxt) plus s0 (0 by
    default, or a percentile of those SDs, or a number)."""
    ds = make_cohort(n=24, seed=4, effect=0.8)
    interp = seegaan.interpolate(ds, feature="age", method="linear", steps=4)
    res = seegaan.sequence(
        interp,
        linear8,
        n_perm=60,
        seed=9,
        correction=as_correction(correction, sd_offset=sd_offset),
        statistic="difference",
    )
    maps = _all_maps(interp, res.difference, 60, seed=9)
    sd = maps.std(axis=0) if correction == "maxt" else np.ones(maps.shape[1:])  # SD of the signed maps
    s0 = 0.0
    if correction == "maxt":
        s0 = {None: 0.0, "median": np.median(sd[sd > 0]), "p90": np.percentile(sd[sd > 0], 90), 0.05: 0.05}[sd_offset]
        assert res.attrs["sd_offset_value"] == pytest.approx(s0, rel=1e-9)
        assert res.attrs["sd_offset"] == {None: "0", "median": "median", "p90": "p90", 0.05: "0.05"}[sd_offset]
    stat = np.divide(np.abs(maps), sd + s0, out=np.zeros_like(maps), where=sd > 0)
    null_max = stat[1:].reshape(60, -1).max(1)
    expected = (np.sum(null_max[:, None, None, None] >= stat[0][None] - 1e-9, axis=0) + 1) / 61
    np.testing.assert_allclose(res.p_adjusted[1:], expected, atol=1e-12)
    np.testing.assert_allclose(res.null_max, null_max, rtol=1e-6)


@pytest.mark.parametrize(
    "correction,alternative", [("maxt", "two-sided"), ("maxd", "two-sided"), ("maxt", "greater"), ("maxt", "less")]
)
def test_min_change_equals_brute_force_and_only_removes(correction, alternative):
    """With min_change m the observed difference d is shrunk to sign(d) max(|d| - m, 0) before it meets the
    same null maxima; what is significant is then a subset of the plain test's, and nothing whose |d| <= m."""
    ds = make_cohort(n=24, seed=4, effect=0.8)
    interp = seegaan.interpolate(ds, feature="age", method="linear", steps=4)
    kw = dict(n_perm=60, seed=9, alternative=alternative, statistic="difference")
    plain = seegaan.sequence(interp, linear8, correction=correction, **kw)
    m = 0.1 * float(np.abs(plain.difference).max())
    res = seegaan.sequence(interp, linear8, correction={"maxt": MaxT, "maxd": MaxD}[correction](min_change=m), **kw)
    assert res.attrs["min_change"] == m and plain.attrs["min_change"] == 0.0
    np.testing.assert_array_equal(res.null_max, plain.null_max)  # the null is untouched
    d = res.difference[1:].astype(np.float64)
    shrunk = np.sign(d) * np.maximum(np.abs(d) - m, 0)
    maps = _all_maps(interp, res.difference, 60, seed=9)
    sd = maps.std(axis=0) if correction == "maxt" else np.ones(maps.shape[1:])
    signed = {"two-sided": np.abs, "greater": lambda x: x, "less": lambda x: -x}[alternative]
    stat = np.divide(signed(shrunk), sd, out=np.zeros_like(shrunk), where=sd > 0)
    expected = (np.sum(res.null_max[:, None, None, None] >= stat[None] - 1e-9, axis=0) + 1) / 61
    np.testing.assert_allclose(res.p_adjusted[1:], expected, atol=1e-12)
    assert not (res.significant & ~plain.significant).any()
    assert not res.significant[1:][np.abs(d) <= m].any()
    if correction == "maxt":  # max-T also flags small changes where the SD is small; maxd here only the largest
        assert res.significant.sum() < plain.significant.sum()
    assert res.significant.any()  # the large changes stay


def test_min_change_is_checked_and_only_for_max_statistics():
    interp = seegaan.interpolate(make_cohort(n=24, seed=4, effect=0.8), feature="age", method="linear", steps=3)
    for bad in (-0.1, float("nan"), float("inf"), "lots"):
        with pytest.raises(seegaan.SeegaanError, match="min-change must be"):
            seegaan.sequence(interp, linear8, n_perm=10, correction=MaxT(min_change=bad))
    for correction in ("tfce", "cluster", "fdr_bh", "none"):
        with pytest.raises(seegaan.SeegaanError, match="maxt or maxd only"):
            seegaan.sequence(interp, linear8, n_perm=10, correction=as_correction(correction, min_change=0.1))
    huge = seegaan.sequence(interp, linear8, n_perm=30, correction=MaxT(min_change=1e6))
    assert not huge.significant.any()
    assert "minimum change" in huge.summary().as_text()
    fig = huge.plot()
    assert "|Δ| > 1e+06" in fig._suptitle.get_text()


def test_numba_and_numpy_backends_agree():
    interp = seegaan.interpolate(make_cohort(n=50, seed=8, effect=1.0), feature="age", steps=4)
    a = seegaan.sequence(interp, linear8, n_perm=50, seed=5, backend="numba")
    b = seegaan.sequence(interp, linear8, n_perm=50, seed=5, backend="numpy")
    for name in ("p_value", "p_adjusted", "null_max"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_decode_only_with_zero_permutations():
    interp = seegaan.interpolate(make_cohort(n=30), feature="sex", steps=3)
    res = seegaan.sequence(interp, linear8, n_perm=0)
    ds = res.to_dataset()
    assert "p_value" not in ds and ds.attrs["n_perm"] == 0
    np.testing.assert_allclose(ds["difference"].values, ds["image"].values - ds["image"].values[0])


def test_checkpoint_decoder_batches_permutations_with_same_bits(tmp_path):
    """A seegaan checkpoint decodes many permutations per call; the bits still ignore batch_size."""
    pytest.importorskip("torch")
    from seegaan.model import build_networks, small_config
    from seegaan.model.checkpoint import networks_state, save_checkpoint

    cfg = small_config(32, width=8, latent_size=8)
    path = save_checkpoint(tmp_path / "tiny.pt", cfg, networks_state(build_networks(cfg, seed=0), None))
    dec = seegaan.load_decoder(path)
    assert dec.fn.batch_invariant
    interp = seegaan.interpolate(make_cohort(n=30, seed=4), feature="sex", steps=3)
    runs = [seegaan.sequence(interp, dec, n_perm=21, seed=3, batch_size=bs) for bs in (1, 4, 21)]
    for other in runs[1:]:
        for name in ("images", "p_value", "p_adjusted", "null_max"):
            np.testing.assert_array_equal(getattr(runs[0], name), getattr(other, name))
    # the same as decoding one permutation per call through a wrapper that hides batch invariance
    plain = seegaan.sequence(interp, lambda w: dec(w), n_perm=21, seed=3, batch_size=4)
    np.testing.assert_array_equal(plain.null_max, runs[0].null_max)


@pytest.mark.parametrize("correction", ["maxt", "maxd", "tfce", "none", "fdr_bh"])
@pytest.mark.filterwarnings("ignore::seegaan.SeegaanWarning")
def test_mask_leaves_pixels_out_of_every_correction(correction, tmp_path):
    """Pixels outside the mask are never significant and take no part in the null maxima."""
    rng = np.random.default_rng(5)
    n = 200
    age = rng.uniform(20, 90, n)
    w = rng.standard_normal((n, 8))
    w[:, 0] += (age - 55) / 15  # the planted effect: top half of the 8x8 image
    table = pd.DataFrame(
        {"image_id": [f"i{i}" for i in range(n)], "patient_id": [f"p{i}" for i in range(n)], "age": age}
    )
    interp = seegaan.interpolate(seegaan.create_cohort(w, table), feature="age", steps=4)
    mask = np.ones((8, 8), bool)
    mask[:2] = False  # two of the four planted rows left out
    full = seegaan.sequence(interp, planted, n_perm=200, seed=1, correction=correction)
    part = seegaan.sequence(interp, planted, n_perm=200, seed=1, correction=correction, mask=mask)
    assert full.significant[:, :2].any() and not part.significant[:, :2].any()
    assert part.significant[-1, 2:4].mean() > 0.7  # the rest of the planted region is still found
    assert part.attrs["mask_pixels"] == 48 and len(part.attrs["mask_sha256"]) == 64
    np.testing.assert_array_equal(part.p_value, full.p_value)  # uncorrected p-values are per pixel
    if correction in ("maxt", "maxd"):  # the null maxima now run over the mask only: never larger
        assert np.all(part.null_max <= full.null_max + 1e-12)
    np.save(tmp_path / "mask.npy", mask)
    from_file = seegaan.sequence(interp, planted, n_perm=200, seed=1, correction=correction, mask=tmp_path / "mask.npy")
    np.testing.assert_array_equal(from_file.significant, part.significant)


def test_bad_masks_are_refused(tmp_path):
    interp = seegaan.interpolate(make_cohort(n=30), feature="age", steps=3)
    with pytest.raises(SeegaanError, match="shape"):
        seegaan.sequence(interp, linear8, n_perm=10, mask=np.ones((4, 4), bool))
    with pytest.raises(SeegaanError, match="no pixel"):
        seegaan.sequence(interp, linear8, n_perm=10, mask=np.zeros((8, 8), bool))
    with pytest.raises(SeegaanError, match="does not exist"):
        seegaan.sequence(interp, linear8, n_perm=10, mask=tmp_path / "none.npy")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(SeegaanError, match="cannot read mask"):
        seegaan.sequence(interp, linear8, n_perm=10, mask=tmp_path / "bad.png")


def test_sd_offset_is_checked_and_only_for_maxt():
    ds = make_cohort(n=24, seed=4, effect=0.8)
    interp = seegaan.interpolate(ds, feature="age", method="linear", steps=3)
    for bad in (-1, "p101", "pxx", "lots", float("nan")):
        with pytest.raises(seegaan.SeegaanError, match="sd-offset"):
            seegaan.sequence(interp, linear8, n_perm=10, correction=MaxT(sd_offset=bad))
    with pytest.raises(seegaan.SeegaanError, match="maxt only"):
        seegaan.sequence(interp, linear8, n_perm=10, correction=as_correction("tfce", sd_offset=0))
    # tfce/cluster/maxd keep their own statistics and record no offset
    assert "sd_offset" not in seegaan.sequence(interp, linear8, n_perm=30, correction="maxd").attrs


def test_tfce_with_an_almost_constant_null_is_a_user_error():
    """B = 1 whose one permutation nearly reproduces the observed map: z ~ 1e6 needs more TFCE
    thresholds than allowed; a one-line SeegaanError, not a kernel ValueError (found by hypothesis)."""
    ds = _small_cohort(6, [1, 2, 1], 8, 36)
    interp = seegaan.interpolate(ds, feature="g", method="class-mean", steps=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeegaanWarning)
        with pytest.raises(seegaan.SeegaanError, match="use more permutations or --correction maxt"):
            seegaan.sequence(interp, linear8, n_perm=1, seed=0, correction="tfce", null="permutation")


def test_options_objects_equal_their_names_and_record_their_parameters():
    interp = seegaan.interpolate(make_cohort(n=30, seed=2, effect=1.0), feature="age", steps=3)
    by_name = seegaan.sequence(interp, linear8, n_perm=30, seed=1, correction="tfce")
    by_object = seegaan.sequence(interp, linear8, n_perm=30, seed=1, correction=TFCE())
    np.testing.assert_array_equal(by_name.p_adjusted, by_object.p_adjusted)
    other = seegaan.sequence(interp, linear8, n_perm=30, seed=1, correction=TFCE(E=1.0, connectivity=8))
    assert other.attrs["tfce_E"] == 1.0 and other.attrs["connectivity"] == 8
    assert (
        seegaan.sequence(interp, linear8, n_perm=30, correction=Cluster(threshold=2.5)).attrs["cluster_threshold"]
        == 2.5
    )
    assert as_correction("fdr_bh") == seegaan.PValues("fdr_bh")
    with pytest.raises(SeegaanError, match="unknown correction"):
        seegaan.sequence(interp, linear8, n_perm=10, correction="bogus")
    with pytest.raises(SeegaanError, match="connectivity"):
        TFCE(connectivity=6)
    with pytest.raises(SeegaanError, match="in the options object"):
        as_correction(MaxT(), sd_offset="median")


def test_engine_takes_any_producer_of_null_maps():
    """The engine needs observed maps, rows -> null maps and a plan, not an interpolation (local sequences);
    maxd p-values equal the share of the B + 1 maps whose largest |value| reaches each pixel's."""
    from seegaan.stats import draw_permutations, permutation_test

    rng = np.random.default_rng(0)
    n, shape = 12, (3, 4, 5)
    data = rng.standard_normal((n, *shape)).astype(np.float32)
    x = np.linspace(-1, 1, n)

    def maps_for(order):  # a contrast of the data against a permuted covariate
        return np.tensordot(x[order], data, axes=1).astype(np.float32)

    observed = maps_for(np.arange(n))
    plan = draw_permutations([f"p{i}" for i in range(n)], 40, seed=3)
    test = permutation_test(
        observed, lambda rows: np.stack([maps_for(r).reshape(-1) for r in rows]), plan, correction=MaxD(), batch_size=7
    )
    maps = np.stack([observed, *[maps_for(r) for r in plan.indices]]).astype(np.float64)
    null_max = np.abs(maps[1:]).reshape(40, -1).max(1)
    np.testing.assert_allclose(test.null_max, null_max, rtol=1e-6)
    expected = (np.sum(null_max[:, None, None, None] >= np.abs(maps[0])[None] - 1e-9, axis=0) + 1) / 41
    np.testing.assert_allclose(test.p_adjusted, expected, atol=1e-12)
    assert test.attrs == {"correction": "maxd", "min_change": 0.0}


def test_save_writes_both_files_or_neither(tmp_path, monkeypatch):
    interp = seegaan.interpolate(make_cohort(n=30, seed=2), feature="age", steps=3)
    res = seegaan.sequence(interp, linear8, n_perm=20, seed=1)
    nc, png = res.save(tmp_path / "a.nc", tmp_path / "a.png")
    assert nc.exists() and png.exists()
    with pytest.raises(SeegaanError, match="overwrite"):
        res.save(tmp_path / "b.nc", tmp_path / "a.png")  # refused before anything is written
    assert not (tmp_path / "b.nc").exists()

    class Boom(Exception):
        pass

    def fail(*args, **kwargs):
        raise Boom

    monkeypatch.setattr("seegaan.sequences.plot_sequence", fail)
    with pytest.raises(Boom):
        res.save(tmp_path / "c.nc", tmp_path / "c.png")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nc", "a.png"]
    res.save(tmp_path / "a.nc", overwrite=True)
    seegaan.save_sequence(res.to_dataset(), tmp_path / "d.nc")
    assert (tmp_path / "d.nc").exists()


# ---------------------------------------------------------------------------------------------
# the Welch statistic (issue #11) and strict fp32 decoding
# ---------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::seegaan.SeegaanWarning")
def test_cpu_sequence_records_fp32_and_restores_tf32_flags():
    torch = pytest.importorskip("torch")
    ds = make_cohort(n=20, seed=1)
    interp = seegaan.interpolate(ds, feature="sex", steps=3)
    before = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    seen = {}

    def spy(w):
        seen["flags"] = (
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
            torch.get_float32_matmul_precision(),
        )
        return linear8(w)

    torch.backends.cudnn.allow_tf32 = True
    try:
        res = seegaan.sequence(interp, spy, n_perm=5)
        assert seen["flags"] == (False, False, "highest")  # decoded in strict fp32
        assert res.attrs["precision"].startswith("fp32 (TF32 off) on cpu")
        assert torch.backends.cudnn.allow_tf32 is True  # restored after
    finally:
        torch.backends.cudnn.allow_tf32 = before[1]
    assert (torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision()) == (before[0], before[2])
    assert seegaan.sequence(interp, linear8, n_perm=0).attrs["precision"].startswith("fp32")


def test_memory_check_refuses_a_huge_plan_with_the_number():
    from seegaan.stats.engine import check_memory

    with pytest.raises(SeegaanError, match=r"1000000000 permutations of 100 images need 745 GiB"):
        check_memory(10**9, 100, available=64 * 2**30)
    check_memory(1000, 100, 64 * 64 * 8, available=64 * 2**30)  # fits
    with pytest.raises(SeegaanError, match="null cache"):
        check_memory(10**6, 10, 512 * 512 * 8, null_cache_mb=10**8, available=2**30)


def test_nan_mask_is_refused():
    interp = seegaan.interpolate(make_cohort(n=20, seed=1), feature="sex", steps=3)
    mask = np.ones((8, 8))
    mask[0, 0] = np.nan
    with pytest.raises(SeegaanError, match="NaN or infinite"):
        seegaan.sequence(interp, linear8, n_perm=5, mask=mask)


# ---------------------------------------------------------------------------------------------
# the HC3 statistic of linear trajectories (issue #11 item 2)
# ---------------------------------------------------------------------------------------------
def test_save_on_ctrl_c_while_the_figure_is_written_leaves_neither_file(tmp_path, monkeypatch):
    """A Ctrl-C during the figure (the second file) must also drop the netCDF file (one deferral)."""
    import os
    import signal

    import seegaan

    interp = seegaan.interpolate(make_cohort(n=30), feature="sex", method="class-mean", steps=3)
    result = seegaan.sequence(interp, "seegaan.testing.decoders:linear8", n_perm=0)

    def plot_interrupted(self, path=None, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # held back until both files are written, then raised
        Path(path).write_bytes(b"png")

    monkeypatch.setattr(seegaan.SequenceResult, "plot", plot_interrupted)
    with pytest.raises(KeyboardInterrupt):
        result.save(tmp_path / "s.nc", tmp_path / "s.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_seed_none_draws_a_seed_and_records_it():
    import seegaan

    interp = seegaan.interpolate(make_cohort(n=30), feature="sex", method="class-mean", steps=3)
    first = seegaan.sequence(interp, "seegaan.testing.decoders:linear8", n_perm=30, seed=None, statistic="difference")
    seed = first.attrs["seed"]
    assert seed.isdigit()  # fresh randomness, but the output says which
    again = seegaan.sequence(
        interp, "seegaan.testing.decoders:linear8", n_perm=30, seed=int(seed), statistic="difference"
    )
    assert np.array_equal(first.p_value, again.p_value) and np.array_equal(first.null_max, again.null_max)


@pytest.mark.parametrize("null_cache_mb", [1024, 0])
def test_batches_waiting_for_the_kernels_give_the_same_bits(monkeypatch, null_cache_mb):
    """Null maps produced while the kernels load in the background are added later, in plan order: the
    same p-values and maxima as when the kernels were loaded before (also when the wait is cut short)."""
    import threading
    import time

    import seegaan_kernels
    from seegaan.stats import draw_permutations, engine, permutation_test

    rng = np.random.default_rng(1)
    n, shape = 14, (2, 5, 6)
    data = rng.standard_normal((n, *shape)).astype(np.float32)
    x = rng.standard_normal(n)

    def producer(rows):
        return np.stack([np.tensordot(x[r], data, axes=1).astype(np.float32).reshape(-1) for r in rows])

    observed = producer(np.arange(n)[None])[0].reshape(shape)
    plan = draw_permutations([f"p{i}" for i in range(n)], 60, seed=2)

    def run(loading_seconds):
        def slow_preload(backend):
            thread = threading.Thread(target=time.sleep, args=(loading_seconds,), daemon=True)
            thread.start()
            return thread

        monkeypatch.setattr(seegaan_kernels, "preload", slow_preload)
        return permutation_test(observed, producer, plan, correction=MaxT(), batch_size=4, null_cache_mb=null_cache_mb)

    loaded = run(0.0)
    waited = run(0.5)
    monkeypatch.setattr(engine, "PRELOAD_WAIT_BYTES", 3 * 4 * observed.size * 4)  # cut short after 3 batches
    cut = run(0.5)
    for other in (waited, cut):
        np.testing.assert_array_equal(other.p_value, loaded.p_value)
        np.testing.assert_array_equal(other.null_max, loaded.null_max)
        np.testing.assert_array_equal(other.p_adjusted, loaded.p_adjusted)
