"""The bundled demo: a small model trained on a phantom cohort and that cohort's latents.

The files live beside this module in the package ``seegaan.demo`` (installed as its package data):
``phantom_cohort.nc``, ``phantom_model.pt``, ``phantom_cnn.pt`` (a small CNN of log NT-proBNP, for
``explain``), ``phantom.json`` and the phantom's ground truth in ``truth/``.
They are produced by ``analyses/make_demo.py``; when they are absent these functions say so instead of
guessing.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from seegaan._internal.errors import SeegaanError

COHORT_NAME = "phantom_cohort.nc"
MODEL_NAME = "phantom_model.pt"
CNN_NAME = "phantom_cnn.pt"


def _demo_file(name: str) -> Path:
    path = Path(str(resources.files(__name__) / name))
    if not path.is_file():
        raise SeegaanError(
            f"the bundled demo file {name} is not installed with this copy of seegaan; "
            "pass --cohort and --decoder (or build it with analyses/make_demo.py)"
        )
    return path


def cohort_path() -> Path:
    """Path of the bundled demo latent cohort (netCDF)."""
    return _demo_file(COHORT_NAME)


def decoder_path() -> Path:
    """Path of the bundled demo checkpoint (usable as a decoder)."""
    return _demo_file(MODEL_NAME)


def truth_path(name: str = "marker_free_mask.npy") -> Path:
    """A file of the demo phantom's ground truth (``truth/``): ``effect_<feature>.npy``,
    ``marginal_<feature>_mask.npy``, ... or ``marker_free_mask.npy`` (for ``--mask``); see its README.md."""
    return _demo_file(f"truth/{name}")


def cnn_path() -> Path:
    """Path of the bundled demo CNN: a :class:`seegaan.explain.smallcnn.SmallCNN` regressing log NT-proBNP
    (pg/mL) on the demo phantom's 64x64 images, trained by ``seegaan-stats train-cnn`` (its metrics are in
    the file: :func:`seegaan.explain.smallcnn.load_cnn`)."""
    return _demo_file(CNN_NAME)
