"""load_dataset / ImageSet on the real radiographs and on small synthetic folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from seegaan import SeegaanError
from seegaan.data import load_dataset, patient_splits

CXR = Path(os.environ.get("SEEGAAN_CXR_DIR", Path(__file__).resolve().parents[2].parent / "shared/data/cxr"))
needs_cxr = pytest.mark.skipif(not (CXR / "metadata.csv").exists(), reason="real radiographs not present")


@pytest.fixture(scope="module")
def cxr_subset(tmp_path_factory):
    """Links to 120 real radiographs (never copies into the repository) and their metadata rows."""
    meta = pd.read_csv(CXR / "metadata.csv", dtype={"image_id": str, "patient_id": str})
    # patients with two images, plus single-image patients, from several sources
    multi = meta[meta.patient_id.duplicated(keep=False)].head(40)
    rest = meta[~meta.patient_id.isin(multi.patient_id)].groupby("source").head(14)
    sub = pd.concat([multi, rest]).head(120)
    folder = tmp_path_factory.mktemp("cxr") / "images"
    folder.mkdir()
    for image_id in sub.image_id:
        os.symlink(CXR / "images" / f"{image_id}.png", folder / f"{image_id}.png")
    return folder, sub.reset_index(drop=True), meta


@needs_cxr
def test_real_cxr_join_split_and_batches(cxr_subset):
    folder, sub, meta = cxr_subset
    data = load_dataset(folder, CXR / "metadata.csv", size=64, seed=3)
    assert len(data) == len(sub)
    assert list(data.table.columns[:3]) == ["image_id", "patient_id", "split"]
    assert {"sex", "age", "view", "source"} <= set(data.table.columns)
    assert data.counts["rows_without_image"] == len(meta) - len(sub)
    assert data.counts["images_without_row"] == 0
    # one split per patient, all three splits used, roughly 80/10/10 of patients
    assert data.table.groupby("patient_id")["split"].nunique().max() == 1
    per_split = data.table.groupby("split")["patient_id"].nunique()
    assert per_split["train"] > per_split["val"] > 0 and per_split["test"] > 0
    merged = data.table.merge(sub[["image_id", "age", "sex"]], on="image_id", suffixes=("", "_ref"))
    pd.testing.assert_series_equal(merged["age"], merged["age_ref"], check_names=False)
    ids, x = next(data.batches(50))
    assert x.shape == (50, 1, 64, 64) and x.dtype == np.float32
    assert x.min() == -1.0 and x.max() == 1.0 and ids == data.image_ids[:50]
    np.testing.assert_array_equal(data.array([0, 1]), x[:2])
    report = data.report()
    assert f"table rows without an image: {len(meta) - len(sub)}" in report


@needs_cxr
def test_view_filter_and_subset(cxr_subset):
    folder, sub, _ = cxr_subset
    data = load_dataset(folder, CXR / "metadata.csv", size=32, view=["pa", "AP"])
    expected = sub.view.isin(["PA", "AP"]).sum()
    assert len(data) == expected
    assert data.counts["view_excluded"] == len(sub) - expected
    assert data.counts["view_missing"] == sub.view.isna().sum()
    parts = [data.subset(s) for s in ("train", "val", "test")]
    assert sum(len(p) for p in parts) == len(data)
    assert set(parts[1].table["split"]) == {"val"}
    with pytest.raises(SeegaanError, match="unknown split"):
        data.subset("validation")


@needs_cxr
def test_splits_are_seeded(cxr_subset):
    folder, _, _ = cxr_subset
    a = load_dataset(folder, CXR / "metadata.csv", size=32, seed=1).table["split"]
    b = load_dataset(folder, CXR / "metadata.csv", size=32, seed=1).table["split"]
    c = load_dataset(folder, CXR / "metadata.csv", size=32, seed=2).table["split"]
    pd.testing.assert_series_equal(a, b)
    assert not a.equals(c)


def test_patient_splits_stratified():
    rng = np.random.default_rng(0)
    patients = np.repeat([f"p{i}" for i in range(400)], 2)
    label = np.repeat(rng.random(400) < 0.3, 2)
    s = patient_splits(patients, split=(0.6, 0.2, 0.2), stratify=label, seed=5)
    frame = pd.DataFrame({"p": patients, "s": s, "y": label})
    assert frame.groupby("p")["s"].nunique().max() == 1
    share = frame.groupby("s")["y"].mean()
    assert (share - label.mean()).abs().max() < 0.02
    counts = frame.drop_duplicates("p")["s"].value_counts()
    assert counts["train"] == pytest.approx(240, abs=2) and counts["val"] == pytest.approx(80, abs=2)
    with pytest.raises(SeegaanError, match="split"):
        patient_splits(patients, split=(0.5, 0.2, 0.2))


def _folder(tmp_path, n=6, size=(24, 24)):
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        where = folder / "sub" if i % 2 else folder
        Image.fromarray((rng.random(size) * 255).astype(np.uint8)).save(where / f"im{i}.png")
    return folder


def test_duplicates_and_unmatched_are_counted(tmp_path):
    folder = _folder(tmp_path)
    # same folder, same name: one id (file names repeating across folders get relative-path ids instead)
    np.save(folder / "im0.npy", np.random.default_rng(1).random((24, 24)))
    table = pd.DataFrame(
        {
            "image_id": ["im0", "im1", "im1", "im2", "im3", "ghost"],
            "patient_id": ["a", "a", "a", "b", None, "c"],
            "age": [50, 60, 61, 70, 80, 90],
        }
    )
    table.to_csv(tmp_path / "t.csv", index=False)
    data = load_dataset(folder, tmp_path / "t.csv", size=16, seed=0)
    assert data.counts["duplicate_files"] == 1
    assert data.counts["duplicate_rows"] == 1
    assert data.counts["images_without_row"] == 2  # im4, im5
    assert data.counts["rows_without_image"] == 1  # ghost
    assert list(data.table["image_id"]) == ["im0", "im2", "im1", "im3"]  # folder order (sorted paths)
    assert data.table.set_index("image_id").loc["im1", "age"] == 60  # first duplicate row kept
    assert data.table.set_index("image_id").loc["im3", "patient_id"] == "im3"  # missing patient -> image
    assert len(data.skipped) == 3
    report = data.report()
    assert "duplicate image ids among files (first kept, rest skipped): 1" in report
    assert "images without a table row (excluded): 2" in report
    kept = load_dataset(folder, tmp_path / "t.csv", size=16, keep_unmatched=True)
    assert len(kept) == 6 and kept.table["age"].isna().sum() == 2


def test_table_listing_paths_and_parquet(tmp_path):
    _folder(tmp_path, n=4)
    listing = pd.DataFrame(
        {
            "path": ["imgs/im0.png", "imgs/sub/im1.png", "imgs/im2.png", "imgs/sub/im3.png"],
            "sex": ["F", "M", "F", "M"],
            "split": ["train", "train", "val", "test"],
        }
    )
    listing.to_parquet(tmp_path / "list.parquet")
    data = load_dataset(tmp_path / "list.parquet", size=16)
    assert list(data.table["image_id"]) == ["im0", "im1", "im2", "im3"]
    assert list(data.table["split"]) == ["train", "train", "val", "test"]  # existing split kept
    assert list(data.table["sex"]) == ["F", "M", "F", "M"]
    assert data.attrs["split_source"] == "split column of the table"


def test_batches_skip_bad_files_and_write_the_list(tmp_path):
    folder = _folder(tmp_path, n=5)
    good = (folder / "im2.png").read_bytes()
    (folder / "im2.png").write_bytes(good[:60])  # header intact, pixels truncated
    Image.fromarray(np.full((24, 24), 9, np.uint8)).save(folder / "im4.png")  # constant
    data = load_dataset(folder, size=16)
    seen = []
    for ids, x in data.batches(2):
        seen += ids
        assert x.shape[1:] == (1, 16, 16)
    assert sorted(seen) == ["im0", "im1", "im3"]
    assert data.counts["read_failures"] == 2
    threaded = load_dataset(folder, size=16)
    got = list(threaded.batches(2, workers=2))
    assert [i for ids, _ in got for i in ids] == seen
    np.testing.assert_array_equal(
        np.concatenate([x for _, x in got]), np.concatenate([x for _, x in load_dataset(folder, size=16).batches(3)])
    )
    assert threaded.counts["read_failures"] == 2
    out = data.write_skipped(tmp_path / "out.skipped.csv")
    text = out.read_text()
    assert "im2.png" in text and "im4.png" in text and "constant" in text
    with pytest.raises(SeegaanError, match="already exists"):
        data.write_skipped(tmp_path / "out.skipped.csv")


def test_mixed_sizes_without_resize(tmp_path):
    folder = _folder(tmp_path, n=4)
    Image.fromarray(np.arange(30 * 20, dtype=np.uint16).reshape(30, 20).astype(np.uint8)).save(folder / "odd.png")
    data = load_dataset(folder, size=None)
    assert len(data) == 4 and data.counts["size_mismatch"] == 1
    assert data.array().shape == (4, 1, 24, 24)
    assert any("odd.png" in p and "24x24" in r for p, r in data.skipped)


def test_bad_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SeegaanError, match="no images found"):
        load_dataset(tmp_path / "empty")
    folder = _folder(tmp_path, n=2)
    pd.DataFrame({"id": ["im0"], "age": [3]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(SeegaanError, match=r"t\.csv has no column 'image_id'.*--id-column"):
        load_dataset(folder, tmp_path / "t.csv")
    assert len(load_dataset(folder, tmp_path / "t.csv", id_column="id", size=8)) == 1
    with pytest.raises(SeegaanError, match="no such folder"):
        load_dataset(tmp_path / "nope")
    with pytest.raises(SeegaanError, match="view"):
        load_dataset(folder, view=["PA"])
    with pytest.raises(SeegaanError, match="split"):
        load_dataset(folder, split=(0.9, 0.2, 0.1))
    pd.DataFrame({"image_id": ["im0", "im1"], "split": ["train", "holdout"]}).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(SeegaanError, match="holdout"):
        load_dataset(folder, tmp_path / "s.csv")


def test_join_on_a_path_column(tmp_path):
    folder = _folder(tmp_path, n=3)
    table = pd.DataFrame(
        {
            "file": ["imgs/im0.png", "imgs/sub/im1.png", "imgs/missing.png"],
            "patient_id": ["a", "b", "c"],
            "score": [1.0, 2.0, 3.0],
        }
    )
    table.to_csv(tmp_path / "clin.csv", index=False)
    data = load_dataset(folder, tmp_path / "clin.csv", path_column="file", size=8)
    assert list(data.table["image_id"]) == ["im0", "im1"]
    assert list(data.table["score"]) == [1.0, 2.0] and "file" not in data.table.columns
    assert data.counts["rows_without_image"] == 1 and data.counts["images_without_row"] == 1


def test_check_data_cli(tmp_path):
    from typer.testing import CliRunner

    from seegaan.cli.app import app

    folder = _folder(tmp_path, n=4)
    (folder / "im2.png").write_bytes((folder / "im2.png").read_bytes()[:60])
    runner = CliRunner()
    res = runner.invoke(
        app, ["check-data", str(folder), "--size", "16", "--read", "--skipped", str(tmp_path / "skipped.csv")]
    )
    assert res.exit_code == 0, res.output
    assert "usable images: 4" in res.output and "skipped while reading pixels: 1" in res.output
    assert "im2.png" in (tmp_path / "skipped.csv").read_text()
    res = runner.invoke(app, ["check-data", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "no such folder" in res.output


# ------------------------------------------------------------------ issue #12: bad input, data side
def _png(path, seed=0, side=20):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.random.default_rng(seed).random((side, side)) * 255).astype(np.uint8)).save(path)
    return path


def _cli(*args, env=None):
    from typer.testing import CliRunner

    from seegaan.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def test_repeated_file_names_get_relative_path_ids(tmp_path):
    for i in range(12):
        _png(tmp_path / "imgs" / f"patient{i}" / "IM-0001-0001.png", seed=i)
    data = load_dataset(tmp_path / "imgs", size=8)
    assert len(data) == 12 and data.counts["duplicate_files"] == 0
    assert data.image_ids[:2] == ["patient0/IM-0001-0001", "patient1/IM-0001-0001"]
    pd.DataFrame({"image_id": data.image_ids, "age": range(12)}).to_csv(tmp_path / "t.csv", index=False)
    joined = load_dataset(tmp_path / "imgs", tmp_path / "t.csv", size=8)
    assert list(joined.table["age"]) == list(range(12))
    result = _cli("check-data", tmp_path / "imgs", "--size", 8)
    assert result.exit_code == 0 and "usable images: 12" in result.output
    assert "paths relative to" in result.output
    # unique file names keep their plain ids
    unique = load_dataset([tmp_path / "imgs" / "patient0" / "IM-0001-0001.png"], size=8)
    assert unique.image_ids == ["IM-0001-0001"]


def test_report_names_the_skipped_files(tmp_path):
    _png(tmp_path / "imgs" / "good.png")
    (tmp_path / "imgs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    _png(tmp_path / "imgs" / "a" / "x.png")
    (tmp_path / "imgs" / "a" / "x.npy").write_bytes(b"")  # empty, same id
    report = load_dataset(tmp_path / "imgs", size=8).report()
    assert "skipped files: 2" in report
    assert "broken.png: cannot read the image header" in report and "x.npy: the file is empty" in report


def test_numeric_column_with_a_few_text_cells_is_refused(tmp_path):
    from seegaan.data import read_table

    _png(tmp_path / "imgs" / "a.png")
    table = pd.DataFrame(
        {
            "image_id": list("abcdefgh"),
            "age": ["50", "61", ">90", "70", "", "44", "39", "80"],
            "sex": list("MFMFMFMF"),
            "grade": ["1", "2", "3a", "3b", "2", "1", "4", "x"],
        }
    )
    table.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(
        SeegaanError,
        match=r"column 'age' is numeric except for 1 cell\(s\): '>90' at row 3 "
        r"\(image_id c\); fix those cells or blank them.*text_columns",
    ) as err:
        read_table(tmp_path / "t.csv", str_columns=["image_id"], text_columns=["grade"])
    assert "\n" not in str(err.value)
    with pytest.raises(SeegaanError, match="column 'grade'"):  # 3 of 8 cells are text: still refused
        load_dataset(tmp_path / "imgs", tmp_path / "t.csv", size=8, text_columns=["age"])
    data = load_dataset(tmp_path / "imgs", tmp_path / "t.csv", size=8, text_columns=["age", "grade"])
    assert data.table["age"].iat[0] == "50"
    result = _cli("check-data", tmp_path / "imgs", "--table", tmp_path / "t.csv", "--size", 8)
    assert result.exit_code != 0 and "'>90'" in result.output
    result = _cli(
        "check-data",
        tmp_path / "imgs",
        "--table",
        tmp_path / "t.csv",
        "--size",
        8,
        "--text-column",
        "age",
        "--text-column",
        "grade",
    )
    assert result.exit_code == 0, result.output
    # a DataFrame table gets the same check; a clean numeric column passes untouched
    with pytest.raises(SeegaanError, match="column 'age'"):
        load_dataset(tmp_path / "imgs", table, size=8, text_columns=["grade"])
    assert read_table(tmp_path / "t.csv", text_columns=["age", "grade"])["sex"].tolist() == list("MFMFMFMF")


def test_missing_values_per_column_and_renamed_columns_in_report(tmp_path):
    for name in "abcd":
        _png(tmp_path / "imgs" / f"{name}.png")
    pd.DataFrame(
        {
            "image_id": list("abcd"),
            "age": [50, None, 60, None],
            "heart rate": [1, 2, 3, None],
            "sex": ["M", "", "F", "F"],
        }
    ).to_csv(tmp_path / "t.csv", index=False)
    result = _cli("check-data", tmp_path / "imgs", "--table", tmp_path / "t.csv", "--size", 8)
    assert result.exit_code == 0, result.output
    assert "  age: 2 (50.0%)" in result.output and "  heart rate: 1 (25.0%)" in result.output
    assert "  sex: 1 (25.0%)" in result.output
    assert "'heart rate' -> heart_rate" in result.output


def test_columns_that_clash_in_a_cohort_are_refused_before_any_work(tmp_path):
    _png(tmp_path / "imgs" / "a.png")
    pd.DataFrame({"image_id": ["a"], "heart rate": [1], "heart_rate": [2]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(
        SeegaanError,
        match="'heart rate' and 'heart_rate' both become 'heart_rate'|'heart_rate' and 'heart rate' both become",
    ):
        load_dataset(tmp_path / "imgs", tmp_path / "t.csv", size=8)
    pd.DataFrame({"image_id": ["a"], "w": [1]}).to_csv(tmp_path / "w.csv", index=False)
    with pytest.raises(SeegaanError, match="'w'.*reserved"):
        load_dataset(tmp_path / "imgs", tmp_path / "w.csv", size=8)


def test_pseudonymize_replaces_ids_and_keeps_the_splits(tmp_path, monkeypatch):
    for i in range(10):
        _png(tmp_path / "imgs" / f"PHI-1234{i}_DOE_JANE.png", seed=i)
    plain = load_dataset(tmp_path / "imgs", size=8)
    assert len(plain.identifier_like_ids()) == 10
    assert "10 ids look like they may carry identifiers (e.g. PHI-12340_DOE_JANE" in plain.report()
    data = load_dataset(tmp_path / "imgs", size=8, pseudonymize="a-long-secret-salt")
    assert all(i.startswith("img-") and len(i) == 20 for i in data.image_ids)
    assert all(p.startswith("pat-") for p in data.table["patient_id"])
    assert list(data.table["split"]) == list(plain.table["split"])  # drawn on the original ids
    assert "DOE" not in data.table.to_csv() and "look like" not in data.report()
    assert data.image_ids == load_dataset(tmp_path / "imgs", size=8, pseudonymize="a-long-secret-salt").image_ids
    assert data.image_ids != load_dataset(tmp_path / "imgs", size=8, pseudonymize="another-secret").image_ids
    assert "a-long-secret-salt" not in repr(data.attrs) + data.report()
    monkeypatch.setenv("SEEGAAN_ID_SALT", "a-long-secret-salt")
    assert load_dataset(tmp_path / "imgs", size=8, pseudonymize=True).image_ids == data.image_ids
    assert set(data.id_map["original"]) >= set(plain.image_ids)
    # CLI: the salt from the environment, the mapping only when asked
    result = _cli("check-data", tmp_path / "imgs", "--size", 8)
    assert "consider --pseudonymize" in result.output
    result = _cli("check-data", tmp_path / "imgs", "--size", 8, "--pseudonymize", "--id-map", tmp_path / "map.csv")
    assert result.exit_code == 0, result.output
    assert "ids: pseudonymised" in result.output and "DOE" not in result.output.split("usable images")[1]
    mapping = pd.read_csv(tmp_path / "map.csv")
    assert set(mapping["pseudonym"]) >= set(data.image_ids)
    monkeypatch.delenv("SEEGAAN_ID_SALT")
    result = _cli("check-data", tmp_path / "imgs", "--size", 8, "--pseudonymize")
    assert result.exit_code != 0 and "SEEGAAN_ID_SALT" in result.output


def test_looks_identifying_rule():
    from seegaan.data.dataset import looks_identifying

    assert looks_identifying("PHI-12345_DOE_JANE") and looks_identifying("scan_20240131")
    assert looks_identifying("Smith_John/IM-0001")
    assert not looks_identifying("IM-0001-0001") and not looks_identifying("patient1/IM-0001-0001")
    assert not looks_identifying("mhh_c3829ecb") and not looks_identifying("im3")
    assert not looks_identifying("kermany_NORMAL2-IM-0969-0001")


def test_check_data_refuses_a_bad_skipped_path_before_scanning(tmp_path):
    _png(tmp_path / "imgs" / "a.png")
    result = _cli("check-data", tmp_path / "imgs", "--size", 8, "--skipped", tmp_path / "skipped.nc")
    assert result.exit_code != 0 and "give a .csv or .tsv path" in result.output
    pd.DataFrame({"image_id": ["a"]}).to_csv(tmp_path / "t.csv", index=False)
    result = _cli(
        "check-data",
        tmp_path / "imgs",
        "--table",
        tmp_path / "t.csv",
        "--size",
        8,
        "--skipped",
        tmp_path / "t.csv",
        "--overwrite",
    )
    assert result.exit_code != 0 and "is the input" in result.output
