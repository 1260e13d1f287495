import numpy as np
import pandas as pd
import pytest
import xarray as xr

import seegaan
from seegaan import SeegaanError
from seegaan.data.cohort import cohort_summary, open_cohort, save_cohort
from seegaan.testing.cohorts import make_cohort


def test_round_trip_is_exact(tmp_path):
    ds = make_cohort(
        n=30, extra={"site": ["a", "", "b"] * 10, "flag": [True, None, False] * 10, "lab": [1.5, np.nan, 3.0] * 10}
    )
    save_cohort(ds, tmp_path / "c.nc")
    back = open_cohort(tmp_path / "c.nc")
    xr.testing.assert_identical(ds, back)
    assert back["w"].dtype == np.float32
    assert back.attrs["image_size"] == 8 and back.attrs["model"] == "test"
    for key in ("seegaan_version", "created"):
        assert key in back.attrs


def test_schema_and_types():
    ds = make_cohort(n=10)
    assert ds["w"].dims == ("image", "latent")
    assert set(ds["split"].values) == {""}  # no split column: not assigned (a foreign cohort is no training set)
    assert ds["ahf"].dtype == bool
    assert np.issubdtype(ds["age"].dtype, np.floating)


def test_summary_lists_features():
    text = cohort_summary(make_cohort(n=20)).as_text()
    for word in ("images", "patients", "age", "numeric", "sex", "categorical", "ahf", "boolean", "missing"):
        assert word in text
    assert "<table>" in cohort_summary(make_cohort(n=5))._repr_html_()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t, w: (t.drop(columns="image_id"), w), "image_id"),
        (lambda t, w: (t.iloc[:-1], w), "rows"),
        (lambda t, w: (t.assign(image_id=["x"] * len(t)), w), "unique"),
        (lambda t, w: (t.assign(split=["train", "bogus"] * (len(t) // 2)), w), "split"),
        (lambda t, w: (t, np.where(np.arange(w.size).reshape(w.shape) == 3, np.nan, w)), "NaN"),
    ],
)
def test_create_refuses_bad_input(mutate, message):
    rng = np.random.default_rng(0)
    t = pd.DataFrame({"image_id": [f"i{i}" for i in range(6)], "patient_id": list("aabbcc")})
    w = rng.standard_normal((6, 4))
    t2, w2 = mutate(t, w)
    with pytest.raises(SeegaanError, match=message):
        seegaan.create_cohort(w2, t2)


def test_open_refuses_missing_corrupt_and_foreign(tmp_path):
    with pytest.raises(SeegaanError, match="does not exist"):
        open_cohort(tmp_path / "none.nc")
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"not a netcdf file at all")
    with pytest.raises(SeegaanError, match="not a readable"):
        open_cohort(bad)
    other = tmp_path / "other.nc"
    xr.Dataset({"v": ("x", np.arange(3.0))}).to_netcdf(other)
    with pytest.raises(SeegaanError, match="no variable 'w'"):
        open_cohort(other)


def test_save_refuses_existing_file(tmp_path):
    ds = make_cohort(n=6)
    path = tmp_path / "c.nc"
    path.write_text("keep me")
    with pytest.raises(SeegaanError, match="overwrite"):
        save_cohort(ds, path)
    assert path.read_text() == "keep me"
    save_cohort(ds, path, overwrite=True)
    assert open_cohort(path).sizes["image"] == 6


def test_import_is_light():
    import subprocess
    import sys

    code = (
        "import sys, seegaan; seegaan.create_cohort; "
        "print(any(m in sys.modules for m in ('torch', 'numba', 'matplotlib')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_columns_netcdf_cannot_name_are_kept_renamed(tmp_path):
    # issue #12: "heart rate" vanished on save (xarray warning only) and "BMI/kg" crashed save_cohort
    from seegaan.data.cohort import clinical_features, create_cohort

    table = pd.DataFrame(
        {
            "image_id": ["a", "b", "c"],
            "heart rate": [60.0, 70.0, np.nan],
            "BMI/kg": [20.0, 25.0, 30.0],
            "x-y": [1, 2, 3],
        }
    )
    ds = create_cohort(np.zeros((3, 4)), table)
    save_cohort(ds, tmp_path / "c.nc")
    back = open_cohort(tmp_path / "c.nc")
    assert set(clinical_features(back)) == {"heart_rate", "BMI_kg", "x-y"}
    assert back["heart_rate"].attrs["original_name"] == "heart rate"
    assert back["BMI_kg"].attrs["original_name"] == "BMI/kg" and "original_name" not in back["x-y"].attrs
    np.testing.assert_array_equal(back["BMI_kg"].values, [20.0, 25.0, 30.0])
    assert "'heart rate' -> heart_rate" in back.attrs["renamed_columns"]


@pytest.mark.parametrize(
    "columns, message",
    [
        ({"heart rate": [1], "heart_rate": [2]}, "both become 'heart_rate'"),
        ({"BMI/kg": [1], "BMI kg": [2]}, "both become 'BMI_kg'"),
        ({"image id": [1]}, "would be named 'image_id'"),
        ({"w": [1]}, "reserved"),
    ],
)
def test_create_refuses_names_that_clash(columns, message):
    from seegaan.data.cohort import create_cohort

    with pytest.raises(SeegaanError, match=message):
        create_cohort(np.zeros((1, 2)), pd.DataFrame({"image_id": ["a"], **columns}))
