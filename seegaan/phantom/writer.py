"""Writing a phantom cohort folder: images, clinical table, render parameters, truth maps and their README."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from seegaan._internal.errors import SeegaanError
from seegaan._internal.progress import Progress
from seegaan._version import __version__
from seegaan.phantom.anatomy import EFFECTS, FEATURES, MIN_SIZE, REFERENCE, marker_free_mask, render
from seegaan.phantom.clinical import sample_cohort
from seegaan.phantom.truth import MASK_FRACTION, effect_map, effect_mask, marginal_effect_map, truth_contrasts

#: Marker file that :func:`write_phantom` puts in every folder it writes (``--overwrite`` replaces only those).
MARKER = ".seegaan-phantom"
# what a phantom folder holds: top-level names, and the file endings allowed in its sub-folders
_TOP = {MARKER, "images", "truth", "clinical.csv", "params.csv", "phantom.json"}
# (the names it writes, not just their endings: a user's scan.png dropped into images/ is not the phantom's)
_INSIDE = {
    "images": re.compile(r"ph\d{5}_\d+\.png"),
    "truth": re.compile(
        r"(?:(?:effect|marginal)_(?:{f})\.npy|(?:marginal_)?(?:{f})_mask\.npy"
        r"|marker_free_mask\.npy|README\.md)".replace("{f}", "|".join(FEATURES))
    ),
}


def _foreign_entries(folder: Path) -> list[str]:
    """Entries of ``folder`` that a phantom does not write (relative names; at most a few)."""
    foreign = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name not in _TOP:
            foreign.append(entry.name)
        elif entry.name in _INSIDE:
            if not entry.is_dir(follow_symlinks=False):
                foreign.append(entry.name)
                continue
            for sub in os.scandir(entry.path):
                if not (sub.is_file(follow_symlinks=False) and _INSIDE[entry.name].fullmatch(sub.name)):
                    foreign.append(f"{entry.name}/{sub.name}")
                    break
        elif entry.is_dir(follow_symlinks=False) or entry.is_symlink():
            foreign.append(entry.name)
        if len(foreign) >= 3:
            break
    return foreign


def _legacy_phantom(folder: Path) -> bool:
    """A phantom folder written before the marker file existed: its phantom.json and truth/README.md."""
    try:
        meta = json.loads((folder / "phantom.json").read_text())
        readme = (folder / "truth" / "README.md").read_text()
    except (OSError, ValueError):
        return False
    return (
        isinstance(meta, dict)
        and {"seegaan_version", "contrasts", "n_images"} <= meta.keys()
        and readme.startswith("# Phantom ground truth")
        and (folder / "clinical.csv").is_file()
    )


def _check_replaceable(out: Path) -> None:
    """Refuse to replace ``out`` unless it is empty or a phantom folder holding only what a phantom writes."""
    try:
        names = os.listdir(out)
    except OSError as exc:
        raise SeegaanError(f"cannot read the folder {out} ({exc.strerror}); choose another --out") from None
    if not names:
        return
    if MARKER not in names and not _legacy_phantom(out):
        raise SeegaanError(
            f"{out} is not a phantom folder written by seegaan (no {MARKER} file); --overwrite "
            "replaces only those: choose another --out or remove the folder yourself"
        )
    foreign = _foreign_entries(out)
    if foreign:
        raise SeegaanError(
            f"{out} holds files a phantom does not write ({', '.join(foreign)}); --overwrite "
            "would delete them: move them out or choose another --out"
        )


def _to_png(img: np.ndarray, path: Path, bit_depth: int) -> None:
    unit = (np.clip(img, -1, 1) + 1.0) / 2.0
    if bit_depth == 16:
        Image.fromarray(np.round(unit * 65535).astype(np.uint16)).save(path)
    else:
        Image.fromarray(np.round(unit * 255).astype(np.uint8)).save(path)


def _readme(contrasts: dict, *, size: int, n: int, seed, fraction: float) -> str:
    lines = [
        "# Phantom ground truth",
        "",
        f"seegaan {__version__} phantom: {n} images, {size}x{size}, seed {seed}. Images are 16- or 8-bit PNG; "
        "read them scaled to [-1, 1] (per-image min-max is the identity here: the air around the body is "
        "the minimum, the radiopaque 'L' marker the maximum).",
        "",
        "## Effects (direct: that feature alone)",
        "",
        "`effect_<feature>.npy` = render(feature = b) - render(feature = a), float32 in image units "
        "([-1, 1] scale), every other clinical variable at its reference value and every nuisance "
        "(position, rotation, size, inspiration, individual anatomy, noise) at its mean. "
        f"References: {', '.join(f'{k} = {v}' for k, v in REFERENCE.items())}.",
        "",
        "| feature | a | b | effect (b - a) |",
        "|---|---|---|---|",
    ]
    for f in FEATURES:
        a, b = contrasts[f]
        fa = f"{a:.1f}" if isinstance(a, float) else str(a)
        fb = f"{b:.1f}" if isinstance(b, float) else str(b)
        lines.append(f"| {f} | {fa} | {fb} | {EFFECTS[f]} |")
    lines += [
        "",
        "Numeric features compare their 5th and 95th percentiles in this cohort; categorical features "
        "compare the levels named (sex: M - F; ahf: True - False; manufacturer: vendor_b - vendor_a).",
        "",
        "## Marginal effects",
        "",
        "`marginal_<feature>.npy`: mean image given feature = b minus mean image given feature = a, the "
        "other clinical variables following their joint distribution given the feature (exact sums over "
        "sex, AHF and manufacturer, 7-point Gauss-Hermite quadrature over age and log BNPP; age clipping "
        "and rounding ignored), nuisance at its mean. This is what an *unadjusted* global "
        "sequence (class means, or a regression on the feature alone) estimates: AHF patients have higher "
        "BNPP and are older, so the AHF marginal effect includes the heart and shoulder-bone changes. "
        "Score unadjusted sequences against `marginal_*`, covariate-adjusted ones against `effect_*`.",
        "",
        "## Masks",
        "",
        f"`<feature>_mask.npy` (direct) and `marginal_<feature>_mask.npy`: bool, |effect| > {fraction:g} x "
        "max |effect| of that map. The manufacturer effect is global by design (no localised region).",
        "",
        "`marker_free_mask.npy`: bool, True wherever no side marker can be (either upper corner, any jitter, "
        "2 pixels clear): pass it to `seegaan-stats interpolate --mask` to leave the marker out of a test.",
        "",
        "## Joint distribution",
        "",
        "sex 50/50; age ~ N(60, 14) in [20, 95]; P(AHF) = logistic(-0.8 + 0.035 (age - 60)) (AHF patients "
        "are older); log BNPP ~ N(4.9 + 2.0 AHF + 0.005 (age - 60), 0.75) (pg/mL); manufacturer "
        "vendor_a/b/c 45/35/20 %; sex and manufacturer independent of the rest, assigned by blocked "
        "randomisation along (AHF, BNPP) (blocks of 2 and 20 patients) so that every sample is balanced. About 20% of patients have two images (same anatomy and clinical values, new "  # noqa: E501
        "nuisance). Every image is a frontal PA view. `params.csv` lists every image's nuisance values.",
        "",
        "Reproduce any map with `seegaan.phantom.effect_map(feature, a, b, size=...)` or "
        "`seegaan.phantom.marginal_effect_map(...)`.",
    ]
    return "\n".join(lines) + "\n"


def write_phantom(
    out: str | os.PathLike,
    *,
    n: int = 1200,
    size: int = 64,
    seed: int | np.random.Generator | None = 0,
    bit_depth: int = 16,
    overwrite: bool = False,
    marginal: bool = True,
    progress: Progress | None = None,
) -> Path:
    """Write a phantom cohort folder, atomically (built under a temporary name, then renamed).

    Layout: ``images/<image_id>.png``, ``clinical.csv`` (image_id, patient_id, sex, age, ahf, bnpp,
    manufacturer, view), ``params.csv`` (every render parameter), ``truth/effect_<f>.npy``,
    ``truth/<f>_mask.npy``, ``truth/marginal_<f>.npy``, ``truth/marginal_<f>_mask.npy``,
    ``truth/marker_free_mask.npy``, ``truth/README.md`` and ``phantom.json`` (settings and the compared values).

    Parameters
    ----------
    out : path-like
        Folder to create (its parent must exist).
    n, size, seed, bit_depth
        Number of images, side in pixels, randomness, PNG depth (8 or 16).
    overwrite : bool
        Replace an existing folder, but only an empty one or one that this function wrote (it holds the
        marker file ``.seegaan-phantom`` and nothing a phantom does not write); any other folder is
        refused, so a mistyped ``--out`` never deletes a user's data.
    marginal : bool
        Also write the marginal truth maps (a few hundred renders in all).
    progress : callable, optional
        ``progress(n=1, total=None)`` (see :mod:`seegaan._internal.progress`): called once with ``total=n`` images,
        then with the number of images written since the last call.
    """
    out = Path(out)
    if int(n) != n or n < 1:
        raise SeegaanError(f"--n must be a positive integer; got {n}")
    if int(size) != size or size < MIN_SIZE:
        raise SeegaanError(f"--size must be an integer >= {MIN_SIZE}; got {size}")
    if bit_depth not in (8, 16):
        raise SeegaanError(f"--bit-depth must be 8 or 16; got {bit_depth}")
    if out.exists() and not overwrite:
        raise SeegaanError(f"{out} already exists; pass --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise SeegaanError(f"{out} exists and is not a folder; choose another --out")
    if out.is_dir():
        _check_replaceable(out)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise SeegaanError(f"the folder {parent} does not exist; create it first")
    seed_value = seed if isinstance(seed, (int, np.integer)) else None
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=parent))
    try:
        table, params = sample_cohort(int(n), seed=seed)
        (tmp / "images").mkdir()
        (tmp / "truth").mkdir()
        if progress is not None:
            progress(0, total=int(n))
        for row, p in zip(table.itertuples(index=False), params):
            _to_png(render(p, size=int(size)), tmp / "images" / f"{row.image_id}.png", bit_depth)
            if progress is not None:
                progress(1)
        table.to_csv(tmp / "clinical.csv", index=False)
        frame = pd.DataFrame([dataclasses.asdict(p) for p in params])
        frame.insert(0, "image_id", table["image_id"])
        frame.to_csv(tmp / "params.csv", index=False)
        contrasts = truth_contrasts(table)
        for f, (a, b) in contrasts.items():
            eff = effect_map(f, a, b, size=int(size))
            np.save(tmp / "truth" / f"effect_{f}.npy", eff)
            np.save(tmp / "truth" / f"{f}_mask.npy", effect_mask(eff))
            if marginal:
                marg = marginal_effect_map(f, a, b, size=int(size))
                np.save(tmp / "truth" / f"marginal_{f}.npy", marg)
                np.save(tmp / "truth" / f"marginal_{f}_mask.npy", effect_mask(marg))
        np.save(tmp / "truth" / "marker_free_mask.npy", marker_free_mask(int(size)))
        (tmp / "truth" / "README.md").write_text(
            _readme(contrasts, size=int(size), n=int(n), seed=seed_value, fraction=MASK_FRACTION)
        )
        meta = {
            "seegaan_version": __version__,
            "n_images": int(n),
            "size": int(size),
            "seed": seed_value,
            "bit_depth": bit_depth,
            "mask_fraction": MASK_FRACTION,
            "reference": REFERENCE,
            "contrasts": {f: list(v) for f, v in contrasts.items()},
            "effects": EFFECTS,
            "n_patients": int(table["patient_id"].nunique()),
        }
        (tmp / "phantom.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
        (tmp / MARKER).write_text(f"seegaan {__version__} phantom; --overwrite may replace this folder\n")
        _replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _replace_folder(tmp: Path, out: Path) -> None:
    """Move ``tmp`` onto ``out``; an existing ``out`` (checked again now) is removed only after the new one is in
    place."""
    if out.exists():
        _check_replaceable(out)
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        old.rmdir()
        os.replace(out, old)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
