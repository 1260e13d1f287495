"""Bad input of every kind gets one actionable SeegaanError line (issue #12).

Extend ``CASES`` with ``(description, callable, expected message fragment)``: the callable takes the
test's ``tmp_path`` (a fresh, writable folder) and must raise SeegaanError whose one-line message
contains the fragment.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from seegaan._internal.errors import SeegaanError


def _file(folder: Path, name: str, data: bytes = b"x") -> Path:
    p = folder / name
    p.write_bytes(data)
    return p


def _out(folder: Path, name: str, **kw):
    from seegaan._internal.io import check_output_path

    return check_output_path(folder / name, **kw)


def _atomic(path, **kw):
    from seegaan._internal.io import atomic_path

    with atomic_path(path, **kw) as tmp:
        tmp.write_bytes(b"x")


def _symlink(folder: Path, name: str, target: Path) -> Path:
    p = folder / name
    p.symlink_to(target)
    return p


def _hardlink(folder: Path, name: str, target: Path) -> Path:
    p = folder / name
    os.link(target, p)
    return p


def _fifo(folder: Path, name: str) -> Path:
    p = folder / name
    os.mkfifo(p)
    return p


def _lock_twice(folder: Path):
    from seegaan._internal.io import folder_lock

    with folder_lock(folder):
        with folder_lock(folder):
            pass


def _lock_missing(folder: Path):
    from seegaan._internal.io import folder_lock

    with folder_lock(folder / "missing"):
        pass


# ---- data side (issue #12)
def _png(folder: Path, name: str, side: int = 20) -> Path:
    import numpy as np
    from PIL import Image

    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.arange(side * side) % 251).astype("uint8").reshape(side, side)).save(path)
    return path


def _bomb(folder: Path) -> Path:
    import struct
    import zlib

    path = _png(folder, "bomb.png")
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", 30000, 30000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def _csv(folder: Path, name: str, columns: dict) -> Path:
    import pandas as pd

    path = folder / name
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


def _load(folder: Path, table_columns: dict | None = None, **kw):
    from seegaan.data import load_dataset

    _png(folder / "imgs", "a.png")
    table = None if table_columns is None else _csv(folder, "t.csv", table_columns)
    return load_dataset(folder / "imgs", table, size=8, **kw)


def _read_bomb(folder: Path):
    from seegaan.data import read_image

    return read_image(_bomb(folder))


def _salt_from_missing_env(folder: Path):
    saved = os.environ.pop("SEEGAAN_ID_SALT", None)
    try:
        return _load(folder, pseudonymize=True)
    finally:
        if saved is not None:
            os.environ["SEEGAAN_ID_SALT"] = saved


def _id_map_without_pseudonyms(folder: Path):
    return _load(folder).write_id_map(folder / "map.csv")


def _sequence_of(trajectory: dict, cohort_extra=None, **options):
    """seegaan.sequence of a small test cohort's trajectory with ``options``."""
    import seegaan
    from seegaan.testing.cohorts import make_cohort
    from seegaan.testing.decoders import linear8

    interp = seegaan.interpolate(make_cohort(n=30, seed=1, extra=cohort_extra), steps=3, **trajectory)
    return seegaan.sequence(interp, linear8, n_perm=9, **options)


def _calibrate_of(trajectory: dict, **options):
    """seegaan.calibrate of a small test cohort's trajectory with ``options``."""
    import seegaan
    from seegaan.testing.cohorts import make_cohort
    from seegaan.testing.decoders import linear8

    interp = seegaan.interpolate(make_cohort(n=30, seed=1), steps=3, **trajectory)
    return seegaan.calibrate(interp, linear8, **options)


def _pixel_test_unread(folder: Path, **options):
    """seegaan.pixel_test on a small phantom (16x16) whose pixels must not be read: the options are refused first."""
    from unittest import mock

    from seegaan.phantom import write_phantom
    from seegaan.pixeltest import pixel_test

    root = write_phantom(folder / "phantom", n=24, size=32, seed=1)

    def refuse(self, i):
        raise AssertionError(f"the pixels of image {i} were read before the options were refused")

    with mock.patch("seegaan.data.dataset.ImageSet._read", refuse):
        return pixel_test(root / "images", root / "clinical.csv", **{"size": 16, "n_perm": 99, **options})


def _corrupt_checkpoint(folder: Path) -> Path:
    """The demo checkpoint with 50 bytes of its weights flipped (the zip structure intact)."""
    import numpy as np

    from seegaan import demo

    data = bytearray(demo.decoder_path().read_bytes())
    for i in np.random.default_rng(0).integers(len(data) // 2, len(data) - 1000, 50):
        data[i] ^= 0xFF
    return _file(folder, "corrupt.pt", bytes(data))


def _npy(folder: Path, name: str, shape: tuple[int, int]) -> Path:
    import numpy as np

    np.save(folder / name, np.ones(shape, bool))
    return folder / name


CASES: list[tuple[str, Callable[[Path], object], str]] = [
    # ---- seegaan._internal.io: output paths
    (
        "output exists without --overwrite",
        lambda t: _out(_file(t, "a.nc").parent, "a.nc", overwrite=False),
        "already exists; pass --overwrite",
    ),
    ("output is a directory", lambda t: _out(t, "", overwrite=True), "is a directory"),
    ("output folder missing", lambda t: _out(t / "nope", "a.nc", overwrite=False), "does not exist; create it first"),
    ("output folder is a file", lambda t: _out(_file(t, "f"), "a.nc", overwrite=False), "is not a folder"),
    ("wrong suffix for a netCDF", lambda t: _out(t, "x.png", overwrite=False, suffixes=".nc"), "give a .nc path"),
    ("output is the input", lambda t: _out(t, "c.nc", overwrite=True, inputs=[_file(t, "c.nc")]), "is the input"),
    (
        "output is the input via ..",
        lambda t: (t / "sub").mkdir() or _out(t / "sub" / "..", "c.nc", overwrite=True, inputs=[_file(t, "c.nc")]),
        "is the input",
    ),
    (
        "output is a symlink to the input",
        lambda t: _out(t, "l.nc", overwrite=True, inputs=[_symlink(t, "l.nc", _file(t, "c.nc")).resolve()]),
        "is the input",
    ),
    (
        "output is a hard link to the input",
        lambda t: _out(t, "h.pt", overwrite=True, inputs=[_hardlink(t, "h.pt", _file(t, "m.pt")).with_name("m.pt")]),
        "is the input",
    ),
    (
        "atomic write onto the input",
        lambda t: _atomic(_file(t, "c.nc"), overwrite=True, inputs=[t / "c.nc"]),
        "is the input",
    ),
    (
        "two outputs are one file",
        lambda t: _out(t, "o.nc", overwrite=False, others=[t / "o.nc"]),
        "are the same file; give each output its own path",
    ),
    ("output is /dev/null", lambda t: _out(Path("/dev"), "null", overwrite=True), "not a regular file"),
    ("output is a FIFO", lambda t: _out(_fifo(t, "p.nc").parent, "p.nc", overwrite=True), "not a regular file"),
    # ---- seegaan._internal.io: folder locks
    ("output folder locked by another run", _lock_twice, "is writing to"),
    ("locked folder missing", _lock_missing, "does not exist; create it first"),
    # ---- data: images, tables, cohort column names, pseudonyms (issue #12)
    ("PNG header claims 30000x30000 pixels", _read_bomb, "image too large: 30000x30000 pixels"),
    (
        "numeric column with a '>90' cell",
        lambda t: _load(t, {"image_id": list("abcdef"), "age": ["50", ">90", "60", "70", "80", "44"]}),
        "column 'age' is numeric except for 1 cell(s): '>90' at row 2 (image_id b)",
    ),
    (
        "two columns sanitise to one cohort name",
        lambda t: _load(t, {"image_id": ["a"], "heart rate": [1], "heart_rate": [2]}),
        "both become 'heart_rate'",
    ),
    ("clinical column named w", lambda t: _load(t, {"image_id": ["a"], "w": [1]}), "reserved"),
    ("table without the id column", lambda t: _load(t, {"id": ["a"]}), "has no column 'image_id'"),
    (
        "pseudonymize=True without SEEGAAN_ID_SALT",
        _salt_from_missing_env,
        "set the environment variable SEEGAAN_ID_SALT",
    ),
    ("pseudonymisation salt too short", lambda t: _load(t, pseudonymize="abc"), "at least 8 characters"),
    ("id map without pseudonyms", _id_map_without_pseudonyms, "the ids are not pseudonymised"),
    ("negative split seed", lambda t: _load(t, seed=-1), "the split seed must be a non-negative integer"),
    # ---- interpolate: silent garbage refused (issue #12)
    (
        "covariate collinear with the feature",
        lambda t: (
            lambda s, ds: s.interpolate(
                ds.assign_coords(months=("image", ds["age"].values * 12)),
                feature="age",
                method="linear",
                adjust="months",
            )
        )(__import__("seegaan"), __import__("seegaan").open_cohort(__import__("seegaan.demo").demo.cohort_path())),
        "covariate(s) months are collinear with the feature 'age'",
    ),
    (
        "GAM grid far outside the data",
        lambda t: __import__("seegaan").interpolate(
            __import__("seegaan").open_cohort(__import__("seegaan.demo").demo.cohort_path()),
            feature="age",
            method="gam",
            grid="-1000,5000",
        ),
        "leaves the observed range of 'age'",
    ),
    (
        "grid of equal values",
        lambda t: __import__("seegaan").interpolate(
            __import__("seegaan").open_cohort(__import__("seegaan.demo").demo.cohort_path()),
            feature="age",
            grid="5,5,5",
        ),
        "the grid values are all equal",
    ),
    # ---- phantom --overwrite never deletes a user's folder (issue #12)
    (
        "phantom --overwrite onto a user's folder",
        lambda t: (
            (t / "mine").mkdir(),
            (t / "mine" / "notes.txt").write_text("keep"),
            __import__("seegaan.phantom").phantom.write_phantom(t / "mine", n=2, size=32, overwrite=True),
        ),
        "is not a phantom folder written by seegaan",
    ),
    # ---- model side (issue #12): options and outputs checked before any work
    (
        "train --augment-p 5",
        lambda t: __import__("seegaan.model.training", fromlist=["TrainConfig"]).TrainConfig(augment_p=5.0),
        "augment_p is a probability",
    ),
    (
        "train --lr nan",
        lambda t: __import__("seegaan.model.training", fromlist=["TrainConfig"]).TrainConfig(lr=float("nan")),
        "lr (the learning rate) must be a finite number > 0",
    ),
    (
        "train --seed -1",
        lambda t: __import__("seegaan.model.training", fromlist=["TrainConfig"]).TrainConfig(seed=-1),
        "seed must be a whole number >= 0",
    ),
    (
        "train --checkpoint-minutes 0",
        lambda t: __import__("seegaan.model.training", fromlist=["x"]).TrainConfig(checkpoint_minutes=0.0),
        "checkpoint_minutes must be > 0",
    ),
    (
        "train on a folder another run holds",
        lambda t: __import__("tests.model.test_train", fromlist=["x"])._train_on_locked_folder(t),
        "is writing to",
    ),
    (
        "train --no-resume onto an earlier run",
        lambda t: __import__("tests.model.test_train", fromlist=["x"])._train_without_resume_onto_a_run(t),
        "resume is off",
    ),
    (
        "image grid with 0 columns",
        lambda t: __import__("seegaan.model.inference", fromlist=["x"]).image_grid(
            __import__("numpy").zeros((2, 4, 4)), columns=0
        ),
        "columns (images per row) must be a whole number >= 1",
    ),
    (
        "sample --columns -3",
        lambda t: __import__("seegaan.model.tasks", fromlist=["x"]).sample_images(
            t / "c.pt", out=t / "o.png", columns=-3
        ),
        "columns (images per row) must be a whole number >= 1",
    ),
    (
        "sample --truncation nan",
        lambda t: __import__("seegaan.model.tasks", fromlist=["x"]).sample_images(
            t / "c.pt", out=t / "o.png", truncation=float("nan")
        ),
        "truncation must be a finite number >= 0",
    ),
    (
        "sample --seed -1",
        lambda t: __import__("seegaan.model.tasks", fromlist=["x"]).sample_images(t / "c.pt", out=t / "o.png", seed=-1),
        "seed must be a whole number >= 0",
    ),
    (
        "reconstruct --seed -1",
        lambda t: __import__("seegaan.model.tasks", fromlist=["x"]).reconstruct_images(
            t / "c.pt", t, out=t / "o.png", seed=-1
        ),
        "seed must be a whole number >= 0",
    ),
    (
        "encode --out onto the checkpoint",
        lambda t: __import__("seegaan.model.tasks", fromlist=["x"]).encode_images(
            _file(t, "c.nc"), t, out=t / "c.nc", overwrite=True
        ),
        "is the input",
    ),
    (
        "encode --out CHECKPOINT.pt --overwrite",
        lambda t: __import__("seegaan.model.tasks", fromlist=["x"]).encode_images(
            _file(t, "c.pt"), t, out=t / "c.pt", overwrite=True
        ),
        "give a .nc path",
    ),
    (
        "reconstruct --out onto an image",
        lambda t: __import__("seegaan.model.tasks", fromlist=["x"]).reconstruct_images(
            t / "c.pt", _png(t, "x.png"), out=t / "x.png", overwrite=True
        ),
        "is the input",
    ),
    (
        "evaluate with --ids and --n",
        lambda t: __import__("seegaan.model.tasks", fromlist=["x"]).evaluate_images(t / "c.pt", t, ids=["a"], n=2),
        "give at most one of --ids, --n and --worst",
    ),
    (
        "train --out-dir under a file",
        lambda t: __import__("seegaan._internal.io", fromlist=["x"]).make_output_folder(
            _file(t, "f") / "run", option="--out-dir"
        ),
        "cannot create --out-dir",
    ),
    (
        "train --out-dir is a file",
        lambda t: __import__("seegaan._internal.io", fromlist=["x"]).make_output_folder(
            _file(t, "f"), option="--out-dir"
        ),
        "is a file, not a folder",
    ),
    (
        "interpolate --tfce-e nan",
        lambda t: __import__("seegaan.stats", fromlist=["x"]).TFCE(E=float("nan")),
        "must be a finite number",
    ),
    (
        "interpolate --seed -1",
        lambda t: __import__("seegaan.stats", fromlist=["x"]).draw_permutations(["a", "b", "c"], 5, seed=-1),
        "--seed must be 0 or more",
    ),
    # ---- pixel test: every option interpolate or sequence would refuse, refused before any pixel is read
    (
        "pixel-test --statistic welch (retired)",
        lambda t: _pixel_test_unread(t, feature="ahf", statistic="welch"),
        "--statistic welch was retired: the sign-flip null (the default) is valid under unequal spread",
    ),
    (
        "sequence null='bootstrap'",
        lambda t: _sequence_of(dict(feature="sex"), null="bootstrap"),
        "unknown null 'bootstrap'; use one of sign-flip, permutation",
    ),
    (
        "sequence scheme='image' with the sign-flip null",
        lambda t: _sequence_of(dict(feature="sex"), scheme="image"),
        "a permutation scheme applies to --null permutation",
    ),
    (
        "sequence of a class with one patient under the sign-flip null",
        lambda t: _sequence_of(dict(feature="rare"), cohort_extra={"rare": ["yes"] + ["no"] * 29}),
        "class 'yes' of rare has 1 patient(s): the sign-flip null needs at least 2 patients per class",
    ),
    (
        "a checkpoint with flipped bytes",
        lambda t: __import__("seegaan").load_decoder(_corrupt_checkpoint(t)),
        "is corrupt: a part of it fails its checksum",
    ),
    (
        "interpolate --steps 100000000 (a size bomb)",
        lambda t: __import__("seegaan").interpolate(
            __import__("seegaan.testing.cohorts", fromlist=["x"]).make_cohort(n=30), feature="age", steps=10**8
        ),
        "--steps asks for 100,000,000 steps of 8x8 images",
    ),
    (
        "local --lambdas 0:1:100000000 (a size bomb)",
        lambda t: __import__("seegaan.explain.local", fromlist=["x"]).parse_lambdas("0:1:100000000"),
        "N must be at most 100,000 λ values",
    ),
    (
        "local --lambdas 0:1:90000 on 4096x4096 images (memory)",
        lambda t: __import__("seegaan._internal.memory", fromlist=["x"]).check_steps_memory(
            90_000, 4096, "--lambdas", available=16 * 2**30
        ),
        "--lambdas asks for 90,000 steps of 4096x4096 images",
    ),
    (
        "explain --n-scan 100000000 (a size bomb)",
        lambda t: __import__("seegaan.explain.counterfactual", fromlist=["x"]).explain(
            __import__("seegaan.testing.cohorts", fromlist=["x"]).make_cohort(n=30),
            "seegaan.testing.decoders:linear8",
            "seegaan.testing.cnns:region_mean",
            image_id="img0001",
            target=1.0,
            feature="sex",
            n_scan=10**8,
        ),
        "--n-scan asks for 100,000,000 steps",
    ),
    (
        "interpolate a class level that contains a comma",
        lambda t: __import__("seegaan").interpolate(
            __import__("seegaan.testing.cohorts", fromlist=["x"]).make_cohort(
                n=30, extra={"group": ["Female, adult"] * 15 + ["Male"] * 15}
            ),
            feature="group",
        ),
        "level 'Female, adult' of 'group' contains a comma",
    ),
    (
        "calibrate cohorts=0",
        lambda t: _calibrate_of(dict(feature="sex"), n_cohorts=0),
        "--cohorts must be a whole number of at least 1",
    ),
    (
        "pixel-test --mask of another size than --size",
        lambda t: _pixel_test_unread(t, feature="ahf", mask=_npy(t, "m.npy", (8, 8))),
        "the mask has shape (8, 8) but the decoded images are 16x16",
    ),
    (
        "pixel-test alternative='up'",
        lambda t: _pixel_test_unread(t, feature="ahf", alternative="up"),
        "unknown alternative 'up'",
    ),
    (
        "pixel-test n_perm='exact' on 24 images",
        lambda t: _pixel_test_unread(t, feature="ahf", n_perm="exact"),
        "sign flips of 21 patients (more than 200000)",
    ),
    (
        "pixel-test --grid of one value",
        lambda t: _pixel_test_unread(t, feature="age", grid="50"),
        "an explicit grid needs at least two values",
    ),
]


@pytest.mark.parametrize("description, call, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_actionable_line(tmp_path, description, call, fragment):
    if os.name != "posix" and ("FIFO" in description or "/dev/null" in description):
        pytest.skip("POSIX only")
    with pytest.raises(SeegaanError) as err:
        call(tmp_path)
    msg = str(err.value)
    assert fragment in msg, msg
    assert "\n" not in msg and msg.strip() == msg and "Traceback" not in msg


def test_a_sequence_file_too_large_to_hold_is_refused_before_it_is_read(tmp_path, monkeypatch):
    """Sizes come from the file's dimensions, not its compressed bytes (issue #24, item 8): a small netCDF of
    zeros whose images need more than half the memory is refused by report/animate/plot in one line."""
    import numpy as np
    import xarray as xr

    import seegaan
    from seegaan.viz.datasets import as_sequence_dataset

    zeros = np.zeros((2, 512, 512), np.float32)
    ds = xr.Dataset(
        {"image": (("step", "y", "x"), zeros), "difference": (("step", "y", "x"), zeros)},
        coords={"feature_value": ("step", [0.0, 1.0])},
    )
    path = tmp_path / "bomb.nc"
    ds.to_netcdf(path, encoding={v: {"zlib": True} for v in ("image", "difference")})
    assert path.stat().st_size < 200_000
    monkeypatch.setattr("seegaan._internal.memory.available_memory", lambda: 16 * 2**20)
    with pytest.raises(seegaan.SeegaanError, match=r"holds 2 steps of 512x512 images") as e:
        as_sequence_dataset(path)
    assert "\n" not in str(e.value)
    with pytest.raises(seegaan.SeegaanError, match="holds 2 steps"):
        __import__("seegaan.viz.animation", fromlist=["x"]).animate(path, tmp_path / "a.gif")
    assert not (tmp_path / "a.gif").exists()


def test_malformed_sequences_are_refused_by_report_and_animate(tmp_path):
    """``significant`` on the wrong dims, or images that are all NaN (issue #24, item 5)."""
    import numpy as np
    import xarray as xr

    import seegaan
    from seegaan.viz.datasets import validate_sequence

    img = np.zeros((2, 4, 4), np.float32)
    base = {"image": (("step", "y", "x"), img), "difference": (("step", "y", "x"), img)}
    coords = {"feature_value": ("step", [0.0, 1.0])}
    wrong = xr.Dataset({**base, "significant": (("y", "x"), np.zeros((4, 4), bool))}, coords=coords)
    with pytest.raises(seegaan.SeegaanError, match="'significant' has dims"):
        validate_sequence(wrong)
    nan = xr.Dataset({**base, "image": (("step", "y", "x"), np.full((2, 4, 4), np.nan, np.float32))}, coords=coords)
    with pytest.raises(seegaan.SeegaanError, match="no finite pixel"):
        validate_sequence(nan)
    assert validate_sequence(xr.Dataset(base, coords=coords)) is not None
