"""``seegaan train / encode / reconstruct / sample`` end to end on a tiny model and real radiographs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from seegaan.cli.app import app  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CXR = Path(os.environ.get("SEEGAAN_CXR_DIR", REPO.parent / "shared" / "data" / "cxr"))
pytestmark = [
    pytest.mark.skipif(not (CXR / "images").is_dir(), reason=f"no radiographs at {CXR}"),
    pytest.mark.usefixtures("one_torch_thread"),
]


def _run(args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """The first 80 radiographs' rows: the other images are left out by the join (fast tests)."""
    import pandas as pd

    path = tmp_path_factory.mktemp("table") / "subset.csv"
    pd.read_csv(CXR / "metadata.csv").head(80).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, table):
    out = tmp_path_factory.mktemp("run")
    result = _run(
        [
            "train",
            "--images",
            CXR / "images",
            "--table",
            table,
            "--view",
            "PA,AP",
            "--out-dir",
            out,
            "--image-size",
            32,
            "--width",
            8,
            "--latent-size",
            16,
            "--mapping-layers",
            2,
            "--steps",
            2,
            "--batch-size",
            4,
            "--val-images",
            8,
            "--checkpoint-every",
            1,
            "--val-every",
            2,
            "--device",
            "cpu",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "perceptual: none" in result.output
    return out


def test_train_writes_last_and_best(trained):
    assert (trained / "last.pt").is_file() and (trained / "best.pt").is_file()
    info = _run(["model", "info", "--checkpoint", trained / "last.pt", "--json"])
    assert info.exit_code == 0, info.output
    assert '"step": 2' in info.stdout and '"perceptual": "none"' in info.stdout


def test_encode_writes_cohort_usable_with_decoder(trained, table, tmp_path):
    import xarray as xr

    from seegaan.model import load_checkpoint_decoder

    out = tmp_path / "cohort.nc"
    result = _run(
        ["encode", "--checkpoint", trained / "best.pt", "--images", CXR / "images", "--table", table, "--out", out]
    )
    assert result.exit_code == 0, result.output
    ds = xr.open_dataset(out)
    assert ds["w"].dims == ("image", "latent") and ds.sizes["latent"] == 16
    assert ds.sizes["image"] == 80
    assert set(np.unique(ds["split"].values)) == {"train", "val", "test"}
    assert "sha256:" in ds.attrs["model"] and ds.attrs["image_size"] == 32
    dec = load_checkpoint_decoder(trained / "best.pt")
    assert dec.identity == ds.attrs["model"]
    images = dec(ds["w"].values[:3])
    assert images.shape == (3, 32, 32) and np.abs(images).max() <= 1
    again = _run(
        ["encode", "--checkpoint", trained / "best.pt", "--images", CXR / "images", "--table", table, "--out", out]
    )
    assert again.exit_code == 2 and "overwrite" in again.output


def test_reconstruct_and_sample_write_pngs(trained, table, tmp_path):
    from PIL import Image

    rec = tmp_path / "rec.png"
    result = _run(
        [
            "reconstruct",
            "--checkpoint",
            trained / "last.pt",
            "--images",
            CXR / "images",
            "--table",
            table,
            "--n",
            4,
            "--out",
            rec,
        ]
    )
    assert result.exit_code == 0, result.output
    assert Image.open(rec).size == (4 * 32, 2 * 32)
    smp = tmp_path / "sample.png"
    result = _run(["sample", "--checkpoint", trained / "last.pt", "--n", 6, "--columns", 3, "--out", smp])
    assert result.exit_code == 0, result.output
    assert Image.open(smp).size == (3 * 32, 2 * 32)


def test_bad_checkpoint_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("nope")
    result = _run(["sample", "--checkpoint", bad, "--out", tmp_path / "x.png"])
    assert result.exit_code == 2
    assert "cannot read" in result.output and not (tmp_path / "x.png").exists()


def test_train_max_minutes_stops_cleanly_and_refuses_nonsense(table, tmp_path):
    common = [
        "train",
        "--images",
        CXR / "images",
        "--table",
        table,
        "--view",
        "PA,AP",
        "--out-dir",
        tmp_path,
        "--image-size",
        32,
        "--width",
        8,
        "--latent-size",
        16,
        "--mapping-layers",
        2,
        "--steps",
        30,
        "--batch-size",
        4,
        "--val-images",
        4,
        "--device",
        "cpu",
        "--threads",
        1,
    ]
    result = _run(common + ["--max-minutes", 1e-9])
    assert result.exit_code == 0, result.output
    assert "time limit of 1e-09 minutes reached at step 10" in result.output
    assert "done at step 10" in result.output
    bad = _run(common + ["--max-minutes", 0])
    assert bad.exit_code != 0 and "max_minutes must be > 0" in bad.output
    assert "Traceback" not in bad.output


def _cohort_accepts_an_empty_split() -> bool:
    import pandas as pd

    from seegaan._internal.errors import SeegaanError
    from seegaan.data.cohort import create_cohort

    try:
        create_cohort(np.zeros((1, 2)), pd.DataFrame({"image_id": ["a"], "split": [""]}), model="m")
    except SeegaanError:
        return False
    return True


@pytest.fixture(scope="module")
def foreign_table(tmp_path_factory):
    """Rows 80-119: radiographs the tiny model never saw."""
    import pandas as pd

    path = tmp_path_factory.mktemp("foreign") / "foreign.csv"
    pd.read_csv(CXR / "metadata.csv").iloc[80:120].drop(columns=["split"], errors="ignore").to_csv(path, index=False)
    return path


def test_encode_keeps_the_training_split_only_for_the_training_images(trained, table, foreign_table, tmp_path):
    import xarray as xr

    random = _run(
        [
            "encode",
            "--checkpoint",
            trained / "last.pt",
            "--images",
            CXR / "images",
            "--table",
            foreign_table,
            "--out",
            tmp_path / "random.nc",
            "--split",
            "random",
            "--split-seed",
            3,
            "--threads",
            1,
        ]
    )
    assert random.exit_code == 0, random.output
    assert "split: drawn by patient" in random.output and "images found" in random.output  # data report
    assert set(np.unique(xr.open_dataset(tmp_path / "random.nc")["split"].values)) <= {"train", "val", "test"}
    own = _run(
        [
            "encode",
            "--checkpoint",
            trained / "last.pt",
            "--images",
            CXR / "images",
            "--table",
            table,
            "--out",
            tmp_path / "own.nc",
        ]
    )
    assert own.exit_code == 0 and "the checkpoint's training split" in own.output, own.output
    if not _cohort_accepts_an_empty_split():
        pytest.skip("the cohort contract does not accept an empty split yet (seegaan/cohort.py)")
    foreign = _run(
        [
            "encode",
            "--checkpoint",
            trained / "last.pt",
            "--images",
            CXR / "images",
            "--table",
            foreign_table,
            "--out",
            tmp_path / "foreign.nc",
        ]
    )
    assert foreign.exit_code == 0, foreign.output
    assert "split: left empty (these are not the checkpoint's training images)" in foreign.output
    assert set(np.unique(xr.open_dataset(tmp_path / "foreign.nc")["split"].values)) == {""}


def test_reconstruct_says_which_images_it_draws(trained, table, foreign_table, tmp_path):
    own = _run(
        [
            "reconstruct",
            "--checkpoint",
            trained / "last.pt",
            "--images",
            CXR / "images",
            "--table",
            table,
            "--n",
            2,
            "--out",
            tmp_path / "own.png",
        ]
    )
    assert own.exit_code == 0 and "the validation split of the checkpoint's training images" in own.output
    foreign = _run(
        [
            "reconstruct",
            "--checkpoint",
            trained / "last.pt",
            "--images",
            CXR / "images",
            "--table",
            foreign_table,
            "--n",
            2,
            "--out",
            tmp_path / "foreign.png",
        ]
    )
    assert foreign.exit_code == 0 and "images: all (they are not the checkpoint's training images" in foreign.output


def test_train_pseudonymize_needs_a_salt_and_bad_options_fail_first(table, tmp_path):
    common = [
        "train",
        "--images",
        CXR / "images",
        "--table",
        table,
        "--out-dir",
        tmp_path / "run",
        "--image-size",
        32,
        "--width",
        8,
    ]
    result = CliRunner().invoke(app, [str(a) for a in common + ["--pseudonymize"]], env={"SEEGAAN_ID_SALT": ""})
    assert result.exit_code == 2 and "--pseudonymize needs a salt" in result.output
    for option, value, fragment in (
        ("--augment-p", 5, "augment_p is a probability"),
        ("--lr", "nan", "finite number > 0"),
        ("--seed", -1, ">= 0"),
    ):
        bad = _run(common + [option, value])
        assert bad.exit_code == 2 and fragment in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "run").exists()  # nothing was created
