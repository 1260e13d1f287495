"""Data in: radiographs (PNG/JPEG/DICOM/.npy), clinical tables, patient-level splits and Table 1.

Public functions: :func:`read_image`, :func:`load_dataset` (-> :class:`ImageSet`), :func:`read_table`,
:func:`patient_splits`, :func:`dicom_header`, :func:`table1` (-> :class:`Table1Result`).
"""

from __future__ import annotations

from seegaan._internal.choices import DEFAULT_SIZE  # noqa: F401  (the side of the square images the model reads)
from seegaan._internal.lazy import lazy_module

_LAZY = {
    "read_image": "seegaan.data.images",
    "dicom_header": "seegaan.data.images",
    "image_id_from_path": "seegaan.data.images",
    "DICOM_WHITELIST": "seegaan.data.images",
    "load_dataset": "seegaan.data.dataset",
    "ImageSet": "seegaan.data.dataset",
    "read_table": "seegaan.data.tables",
    "patient_splits": "seegaan.data.tables",
    "table1": "seegaan.data.tableone",
    "Table1Result": "seegaan.data.tableone",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__, _ = lazy_module("seegaan.data", _LAZY)
