"""Data in: radiographs (PNG/JPEG/DICOM/.npy), clinical tables, patient-level splits and Table 1.

Public functions: :func:`read_image`, :func:`load_dataset` (-> :class:`ImageSet`), :func:`read_table`,
:func:`patient_splits`, :func:`dicom_header`, :func:`table1` (-> :class:`Table1Result`).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "read_image": "seegaan.data.images",
    "dicom_header": "seegaan.data.images",
    "image_id_from_path": "seegaan.data.images",
    "DICOM_WHITELIST": "seegaan.data.images",
    "load_dataset": "seegaan.data.dataset",
    "ImageSet": "seegaan.data.dataset",
    "read_table": "seegaan.data.tables",
    "patient_splits": "seegaan.data.tables",
    "table1": "seegaan.data.table1",
    "Table1Result": "seegaan.data.table1",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'seegaan.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
