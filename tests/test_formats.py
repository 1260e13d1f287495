"""CF-1.10 metadata: long_name and units on every variable and coordinate, read back by xarray and ncdump."""

import shutil
import subprocess

import numpy as np
import pytest
import xarray as xr

from seegaan.formats import add_cf_attrs
from seegaan.testing.cohorts import make_cohort
from tests.viz.test_animation import tiny_sequence


@pytest.mark.parametrize("local", [False, True])
def test_sequence_cf_attrs_round_trip(tmp_path, local):
    ds = tiny_sequence(local=local)
    cf = add_cf_attrs(ds, "sequence")
    assert "Conventions" not in ds.attrs and ds["image"].attrs == {}  # the input is left alone
    path = tmp_path / "s.nc"
    cf.to_netcdf(path, engine="netcdf4")
    back = xr.open_dataset(path)
    assert back.attrs["Conventions"] == "CF-1.10"
    names = [*back.data_vars, *back.coords]
    assert {"image", "significant", "w"} <= set(names) and (("lambda" in names) == local)
    for name in names:
        assert back[name].attrs.get("long_name"), name
        assert back[name].attrs.get("units"), name
    assert back["image"].attrs["units"] == "1"
    assert back["significant"].dtype == bool and list(back["significant"].attrs["flag_values"]) == [0, 1]
    if ncdump := shutil.which("ncdump"):
        header = subprocess.run([ncdump, "-h", str(path)], check=True, capture_output=True, text=True).stdout
        assert ':Conventions = "CF-1.10"' in header
        for name in names:
            if name != "step" or "step:long_name" in header:  # an index coordinate is a variable too
                assert f"{name}:long_name" in header and f"{name}:units" in header, name
    else:
        pytest.skip("ncdump not installed (apt-get install netcdf-bin); checked with xarray only")


def test_cohort_cf_attrs_and_given_units(tmp_path):
    cohort = make_cohort(n=12)
    cf = add_cf_attrs(cohort, "cohort", units={"age": "year"})
    path = tmp_path / "c.nc"
    cf.to_netcdf(path, engine="netcdf4")
    back = xr.open_dataset(path)
    assert back["age"].attrs == {"long_name": "clinical feature age", "units": "year"}
    assert back["patient_id"].attrs["long_name"] == "patient identifier"
    for name in [*back.data_vars, *back.coords]:
        assert {"long_name", "units"} <= set(back[name].attrs), name
    assert back.attrs["title"] == "SEE-GAAN latent cohort" and back.attrs["Conventions"] == "CF-1.10"


def test_feature_value_units():
    seq = tiny_sequence()
    seq["feature_value"].attrs["units"] = "year"
    assert add_cf_attrs(seq)["feature_value"].attrs["units"] == "year"  # recorded units are kept
    seq.attrs["levels"] = "F,M"
    fv = add_cf_attrs(seq)["feature_value"].attrs
    assert fv == {"long_name": "fraction of the way from F to M", "units": "1"}
    with pytest.raises(ValueError):
        add_cf_attrs(seq, "image")
    assert np.array_equal(add_cf_attrs(seq)["image"].values, seq["image"].values)
