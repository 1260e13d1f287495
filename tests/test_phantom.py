"""The chest-radiograph phantom: determinism, documented effect directions, truth maps, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from seegaan import SeegaanError
from seegaan import phantom as ph
from seegaan.phantom import anatomy, truth, writer

SIZE = 48


def test_render_is_deterministic_and_in_range():
    table, params = ph.sample_cohort(6, seed=3)
    again_table, again = ph.sample_cohort(6, seed=3)
    pd.testing.assert_frame_equal(table, again_table)
    for p, q in zip(params, again):
        a, b = ph.render(p, size=SIZE), ph.render(q, size=SIZE)
        assert a.dtype == np.float32 and a.shape == (SIZE, SIZE)
        np.testing.assert_array_equal(a, b)
        assert a.min() == -1.0 and a.max() == 1.0  # air is the minimum, the marker the maximum
    other, _ = ph.sample_cohort(6, seed=4)
    assert not other.equals(table)


def test_any_size_renders_the_same_anatomy():
    p = ph.PhantomParams(sex="F", ahf=True, bnpp=2000.0)
    small = ph.render(p, size=32, noise=False).astype(np.float64)
    big = ph.render(p, size=128, noise=False).astype(np.float64)
    pooled = big.reshape(32, 4, 32, 4).mean(axis=(1, 3))
    assert np.corrcoef(small.ravel(), pooled.ravel())[0, 1] > 0.97


def test_effect_maps_are_render_differences():
    ref = ph.REFERENCE
    for feature, a, b in (
        ("bnpp", 50.0, 3000.0),
        ("sex", "F", "M"),
        ("ahf", False, True),
        ("age", 35.0, 85.0),
        ("manufacturer", "vendor_a", "vendor_c"),
    ):
        eff = ph.effect_map(feature, a, b, size=SIZE)
        hi = ph.render({**ref, feature: b}, size=SIZE, noise=False)
        lo = ph.render({**ref, feature: a}, size=SIZE, noise=False)
        np.testing.assert_allclose(eff, hi.astype(np.float64) - lo, atol=1e-6)
        np.testing.assert_allclose(ph.effect_map(feature, b, a, size=SIZE), -eff, atol=1e-6)


def _heart_area(bnpp: float) -> int:
    """Pixels of the lower central region brighter than the lung fields (the cardiac silhouette)."""
    img = ph.render(ph.PhantomParams(bnpp=bnpp), size=96, noise=False)
    region = img[48:80, 25:75]
    return int((region > -0.15).sum())


def test_documented_directions():
    areas = [_heart_area(v) for v in (30.0, 300.0, 3000.0, 30000.0)]
    assert areas == sorted(areas) and areas[-1] > areas[0] * 1.2  # heart grows with BNPP
    bnpp = ph.effect_map("bnpp", 50.0, 3000.0, size=SIZE)
    assert bnpp.max() > 0.3 and bnpp.min() > -0.05  # larger and denser, nothing lost
    ahf = ph.effect_map("ahf", False, True, size=SIZE)
    rows = np.nonzero(ph.effect_mask(ahf))[0]
    assert ahf.min() >= -1e-6 and rows.min() > SIZE * 0.55  # effusions: lower lung zones only
    sex = ph.effect_map("sex", "F", "M", size=SIZE)
    assert sex.max() <= 1e-6 and sex.min() < -0.25  # M - F: breast tissue missing in men
    age = ph.effect_map("age", 35.0, 85.0, size=SIZE)
    rows = np.nonzero(ph.effect_mask(age))[0]
    assert age.max() <= 1e-6 and rows.max() < SIZE * 0.3  # bones of the shoulder girdle less dense
    manu = ph.effect_map("manufacturer", "vendor_a", "vendor_b", size=SIZE)
    assert ph.effect_mask(manu).mean() > 0.5  # a global contrast change


def test_feature_regions_do_not_overlap():
    masks = {
        f: ph.effect_mask(ph.effect_map(f, *ph.truth_contrasts(ph.sample_cohort(300, seed=0)[0])[f], size=SIZE))
        for f in ("bnpp", "ahf", "sex", "age")
    }
    for f, m in masks.items():
        assert 0.02 < m.mean() < 0.25, f
    names = list(masks)
    for i, f in enumerate(names):
        for g in names[i + 1 :]:
            assert not (masks[f] & masks[g]).any(), (f, g)


def test_joint_distribution():
    table, _ = ph.sample_cohort(3000, seed=1)
    patients = table.drop_duplicates("patient_id")
    by_ahf = patients.groupby("ahf")
    assert by_ahf["age"].mean()[True] > by_ahf["age"].mean()[False] + 5
    assert by_ahf["bnpp"].median()[True] > 4 * by_ahf["bnpp"].median()[False]
    assert 0.2 < patients["ahf"].mean() < 0.5
    share_two = (table["patient_id"].value_counts() == 2).mean()
    assert 0.12 < share_two < 0.28
    # blocked randomisation: sex and manufacturer balanced within AHF status
    assert abs(patients.groupby("ahf")["sex"].apply(lambda s: (s == "M").mean()).diff().iloc[-1]) < 0.02
    shares = patients["manufacturer"].value_counts(normalize=True)
    assert shares["vendor_a"] == pytest.approx(0.45, abs=0.01) and shares["vendor_c"] == pytest.approx(0.2, abs=0.01)
    assert list(table.columns) == ["image_id", "patient_id", "sex", "age", "ahf", "bnpp", "manufacturer", "view"]


def test_quadrature_matches_the_sampler():
    """The weights behind the marginal maps agree with the sampler's conditional frequencies."""
    pop = ph.sample_clinical(200_000, seed=0)
    for value in (100.0, 1000.0):
        nodes = truth._conditional_nodes("bnpp", value, 9)
        p_ahf = sum(w for w, c in nodes if c["ahf"])
        near = pop[np.abs(np.log(pop["bnpp"]) - np.log(value)) < 0.05]
        assert p_ahf == pytest.approx(near["ahf"].mean(), abs=0.03)
        mean_age = sum(w * c["age"] for w, c in nodes)
        assert mean_age == pytest.approx(near["age"].mean(), abs=1.0)
    nodes = truth._conditional_nodes("ahf", True, 9)
    assert sum(w * c["age"] for w, c in nodes) == pytest.approx(pop.loc[pop.ahf, "age"].mean(), abs=0.7)


def test_marginal_maps():
    direct = ph.effect_map("ahf", False, True, size=32)
    marginal = ph.marginal_effect_map("ahf", False, True, size=32)
    heart = ph.effect_mask(ph.effect_map("bnpp", 50.0, 3000.0, size=32))
    assert abs(direct[heart]).max() < 0.05 * direct.max() and marginal[heart].mean() > 0.05  # via BNPP
    sex = ph.marginal_effect_map("sex", "F", "M", size=32)
    assert np.corrcoef(sex.ravel(), ph.effect_map("sex", "F", "M", size=32).ravel())[0, 1] > 0.99
    np.testing.assert_array_equal(sex, ph.marginal_effect_map("sex", "F", "M", size=32))


def test_bad_parameters():
    with pytest.raises(SeegaanError, match="sex"):
        ph.render({"sex": "X"}, size=32)
    with pytest.raises(SeegaanError, match="unknown phantom parameter"):
        ph.render({"weight": 3}, size=32)
    with pytest.raises(SeegaanError, match="bnpp"):
        ph.effect_map("bnpp", 0, 10, size=32)
    with pytest.raises(SeegaanError, match="unknown phantom feature"):
        ph.effect_map("bmi", 1, 2, size=32)
    with pytest.raises(SeegaanError, match="size"):
        ph.render({}, size=8)


def test_write_phantom_folder(tmp_path):
    out = ph.write_phantom(tmp_path / "ph", n=14, size=32, seed=2)
    clinical = pd.read_csv(out / "clinical.csv")
    assert len(clinical) == 14 and len(list((out / "images").glob("*.png"))) == 14
    for f in ph.FEATURES:
        eff = np.load(out / "truth" / f"effect_{f}.npy")
        mask = np.load(out / "truth" / f"{f}_mask.npy")
        assert eff.shape == (32, 32) and mask.dtype == bool
        np.testing.assert_array_equal(mask, ph.effect_mask(eff))
        assert (out / "truth" / f"marginal_{f}.npy").exists()
    meta = json.loads((out / "phantom.json").read_text())
    lo, hi = meta["contrasts"]["bnpp"]
    np.testing.assert_allclose(
        np.load(out / "truth" / "effect_bnpp.npy"), ph.effect_map("bnpp", lo, hi, size=32), atol=1e-7
    )
    assert lo == pytest.approx(np.percentile(clinical["bnpp"], 5))
    readme = (out / "truth" / "README.md").read_text()
    assert "M - F" in readme and "marginal" in readme and "marker_free_mask.npy" in readme
    np.testing.assert_array_equal(np.load(out / "truth" / "marker_free_mask.npy"), ph.marker_free_mask(32))
    # images read back through the data loader equal the renders (16-bit quantisation)
    from seegaan.data import load_dataset

    data = load_dataset(out / "images", out / "clinical.csv", size=None)
    _, params = ph.sample_cohort(14, seed=2)
    first = data.table["image_id"].tolist().index("ph00000_0")
    np.testing.assert_allclose(data.array([first])[0, 0], ph.render(params[0], size=32), atol=4e-5)
    # same seed, same bits
    again = ph.write_phantom(tmp_path / "ph2", n=14, size=32, seed=2, marginal=False)
    for name in ("ph00000_0.png", "ph00003_0.png"):
        assert (out / "images" / name).read_bytes() == (again / "images" / name).read_bytes()
    assert (out / "clinical.csv").read_bytes() == (again / "clinical.csv").read_bytes()


def test_write_is_atomic(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = writer._to_png

    def failing(img, path, bit_depth):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real(img, path, bit_depth)

    monkeypatch.setattr(writer, "_to_png", failing)
    with pytest.raises(KeyboardInterrupt):
        ph.write_phantom(tmp_path / "ph", n=5, size=32, marginal=False)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a temporary one is left


def test_cli(tmp_path):
    from seegaan.cli.app import app

    runner = CliRunner()
    out = tmp_path / "demo"
    res = runner.invoke(
        app,
        ["phantom", "--n", "5", "--size", "32", "--seed", "1", "--out", str(out), "--no-marginal", "--bit-depth", "8"],
    )
    assert res.exit_code == 0, res.output
    assert (out / "clinical.csv").exists() and (out / "truth" / "effect_sex.npy").exists()
    res = runner.invoke(app, ["phantom", "--n", "5", "--size", "32", "--out", str(out)])
    assert res.exit_code == 2 and "already exists" in res.output and "--overwrite" in res.output
    res = runner.invoke(app, ["phantom", "--n", "3", "--size", "32", "--out", str(out), "--overwrite", "--no-marginal"])
    assert res.exit_code == 0 and len(list((out / "images").glob("*.png"))) == 3
    for bad, text in (
        (["--n", "0"], "--n"),
        (["--n", "abc"], "--n"),
        (["--size", "8"], "--size"),
        (["--bit-depth", "12"], "bit-depth"),
    ):
        res = runner.invoke(app, ["phantom", "--out", str(tmp_path / "x"), *bad])
        assert res.exit_code == 2 and text in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1
    res = runner.invoke(app, ["phantom", "--out", str(tmp_path / "no" / "such" / "dir"), "--n", "2"])
    assert res.exit_code == 2 and "does not exist" in res.output
    assert not (tmp_path / "x").exists()


def test_score_map_and_read_truth(tmp_path):
    truth = np.zeros((4, 4), bool)
    truth[:2] = True  # 8 true pixels
    sig = np.zeros((4, 4), bool)
    sig[1:3] = True  # 4 inside, 4 outside
    s = ph.score_map(sig, truth)
    assert s["dice"] == pytest.approx(0.5) and s["sensitivity"] == pytest.approx(0.5)
    assert s["outside"] == pytest.approx(0.5)
    assert ph.score_map(np.zeros((4, 4), bool), truth)["outside"] == 0.0
    with pytest.raises(SeegaanError, match="shape"):
        ph.score_map(sig, truth[:2])
    out = ph.write_phantom(tmp_path / "p", n=2, size=32, marginal=False)
    effect, mask = ph.read_truth(out, "sex")
    assert effect.shape == (32, 32) and mask.dtype == bool
    with pytest.raises(SeegaanError, match="--marginal"):
        ph.read_truth(out, "sex", marginal=True)


@pytest.mark.parametrize("size", [32, 64, 256])
def test_marker_free_mask_leaves_out_every_marker_and_little_else(size):
    import dataclasses

    mask = ph.marker_free_mask(size)
    _, params = ph.sample_cohort(40, seed=5)
    jx, jy = ph.MARKER_JITTER
    extremes = [
        dict(marker_side=side, marker_dx=dx, marker_dy=dy)
        for side in (-1, 1)
        for dx in (-jx, 0.0, jx)
        for dy in (-jy, 0.0, jy)
    ]
    for p in params + [dataclasses.replace(params[0], **e) for e in extremes]:
        marker = anatomy._marker(size, p) > 0  # at 32x32 the thin letter may miss every pixel centre
        assert not (marker & mask).any()
        assert marker.any() or size < 64
    assert mask.mean() > 0.9  # two small corner boxes
    assert mask[size // 2].all() and mask[-1].all()  # the body and the lower image stay tested
    # rendered images: the marker saturates at +1 only inside the left-out corners
    img = ph.render(params[0], size=size)
    assert not (img[mask] >= 0.999).any()


def test_overwrite_replaces_only_a_phantom_folder(tmp_path):
    out = tmp_path / "ph"
    ph.write_phantom(out, n=3, size=32, marginal=False)
    assert (out / writer.MARKER).is_file()
    ph.write_phantom(out, n=2, size=32, marginal=False, overwrite=True)  # its own folder: replaced
    assert len(list((out / "images").glob("*.png"))) == 2

    (out / "images" / "my_patient.png").write_bytes(b"a scan")  # a user's image among the phantom's
    with pytest.raises(SeegaanError, match="images/my_patient.png"):
        ph.write_phantom(out, n=2, size=32, marginal=False, overwrite=True)
    assert (out / "images" / "my_patient.png").read_bytes() == b"a scan"
    (out / "images" / "my_patient.png").unlink()

    (out / "my_notes.txt").write_text("mine")  # a user's file inside a phantom folder
    with pytest.raises(SeegaanError, match="holds files a phantom does not write \\(my_notes.txt\\)"):
        ph.write_phantom(out, n=2, size=32, marginal=False, overwrite=True)
    assert (out / "my_notes.txt").read_text() == "mine"

    data = tmp_path / "data"  # a user's folder, e.g. a mistyped --out
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "scan.png").write_bytes(b"precious")
    from seegaan.cli.app import app

    res = CliRunner().invoke(app, ["phantom", "--n", "2", "--size", "32", "--out", str(data), "--overwrite"])
    assert res.exit_code == 2 and "is not a phantom folder written by seegaan" in res.stderr
    assert len([line for line in res.stderr.splitlines() if line.strip()]) == 1
    assert (data / "sub" / "scan.png").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "ph"]  # no temporary folder left

    (out / "my_notes.txt").unlink()
    (out / writer.MARKER).unlink()  # written before the marker existed: recognised by its files
    ph.write_phantom(out, n=3, size=32, marginal=False, overwrite=True)
    assert (out / writer.MARKER).is_file() and len(list((out / "images").glob("*.png"))) == 3
    (out / writer.MARKER).unlink()
    (out / "phantom.json").write_text("{}")
    with pytest.raises(SeegaanError, match="is not a phantom folder"):
        ph.write_phantom(out, n=2, size=32, marginal=False, overwrite=True)

    empty = tmp_path / "empty"
    empty.mkdir()
    ph.write_phantom(empty, n=2, size=32, marginal=False, overwrite=True)
    assert (empty / "clinical.csv").exists()
