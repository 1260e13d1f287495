"""A cohort of radiographs on disk joined with its clinical table: :func:`load_dataset` -> :class:`ImageSet`."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from seegaan._internal.choices import DEFAULT_SIZE, SPLITS
from seegaan._internal.errors import SeegaanError
from seegaan.data.images import (
    DEFAULT_PERCENTILES,
    IMAGE_EXTENSIONS,
    Scaling,
    _read_dicom_dataset,
    check_dicom_header,
    check_scaling,
    detect_format,
    header_fields,
    image_id_from_path,
    open_pil,
    read_image,
)
from seegaan.data.tables import (
    PATH_COLUMN_GUESSES,
    RESERVED,
    check_fractions,
    check_numeric_columns,
    check_split_column,
    feature_names,
    is_table_file,
    patient_splits,
    read_table,
    require_column,
)
from seegaan.formats import save_csv

_IGNORED_NAMES = {"thumbs.db", "desktop.ini", ".ds_store"}
#: how error messages name the join options (``seegaan check-data`` has them; ``train``/``encode`` join
#: on ``image_id`` or a listing's ``path``/``file`` column)
_ID_OPTION = "id_column=... (seegaan check-data --id-column; for train/encode name the column image_id in the table)"
_PATH_OPTION = "path_column=... (seegaan check-data --path-column)"
#: skipped files named in :meth:`ImageSet.report` (all of them go to :meth:`ImageSet.write_skipped`)
REPORT_SKIPPED = 5
#: view names folded together by the view filter (DICOM ViewPosition uses LL/RL for laterals)
VIEW_ALIASES = {
    "LL": "LAT",
    "RL": "LAT",
    "LATERAL": "LAT",
    "LLD": "LAT",
    "RLD": "LAT",
    "L": "LAT",
    "POSTEROANTERIOR": "PA",
    "ANTEROPOSTERIOR": "AP",
}


def _norm_view(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or pd.isna(value):
        return ""
    text = str(value).strip().upper()
    return VIEW_ALIASES.get(text, text)


#: words that often appear in image file names and are not identifiers (ignored by looks_identifying)
_COMMON_ID_WORDS = frozenset(
    {
        "im",
        "img",
        "image",
        "images",
        "patient",
        "pat",
        "pt",
        "study",
        "series",
        "view",
        "pa",
        "ap",
        "lat",
        "ll",
        "rl",
        "cxr",
        "xr",
        "dx",
        "cr",
        "dcm",
        "dicom",
        "png",
        "jpg",
        "jpeg",
        "npy",
        "chest",
        "frontal",
        "lateral",
        "scan",
        "file",
        "normal",
        "raw",
        "proc",
        "processed",
        "id",
    }
)


def looks_identifying(value) -> bool:
    """True when an id looks like it may carry a name, a record number or a date.

    The rule is deliberately simple (a warning, not a guarantee): at least two purely alphabetic words
    (parts between non-alphanumerics) of two or more letters that are not common file-name words
    (``IM``, ``patient``, ``PA``, ...), e.g.
    ``PHI-12345_DOE_JANE``; or a run of six or more digits (medical record numbers, ``20240131``).
    """
    text = str(value)
    if re.search(r"\d{6,}", text):
        return True
    words = [w for w in re.split(r"[\W_]+", text) if len(w) >= 2 and w.isalpha() and w.lower() not in _COMMON_ID_WORDS]
    return len(words) >= 2


def resolve_salt(pseudonymize) -> bytes | None:
    """The salt of ``pseudonymize``: None/False -> None; True -> ``$SEEGAAN_ID_SALT``; a str/bytes salt.

    The salt must hold at least 8 characters; use a long random secret kept apart from the data (with a
    weak salt the pseudonyms of short record numbers can be recomputed).
    """
    if pseudonymize is None or pseudonymize is False:
        return None
    if pseudonymize is True:
        salt = os.environ.get("SEEGAAN_ID_SALT", "")
        if not salt:
            raise SeegaanError(
                "pseudonymize=True needs a salt: set the environment variable SEEGAAN_ID_SALT "
                "(or pass the salt, --salt) to a long random secret"
            )
    elif isinstance(pseudonymize, (str, bytes)):
        salt = pseudonymize
    else:
        raise SeegaanError(f"pseudonymize must be True, False or a salt string; got {type(pseudonymize).__name__}")
    salt = salt.encode() if isinstance(salt, str) else bytes(salt)
    if len(salt.strip()) < 8:
        raise SeegaanError(
            "the pseudonymisation salt must hold at least 8 characters; use a long random "
            "secret (e.g. python -c 'import secrets; print(secrets.token_hex(16))')"
        )
    return salt


def pseudonym(value, salt: bytes, *, prefix: str) -> str:
    """``prefix-`` + the first 16 hex digits of HMAC-SHA256(salt, ``prefix:value``)."""
    digest = hmac.new(salt, f"{prefix}:{value}".encode(), hashlib.sha256).hexdigest()
    return f"{prefix}-{digest[:16]}"


@dataclass
class _Probe:
    """What a cheap look at one file tells (no pixel decoding)."""

    path: Path
    image_id: str
    shape: tuple[int, int] | None = None
    fmt: str = ""
    header: dict = field(default_factory=dict)
    error: str | None = None
    dropped: list = field(default_factory=list)


def _probe(path: Path) -> _Probe:
    """Check that a file looks like a readable image without decoding its pixels."""
    probe = _Probe(path=path, image_id=image_id_from_path(path))
    try:
        if path.stat().st_size == 0:
            raise SeegaanError(f"{path}: the file is empty")
        fmt = probe.fmt = detect_format(path) or ""
        if fmt in ("png", "jpeg"):
            try:
                with open_pil(path) as img:
                    probe.shape = (img.size[1], img.size[0])
            except SeegaanError:
                raise
            except (OSError, ValueError, SyntaxError) as exc:
                raise SeegaanError(f"{path}: cannot read the image header ({exc})") from None
        elif fmt == "npy":
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:
                raise SeegaanError(f"{path}: cannot read the .npy header ({exc})") from None
            shape = tuple(s for s in arr.shape if s != 1) if arr.ndim == 3 else arr.shape
            if len(shape) != 2:
                raise SeegaanError(f"{path}: a .npy image must be 2-D; got shape {arr.shape}")
            probe.shape = (int(shape[0]), int(shape[1]))
        elif fmt == "dicom":
            ds = _read_dicom_dataset(path, stop_before_pixels=True)
            check_dicom_header(ds, path)
            probe.header = header_fields(ds, dropped=probe.dropped)
            if "Rows" in probe.header and "Columns" in probe.header:
                probe.shape = (int(probe.header["Rows"]), int(probe.header["Columns"]))
        else:
            raise SeegaanError(f"{path}: unrecognised image format")
    except SeegaanError as exc:
        probe.error = str(exc)
    return probe


def _scan_folder(folder: Path) -> tuple[list[Path], int]:
    """Image files under ``folder`` (recursive, sorted) and the number of other files ignored."""
    found, ignored = [], 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name.lower() in _IGNORED_NAMES:
                continue
            path = Path(root) / name
            suffix = path.suffix.lower()
            if suffix in IMAGE_EXTENSIONS or detect_format(path) == "dicom":
                found.append(path)
            else:
                ignored += 1
    return sorted(found), ignored


def _resolve_listed_paths(frame: pd.DataFrame, column: str, base: Path) -> list[Path]:
    out = []
    for value in frame[column]:
        if pd.isna(value) or str(value).strip() == "":
            out.append(None)
            continue
        p = Path(str(value)).expanduser()
        out.append(p if p.is_absolute() else base / p)
    return out


def _guess_path_column(frame: pd.DataFrame, source: str) -> str:
    for name in PATH_COLUMN_GUESSES:
        if name in frame.columns:
            return name
    raise SeegaanError(
        f"{source} lists no image paths: none of the columns {list(PATH_COLUMN_GUESSES)} "
        f"exists; name the path column with {_PATH_OPTION}"
    )


@dataclass
class ImageSet:
    """Usable radiographs with their clinical rows; pixels are read lazily.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per usable image, in order: ``image_id``, ``patient_id``, ``split``, then the clinical
        columns.
    paths : list of Path
        File of each row of ``table``.
    skipped : list of (str, str)
        ``(path, reason)`` of every file left out, at loading or while reading pixels.
    counts : dict
        Bookkeeping shown by :meth:`report` (duplicates, unmatched images and rows, filters).
    headers : dict
        Whitelisted DICOM header fields per image id (DICOM inputs only).
    attrs : dict
        Settings that made the set (size, scaling, split fractions, seed, ...), for provenance.
    id_map : pandas.DataFrame or None
        With ``pseudonymize``: the original and pseudonymous ids (``kind``, ``original``, ``pseudonym``),
        kept in memory only; :meth:`write_id_map` writes it when asked.
    """

    table: pd.DataFrame
    paths: list
    size: int | None = DEFAULT_SIZE
    scaling: Scaling = "minmax"
    window: tuple[float, float] | None = None
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    skipped: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)
    id_map: pd.DataFrame | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        splits = self.table["split"].value_counts().reindex(list(SPLITS), fill_value=0)
        return (
            f"<ImageSet {len(self)} images, {self.table['patient_id'].nunique()} patients "
            f"(train {splits['train']}, val {splits['val']}, test {splits['test']}), size {self.size}>"
        )

    @property
    def image_ids(self) -> list[str]:
        return list(self.table["image_id"])

    def subset(self, split_name: str | Sequence[str]) -> ImageSet:
        """The images of one split (``"train"``, ``"val"``, ``"test"``) or of several."""
        names = [split_name] if isinstance(split_name, str) else list(split_name)
        bad = [n for n in names if n not in SPLITS]
        if bad:
            raise SeegaanError(f"unknown split {bad[0]!r}; use one of {', '.join(SPLITS)}")
        keep = self.table["split"].isin(names).to_numpy()
        return self._take(np.flatnonzero(keep))

    def _take(self, index: np.ndarray) -> ImageSet:
        table = self.table.iloc[index].reset_index(drop=True)
        ids = set(table["image_id"])
        return replace(
            self,
            table=table,
            paths=[self.paths[i] for i in index],
            skipped=list(self.skipped),
            counts=dict(self.counts),
            headers={k: v for k, v in self.headers.items() if k in ids},
            attrs=dict(self.attrs),
        )

    # ------------------------------------------------------------------ pixels
    def _read(self, i: int) -> np.ndarray:
        arr = read_image(
            self.paths[i], size=self.size, scaling=self.scaling, window=self.window, percentiles=self.percentiles
        )
        if self.size is None:
            expected = self.attrs.get("native_shape")
            if expected is not None and tuple(arr.shape) != tuple(expected):
                raise SeegaanError(
                    f"{self.paths[i]}: image is {arr.shape[0]}x{arr.shape[1]} but the others "
                    f"are {expected[0]}x{expected[1]}; pass size=... to resize all images"
                )
        return arr

    def __getitem__(self, i: int) -> np.ndarray:
        """One image as float32 (1, size, size) in [-1, 1] (raises SeegaanError for a bad file)."""
        return self._read(int(i))[None]

    def array(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """Images at ``indices`` (all when None) as float32 (k, 1, size, size); a bad file raises."""
        index = range(len(self)) if indices is None else [int(i) for i in np.atleast_1d(indices)]
        images = [self._read(i) for i in index]
        if not images:
            side = self.size or 0
            return np.zeros((0, 1, side, side), dtype=np.float32)
        return np.stack(images)[:, None].astype(np.float32, copy=False)

    def _try_read(self, i: int) -> np.ndarray | SeegaanError:
        try:
            return self._read(i)
        except SeegaanError as exc:
            return exc

    def _decoded(self, workers: int) -> Iterator[tuple[int, np.ndarray | SeegaanError]]:
        """(row, image or error) in row order; ``workers`` threads decode ahead when > 0."""
        if workers <= 0:
            for i in range(len(self)):
                yield i, self._try_read(i)
            return

        chunk = 4 * workers
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for start in range(0, len(self), chunk):
                rows = range(start, min(start + chunk, len(self)))
                yield from zip(rows, pool.map(self._try_read, rows))

    def batches(self, batch_size: int = 32, *, workers: int = 0) -> Iterator[tuple[list[str], np.ndarray]]:
        """Read the images in order, ``batch_size`` at a time.

        Yields ``(image_ids, images)`` with images float32 (b, 1, size, size) in [-1, 1]. A file that
        cannot be read is skipped, appended to :attr:`skipped` and counted in ``counts["read_failures"]``
        (write the list with :meth:`write_skipped`); the ids say which images a batch holds.
        ``workers`` > 0 decodes with that many threads; the output is the same.
        """
        if int(batch_size) < 1:
            raise SeegaanError(f"batch_size must be >= 1; got {batch_size}")
        ids, images = [], []
        for i, arr in self._decoded(int(workers)):
            if isinstance(arr, SeegaanError):
                self.skipped.append((str(self.paths[i]), str(arr)))
                self.counts["read_failures"] = self.counts.get("read_failures", 0) + 1
                continue
            ids.append(self.table["image_id"].iat[i])
            images.append(arr)
            if len(images) == batch_size:
                yield ids, np.stack(images)[:, None]
                ids, images = [], []
        if images:
            yield ids, np.stack(images)[:, None]

    def write_id_map(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the pseudonym mapping (``kind,original,pseudonym``) as CSV, atomically.

        Keep that file apart from the cohort: with it the pseudonyms are identifiers again.
        """
        if self.id_map is None:
            raise SeegaanError(
                "the ids are not pseudonymised; load the images with pseudonymize=... (--pseudonymize) to get a mapping"
            )
        return save_csv(self.id_map, path, overwrite=overwrite)

    def identifier_like_ids(self) -> list[str]:
        """Image and patient ids that look like they may carry identifiers (see :func:`looks_identifying`);
        empty when the ids are pseudonymised."""
        if self.id_map is not None:
            return []
        ids = dict.fromkeys(list(self.table["image_id"]) + list(self.table["patient_id"]))
        return [i for i in ids if looks_identifying(i)]

    def write_skipped(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path | None:
        """Write the skipped files as CSV (``path,reason``), atomically; nothing when none was skipped."""
        if not self.skipped:
            return None
        frame = pd.DataFrame(self.skipped, columns=["path", "reason"])
        return save_csv(frame, path, overwrite=overwrite)

    # ------------------------------------------------------------------ report
    def report(self) -> str:
        """Counts of what was found, matched, filtered and skipped, as text."""
        c = self.counts
        lines = [f"images found: {c.get('files', 0)}" + (f" ({c['formats']})" if c.get("formats") else "")]
        if c.get("ignored_files"):
            lines.append(f"other files ignored: {c['ignored_files']}")
        lines.append(f"files skipped at loading (unreadable, bad header): {c.get('probe_failures', 0)}")
        lines.append(f"duplicate image ids among files (first kept, rest skipped): {c.get('duplicate_files', 0)}")
        if c.get("id_scheme"):
            lines.append(f"image ids: {c['id_scheme']}")
        if c.get("header_values_dropped"):
            lines.append(f"DICOM header values outside their defined terms, left blank: {c['header_values_dropped']}")
        if c.get("table_rows") is not None:
            lines.append(
                f"table rows: {c['table_rows']}; duplicate ids in the table (first row kept): "
                f"{c.get('duplicate_rows', 0)}"
            )
            kept = "kept, clinical values missing" if c.get("keep_unmatched") else "excluded"
            lines.append(f"images without a table row ({kept}): {c.get('images_without_row', 0)}")
            lines.append(f"table rows without an image: {c.get('rows_without_image', 0)}")
        if c.get("view_filter"):
            lines.append(
                f"excluded by the view filter {c['view_filter']}: {c.get('view_excluded', 0)} "
                f"(of which without a view: {c.get('view_missing', 0)})"
            )
        if c.get("size_mismatch"):
            lines.append(f"skipped for a different image size: {c['size_mismatch']}")
        splits = self.table["split"].value_counts().reindex(list(SPLITS), fill_value=0)
        pats = self.table.groupby("split")["patient_id"].nunique().reindex(list(SPLITS), fill_value=0)
        lines.append(f"usable images: {len(self)} from {self.table['patient_id'].nunique()} patients")
        lines.append(
            "split (images/patients): "
            + ", ".join(f"{s} {splits[s]}/{pats[s]}" for s in SPLITS)
            + f" [{self.attrs.get('split_source', '')}]"
        )
        lines.append(f"skipped while reading pixels: {c.get('read_failures', 0)}")
        if self.skipped:
            lines.append(
                f"skipped files: {len(self.skipped)} (first {min(REPORT_SKIPPED, len(self.skipped))}; "
                "all of them: seegaan check-data --skipped FILE, or ImageSet.write_skipped):"
            )
            lines.extend(f"  {p}: {reason.removeprefix(f'{p}: ')}" for p, reason in self.skipped[:REPORT_SKIPPED])
        lines.extend(self._column_lines())
        if self.id_map is not None:
            lines.append("ids: pseudonymised (HMAC-SHA256 with the salt; the salt is not stored)")
        else:
            suspicious = self.identifier_like_ids()
            if suspicious:
                lines.append(
                    f"warning: {len(suspicious)} ids look like they may carry identifiers (e.g. "
                    f"{', '.join(suspicious[:3])}); consider --pseudonymize"
                )
        return "\n".join(lines)

    def _column_lines(self) -> list[str]:
        """Missing values per clinical column, and the columns renamed for the cohort."""
        columns = [c for c in self.table.columns if c not in RESERVED]
        if not columns:
            return []
        n = max(len(self), 1)
        lines = ["missing values per clinical column:"]
        for col in columns:
            values = self.table[col]
            missing = int((values.isna() | (values.astype(str).str.strip() == "")).sum())
            lines.append(f"  {col}: {missing} ({100.0 * missing / n:.1f}%)")
        renamed = {col: name for col, name in feature_names(columns).items() if col != name}
        if renamed:
            lines.append(
                "note: columns renamed in a cohort (netCDF cannot keep spaces or '/'; the "
                "original name is in the coordinate's attrs): "
                + ", ".join(f"{col!r} -> {name}" for col, name in renamed.items())
            )
        return lines


def _images_and_listing(
    images, path_column: str | None, text_columns: Sequence[str] = ()
) -> tuple[list[Path], pd.DataFrame | None, str | None, int, str]:
    """Resolve ``images`` to files; returns (files, listing table, its path column, ignored, source)."""
    if isinstance(images, (list, tuple)):
        files = [Path(p) for p in images]
        return files, None, None, 0, "list of files"
    src = Path(images)
    if not src.exists():
        raise SeegaanError(f"{src}: no such folder or file")
    if src.is_dir():
        files, ignored = _scan_folder(src)
        if not files:
            raise SeegaanError(f"{src}: no images found (PNG, JPEG, DICOM or .npy, searched recursively)")
        return files, None, None, ignored, str(src)
    if is_table_file(src):
        listing = read_table(
            src, str_columns=[c for c in (path_column, "image_id", "patient_id") if c], text_columns=text_columns
        )
        column = path_column or _guess_path_column(listing, str(src))
        require_column(listing, column, source=str(src), option=_PATH_OPTION)
        listing = listing.copy()
        listing["__path__"] = _resolve_listed_paths(listing, column, src.parent)
        if listing["__path__"].isna().all():
            raise SeegaanError(f"{src}: the column '{column}' lists no image paths")
        return [p for p in listing["__path__"] if p is not None], listing, column, 0, str(src)
    return [src], None, None, 0, str(src)


def load_dataset(
    images,
    table=None,
    *,
    size: int | None = DEFAULT_SIZE,
    scaling: Scaling = "minmax",
    view: Sequence[str] | str | None = None,
    id_column: str = "image_id",
    path_column: str | None = None,
    patient_column: str = "patient_id",
    split: Sequence[float] = (0.8, 0.1, 0.1),
    stratify: str | None = None,
    seed: int | np.random.Generator | None = 0,
    window: tuple[float, float] | None = None,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    keep_unmatched: bool = False,
    text_columns: Sequence[str] = (),
    pseudonymize: bool | str | bytes | None = None,
) -> ImageSet:
    """Find radiographs, join them with a clinical table and make patient-level splits.

    Parameters
    ----------
    images : path-like or list of paths
        A folder (searched recursively for PNG, JPEG, DICOM and ``.npy``), a CSV/Parquet table listing
        image paths (column ``path_column``, relative paths taken from the table's folder; the listing
        is the clinical table when ``table`` is None), or a list of files.
    table : path-like or pandas.DataFrame, optional
        Clinical table (CSV, TSV or Parquet), joined on the image id (the file name without its image
        extension) in ``id_column``, or on the file path in ``path_column``.
    size : int or None
        Side of the square images (bicubic resize); None keeps the stored size, which must then be the
        same for all images (others are skipped).
    scaling : {"minmax", "percentile"}
        Per-image scaling to [-1, 1].
    view : str or list of str, optional
        Keep only these views (e.g. ``["PA", "AP"]``), from the table's ``view`` column or the DICOM
        ViewPosition (case-insensitive; LL/RL/LATERAL count as LAT); images without a view are then
        excluded (and counted).
    id_column, path_column, patient_column : str
        Names of the table's image-id, path and patient columns. Without a patient column every image
        is its own patient.
    split : (train, val, test)
        Patient fractions; ignored when the table has a ``split`` column (that one is kept).
    stratify : str, optional
        Column to stratify the split on (numeric columns with many values in quintiles).
    seed : int, Generator or None
        Seed of the split.
    window : (center, width), optional
        Intensity window (see :func:`read_image`).
    percentiles : (low, high)
        For ``scaling="percentile"``.
    keep_unmatched : bool
        Keep images that have no table row (clinical values missing) instead of excluding them.
    text_columns : sequence of str
        Clinical columns kept as text even when nearly all their cells are numbers (otherwise such a
        column, e.g. ``age`` with one ``">90"``, is refused; see :func:`seegaan.data.read_table`).
    pseudonymize : bool or str, optional
        Replace ``image_id`` and ``patient_id`` by salted hashes (``img-<16 hex>``, ``pat-<16 hex>``,
        HMAC-SHA256 with the salt; True takes the salt from ``$SEEGAAN_ID_SALT``). The splits are drawn
        on the original ids, so they do not change; the salt is not stored and the mapping stays in
        :attr:`ImageSet.id_map` unless written with :meth:`ImageSet.write_id_map`.

    Image ids are the file names without their image extension; when two files share a name in
    different folders (``p1/IM-0001.png``, ``p2/IM-0001.png``), all ids become the paths relative to the
    images folder without extension (``p1/IM-0001``).

    Returns
    -------
    ImageSet
        Nothing is decoded yet; see :meth:`ImageSet.batches` and :meth:`ImageSet.report`.
    """
    if size is not None and (int(size) != size or size < 4):
        raise SeegaanError(f"size must be an integer >= 4 or None; got {size!r}")
    check_scaling(scaling)
    fractions = check_fractions(split)
    salt = resolve_salt(pseudonymize)
    files, listing, listed_column, ignored, source = _images_and_listing(images, path_column, text_columns)
    counts: dict = {"files": len(files), "ignored_files": ignored}
    skipped: list[tuple[str, str]] = []

    probes = _probe_files(files, counts, skipped)
    base = Path(images) if not isinstance(images, (list, tuple)) and Path(images).is_dir() else None
    _relative_ids(probes, base, counts)
    probes = _drop_duplicate_ids(probes, counts, skipped)
    if not probes:
        raise SeegaanError(
            f"{source}: none of the {len(files)} image files could be read (first problem: "
            f"{skipped[0][1] if skipped else 'none'})"
        )
    clinical, join_path = _clinical_table(
        table,
        listing,
        listed_column,
        id_column=id_column,
        path_column=path_column,
        patient_column=patient_column,
        text_columns=text_columns,
    )
    if clinical is None:
        base_rows = pd.DataFrame({"image_id": [p.image_id for p in probes]})
    else:
        probes, base_rows = _join_clinical(
            probes,
            clinical,
            join_path,
            id_column=id_column,
            keep_unmatched=keep_unmatched,
            counts=counts,
            skipped=skipped,
        )
    headers = _add_dicom_views(probes, base_rows)
    paths = [p.path for p in probes]
    if view is not None:
        base_rows, paths = _filter_views(base_rows, paths, view, counts)
    native_shape = None
    if size is None:
        base_rows, paths, native_shape = _filter_sizes(base_rows, paths, probes, counts, skipped)
    final, split_source = _patients_and_splits(
        base_rows, patient_column=patient_column, stratify=stratify, fractions=fractions, seed=seed
    )
    feature_names(
        [c for c in final.columns if c not in RESERVED],
        source="the clinical table" if table is None or isinstance(table, pd.DataFrame) else str(table),
    )
    id_map = None
    if salt is not None:
        final, headers, id_map = _pseudonymize(final, headers, salt)
    attrs = {
        "source": source,
        "size": 0 if size is None else int(size),
        "scaling": scaling,
        "split_fractions": list(fractions),
        "split_seed": seed if isinstance(seed, int) else None,
        "split_source": split_source,
        "stratify": stratify or "",
        "view_filter": counts.get("view_filter", ""),
        "window": list(window) if window else None,
        "native_shape": native_shape,
        "pseudonymized": salt is not None,
    }
    return ImageSet(
        table=final,
        paths=paths,
        size=None if size is None else int(size),
        scaling=scaling,
        window=window,
        percentiles=tuple(percentiles),
        skipped=skipped,
        counts=counts,
        headers=headers,
        attrs=attrs,
        id_map=id_map,
    )


# ------------------------------------------------------------------ the stages of load_dataset
def _probe_files(files: list[Path], counts: dict, skipped: list) -> list[_Probe]:
    """Look at every file (headers only); unreadable ones go to ``skipped``."""
    probes: list[_Probe] = []
    for path in files:
        probe = _probe(path) if path.exists() else _Probe(path, image_id_from_path(path), error=f"{path}: no such file")
        if probe.error:
            skipped.append((str(path), probe.error))
        else:
            probes.append(probe)
    counts["probe_failures"] = len(skipped)
    counts["formats"] = ", ".join(f"{k} {v}" for k, v in sorted(Counter(p.fmt for p in probes).items()))
    dropped = Counter(key for p in probes for key in p.dropped)
    counts["header_values_dropped"] = ", ".join(f"{k} {v}" for k, v in sorted(dropped.items()))
    return probes


def _relative_ids(probes: list[_Probe], base: Path | None, counts: dict) -> None:
    """When file names repeat (``p1/IM-0001.png``, ``p2/IM-0001.png``), make every id the path relative
    to ``base`` (the images folder; else the files' common folder) without its image extension.

    Plain file-name ids are kept when they are unique, or when relative paths would not help (the
    same name in one folder, e.g. ``a.png`` and ``a.npy``: duplicates either way).
    """
    stems = Counter(p.image_id for p in probes)
    if len(stems) == len(probes):
        return
    if base is None:
        try:
            base = Path(os.path.commonpath([os.path.abspath(p.path.parent) for p in probes]))
        except ValueError:  # different drives
            return
    relative = []
    for p in probes:
        rel = Path(os.path.relpath(os.path.abspath(p.path), os.path.abspath(base)))
        relative.append((rel.parent / image_id_from_path(rel)).as_posix())
    if len(set(relative)) <= len(stems):
        return
    for p, rid in zip(probes, relative):
        p.image_id = rid
    counts["id_scheme"] = (
        f"paths relative to {base} without extension (file names repeat across folders; e.g. " + relative[0] + ")"
    )


def _pseudonymize(final: pd.DataFrame, headers: dict, salt: bytes) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Replace image and patient ids by their pseudonyms; returns (table, headers, mapping)."""
    final = final.copy()
    img = {i: pseudonym(i, salt, prefix="img") for i in dict.fromkeys(final["image_id"])}
    pat = {i: pseudonym(i, salt, prefix="pat") for i in dict.fromkeys(final["patient_id"])}
    for kind, mapping in (("image", img), ("patient", pat)):
        if len(set(mapping.values())) != len(mapping):
            raise SeegaanError(f"two {kind} ids got the same pseudonym; this should not happen - report it")
    final["image_id"] = final["image_id"].map(img)
    final["patient_id"] = final["patient_id"].map(pat)
    headers = {img[k]: v for k, v in headers.items() if k in img}
    id_map = pd.DataFrame(
        [("image", k, v) for k, v in img.items()] + [("patient", k, v) for k, v in pat.items()],
        columns=["kind", "original", "pseudonym"],
    )
    return final, headers, id_map


def _drop_duplicate_ids(probes: list[_Probe], counts: dict, skipped: list) -> list[_Probe]:
    """Keep the first file of every image id; the others go to ``skipped``."""
    first: dict[str, _Probe] = {}
    dup_files = 0
    for probe in probes:
        if probe.image_id in first:
            dup_files += 1
            skipped.append(
                (
                    str(probe.path),
                    f"duplicate image id '{probe.image_id}' (also {first[probe.image_id].path}); first file kept",
                )
            )
        else:
            first[probe.image_id] = probe
    counts["duplicate_files"] = dup_files
    return list(first.values())


def _clinical_table(
    table,
    listing: pd.DataFrame | None,
    listed_column: str | None,
    *,
    id_column: str,
    path_column: str | None,
    patient_column: str,
    text_columns: Sequence[str] = (),
) -> tuple[pd.DataFrame | None, str | None]:
    """The clinical table (or None) and the path column it is joined on (None: joined on ``id_column``)."""
    if table is None:
        return (listing, listed_column) if listing is not None else (None, None)
    if isinstance(table, pd.DataFrame):
        clinical = table.copy()
        clinical.columns = [str(c) for c in clinical.columns]
        table_src = "table"
        check_numeric_columns(
            clinical,
            source=table_src,
            skip=[id_column, patient_column, *([path_column] if path_column else []), *text_columns],
            id_column=id_column if id_column in clinical else None,
        )
    else:
        clinical = read_table(table, str_columns=[id_column, patient_column], text_columns=text_columns)
        table_src = str(table)
    if path_column is not None and listing is None:
        require_column(clinical, path_column, source=table_src, option=_PATH_OPTION)
        base = Path(table).parent if not isinstance(table, pd.DataFrame) else Path(".")
        clinical["__path__"] = _resolve_listed_paths(clinical, path_column, base)
        return clinical, path_column
    require_column(clinical, id_column, source=table_src, option=_ID_OPTION)
    return clinical, None


def _join_clinical(
    probes: list[_Probe],
    clinical: pd.DataFrame,
    join_path: str | None,
    *,
    id_column: str,
    keep_unmatched: bool,
    counts: dict,
    skipped: list,
) -> tuple[list[_Probe], pd.DataFrame]:
    """Join the files with the table's rows (by path or id); returns the kept files and their rows."""
    clinical = clinical.reset_index(drop=True)
    counts["table_rows"] = len(clinical)
    if join_path is not None:
        key = clinical["__path__"].map(lambda p: None if p is None else os.path.abspath(str(p)))
        probe_key = [os.path.abspath(str(p.path)) for p in probes]
    else:
        key = clinical[id_column].map(lambda v: None if pd.isna(v) else str(v).strip())
        probe_key = [p.image_id for p in probes]
    dup = key.duplicated(keep="first") & key.notna()
    counts["duplicate_rows"] = int(dup.sum())
    clinical = clinical.loc[~dup & key.notna()].copy()
    clinical["__key__"] = key[clinical.index]
    drop_cols = ["__path__"] + ([join_path] if join_path else [])
    if join_path is None:
        drop_cols.append(id_column)
    clinical = clinical.drop(columns=[c for c in drop_cols if c in clinical.columns])
    clinical = clinical.set_index("__key__")
    matched = [k in clinical.index for k in probe_key]
    counts["images_without_row"] = int(len(probes) - sum(matched))
    counts["rows_without_image"] = int(len(clinical) - len(set(probe_key) & set(clinical.index)))
    counts["keep_unmatched"] = bool(keep_unmatched)
    example = probe_key[0] if probe_key else ""
    if not keep_unmatched:
        for probe, ok in zip(probes, matched):
            if not ok:
                skipped.append((str(probe.path), "no row in the clinical table"))
        probes = [p for p, ok in zip(probes, matched) if ok]
        probe_key = [k for k, ok in zip(probe_key, matched) if ok]
        if not probes:
            hint = (
                f"; the image ids are relative paths such as {example!r}, as file names repeat"
                if counts.get("id_scheme") and join_path is None
                else ""
            )
            raise SeegaanError(
                f"no image matches a row of the clinical table (join on "
                f"{'path' if join_path else repr(id_column)}){hint}; check the table's ids "
                f"and the join column: {_PATH_OPTION if join_path else _ID_OPTION}"
            )
    rows = clinical.reindex(probe_key).reset_index(drop=True)
    if "image_id" in rows.columns:  # a table joined by path may carry its own ids: keep them
        ids = rows["image_id"].where(rows["image_id"].notna(), pd.Series([p.image_id for p in probes]))
        rows = rows.drop(columns=["image_id"])
    else:
        ids = pd.Series([p.image_id for p in probes])
    return probes, pd.concat([pd.DataFrame({"image_id": ids.astype(str)}), rows], axis=1)


def _add_dicom_views(probes: list[_Probe], rows: pd.DataFrame) -> dict:
    """The whitelisted DICOM headers by image id; their ViewPosition fills a missing ``view`` column."""
    headers = {p.image_id: p.header for p in probes if p.header}
    if headers and "view" not in rows.columns:
        rows["view"] = [headers.get(p.image_id, {}).get("ViewPosition") for p in probes]
        rows["view"] = rows["view"].map(lambda v: v if v else np.nan)
    return headers


def _filter_views(
    rows: pd.DataFrame, paths: list[Path], view: Sequence[str] | str, counts: dict
) -> tuple[pd.DataFrame, list[Path]]:
    """Keep the images whose (normalised) view is one of ``view``."""
    wanted = [view] if isinstance(view, str) else list(view)
    wanted = [_norm_view(v) for v in wanted if str(v).strip()]
    if "view" not in rows.columns:
        raise SeegaanError(
            "a view filter needs a 'view' column in the table or DICOM files with ViewPosition; none was found"
        )
    have = rows["view"].map(_norm_view)
    keep = have.isin(wanted).to_numpy()
    counts["view_filter"] = "/".join(wanted)
    counts["view_excluded"] = int((~keep).sum())
    counts["view_missing"] = int((have == "").sum())
    rows = rows.loc[keep].reset_index(drop=True)
    paths = [p for p, k in zip(paths, keep) if k]
    if not len(rows):
        raise SeegaanError(f"no image has a view in {wanted}; views present: {sorted(set(have) - {''})[:10]}")
    return rows, paths


def _filter_sizes(
    rows: pd.DataFrame, paths: list[Path], probes: list[_Probe], counts: dict, skipped: list
) -> tuple[pd.DataFrame, list[Path], tuple[int, int] | None]:
    """Without resizing: keep the images of the most common size (unknown sizes kept); returns it too."""
    kept_paths = set(paths)
    shapes = [probe.shape for probe in probes if probe.path in kept_paths]
    common = Counter(s for s in shapes if s is not None).most_common(1)
    native_shape = common[0][0] if common else None
    keep = []
    shape_of = {p.path: p.shape for p in probes}
    for path in paths:
        s = shape_of[path]
        ok = native_shape is None or s is None or s == native_shape
        if not ok:
            skipped.append(
                (
                    str(path),
                    f"image is {s[0]}x{s[1]} but most are {native_shape[0]}x{native_shape[1]}; pass size=... to resize",
                )
            )
        keep.append(ok)
    counts["size_mismatch"] = int(len(keep) - sum(keep))
    rows = rows.loc[keep].reset_index(drop=True)
    return rows, [p for p, k in zip(paths, keep) if k], native_shape


def _patients_and_splits(
    rows: pd.DataFrame, *, patient_column: str, stratify: str | None, fractions: tuple[float, ...], seed
) -> tuple[pd.DataFrame, str]:
    """The final table (``image_id``, ``patient_id``, ``split``, then the clinical columns) and where its
    split came from (the table's ``split`` column, filled or drawn by patient with ``seed``)."""
    out = rows.copy()
    if patient_column in out.columns:
        pid = out.pop(patient_column).map(lambda v: "" if pd.isna(v) else str(v).strip())
        pid = pid.where(pid != "", out["image_id"])
    else:
        pid = out["image_id"].copy()
    if stratify is not None:
        require_column(out, stratify, source="the clinical table", option="stratify=...")
    if "split" in out.columns:
        split_col = check_split_column(out.pop("split"), source="the clinical table")
        missing = split_col == ""
        if missing.any():
            fill = patient_splits(
                pid[missing],
                split=fractions,
                stratify=None if stratify is None else out.loc[missing, stratify],
                seed=seed,
            )
            split_col = split_col.copy()
            split_col[missing] = fill
            split_source = "split column of the table, missing values drawn with the seed"
        else:
            split_source = "split column of the table"
    else:
        split_col = pd.Series(
            patient_splits(pid, split=fractions, stratify=None if stratify is None else out[stratify], seed=seed)
        )
        split_source = f"drawn by patient, fractions {fractions}, seed {seed if isinstance(seed, int) else 'rng'}" + (
            f", stratified on {stratify}" if stratify else ""
        )
    front = pd.DataFrame(
        {
            "image_id": out["image_id"].astype(str).to_numpy(),
            "patient_id": pid.astype(str).to_numpy(),
            "split": split_col.astype(str).to_numpy(),
        }
    )
    rest = out.drop(columns=[c for c in out.columns if c in RESERVED]).reset_index(drop=True)
    return pd.concat([front, rest], axis=1), split_source
