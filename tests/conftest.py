import os
from pathlib import Path

import pytest
from hypothesis import settings

from seegaan.testing.cohorts import make_cohort  # noqa: F401  (tests import it from here too)

# The suite runs the property tests derandomised, so a CI run is reproducible; explore new examples with
# ``pytest --hypothesis-profile explore`` (or ``--hypothesis-seed N``).
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]
CXR_DIR = Path(os.environ.get("SEEGAAN_CXR_DIR", REPO.parent / "shared" / "data" / "cxr"))


@pytest.fixture
def one_torch_thread():
    """One torch intra-op thread: on a shared 2-core machine two spinning OpenMP threads can run many
    times slower than one (the model tests use it)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cohort():
    return make_cohort()


@pytest.fixture(params=["numba", "numpy"])
def backend(request):
    return request.param
