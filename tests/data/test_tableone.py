"""Table 1: numbers against scipy, cohort input, CSV output and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import typer
from scipy import stats
from typer.testing import CliRunner

from seegaan import SeegaanError
from seegaan.data import table1


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    n = 90
    split = np.array(["train"] * 60 + ["val"] * 15 + ["test"] * 15)
    age = rng.normal(60, 10, n)
    age[[3, 70]] = np.nan
    sex = rng.choice(["F", "M"], n)
    sex[5] = ""
    return pd.DataFrame(
        {
            "image_id": [f"i{i}" for i in range(n)],
            "patient_id": [f"p{i // 2}" for i in range(n)],
            "split": split,
            "age": age,
            "sex": sex,
            "ahf": rng.integers(0, 2, n),
        }
    )


def test_numbers_match_scipy(frame):
    res = table1(frame)
    assert res.groups == ("train", "val", "test")
    f = res.frame.set_index(["feature", "level"])
    age = frame["age"]
    groups = [age[(frame.split == g) & age.notna()] for g in res.groups]
    assert f.loc[("age", ""), "p_value"] == pytest.approx(stats.f_oneway(*groups).pvalue)
    assert f.loc[("age", ""), "train"] == f"{groups[0].mean():.1f} ± {groups[0].std(ddof=1):.1f}"
    assert f.loc[("age", ""), "missing"] == "1/1/0 (2)"
    ok = frame[frame.sex != ""]
    ct = pd.crosstab(ok.sex, ok.split)[list(res.groups)]
    assert f.loc[("sex", "F"), "p_value"] == pytest.approx(stats.chi2_contingency(ct, correction=False).pvalue)
    n_f_val = int(ct.loc["F", "val"])
    assert f.loc[("sex", "F"), "val"] == f"{n_f_val} ({100 * n_f_val / ct['val'].sum():.1f}%)"
    assert ("ahf", "1") in f.index  # 0/1 integers are categorical
    assert res.counts["images"]["overall"] == 90 and res.counts["patients"]["overall"] == 45


def test_two_groups_use_the_t_test(frame):
    res = table1(frame, by="sex", features=["age"])
    assert res.groups == ("F", "M")
    a = frame.age[(frame.sex == "F") & frame.age.notna()]
    b = frame.age[(frame.sex == "M") & frame.age.notna()]
    row = res.frame.iloc[0]
    assert row["test_name"] == "t-test" and row["p_value"] == pytest.approx(stats.ttest_ind(a, b).pvalue)
    assert "1 rows without a value of 'sex' left out" in res.as_text()


def test_cohort_dataset_and_csv(frame, tmp_path):
    import xarray as xr

    ds = xr.Dataset(
        {"w": (("image", "latent"), np.zeros((len(frame), 3), np.float32))},
        coords={c: ("image", frame[c].to_numpy()) for c in frame.columns},
    )
    a, b = table1(ds), table1(frame)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    out = a.to_csv(tmp_path / "t1.csv")
    back = pd.read_csv(out)
    assert back.iloc[0]["feature"] == "n_images" and "p_value" in back.columns
    with pytest.raises(SeegaanError, match="exists"):
        a.to_csv(tmp_path / "t1.csv")


def test_bad_options(frame):
    with pytest.raises(SeegaanError, match="no column 'arm'"):
        table1(frame, by="arm")
    with pytest.raises(SeegaanError, match="unknown feature"):
        table1(frame, features=["bmi"])


def test_cli(frame, tmp_path):
    from seegaan.cli.stats_table1 import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop():  # a second command keeps typer in multi-command mode
        pass

    frame.to_csv(tmp_path / "clin.csv", index=False)
    runner = CliRunner()
    res = runner.invoke(app, ["table1", str(tmp_path / "clin.csv"), "--csv", str(tmp_path / "o.csv")])
    assert res.exit_code == 0, res.output
    assert "Table 1 by split" in res.output and (tmp_path / "o.csv").exists()
    res = runner.invoke(app, ["table1", str(tmp_path / "clin.csv"), "--by", "nope"])
    assert res.exit_code == 2 and "no column 'nope'" in res.output
    res = runner.invoke(app, ["table1", str(tmp_path / "missing.csv")])
    assert res.exit_code == 2 and "no such table file" in res.output


def test_headers_are_distinct_on_the_demo():
    from seegaan import demo

    for by in ("split", "sex"):
        res = table1(str(demo.cohort_path()), by=by)
        header = res.as_text().splitlines()[2].split()
        assert len(header) == len(set(header)), header
        assert res.frame.columns.is_unique
    assert "test" in table1(str(demo.cohort_path()), by="split").groups


def test_cli_checks_the_csv_before_reading(frame, tmp_path, monkeypatch):
    import importlib

    from seegaan.cli.stats import app

    table1_module = importlib.import_module("seegaan.data.tableone")  # the module, not the function

    frame.to_csv(tmp_path / "clin.csv", index=False)
    (tmp_path / "old.csv").write_text("keep")
    calls = []
    monkeypatch.setattr(table1_module, "table1", lambda *a, **k: calls.append(1))
    runner = CliRunner()
    for out, extra, text in (
        (tmp_path / "clin.csv", ["--overwrite"], "is the input"),
        (tmp_path / "o.txt", [], "give a .csv path"),
        (tmp_path / "old.csv", [], "already exists"),
    ):
        res = runner.invoke(app, ["table1", str(tmp_path / "clin.csv"), "--csv", str(out), *extra])
        assert res.exit_code == 2 and text in res.stderr, res.output
    assert calls == [] and (tmp_path / "old.csv").read_text() == "keep"


def test_cohort_without_a_split_is_one_group():
    from seegaan.data.tableone import table1
    from seegaan.testing.cohorts import make_cohort

    res = table1(make_cohort(n=20))  # no split column: not assigned
    assert res.groups == ("all",) and any("no split assigned" in n for n in res.notes)
