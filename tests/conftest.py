import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
CXR_DIR = Path(os.environ.get("SEEGAAN_CXR_DIR", REPO.parent / "shared" / "data" / "cxr"))


def make_cohort(n=60, D=8, *, seed=0, images_per_patient=1, effect=0.0, extra=None):
    """A random latent cohort with numeric ``age``/``bnpp``, categorical ``sex`` and boolean ``ahf``."""
    import seegaan

    rng = np.random.default_rng(seed)
    n_pat = n // images_per_patient
    pid = np.repeat([f"p{i:03d}" for i in range(n_pat)], images_per_patient)[:n]
    pat_age = rng.uniform(20, 90, n_pat)
    pat_sex = rng.choice(["F", "M"], n_pat)
    pat_ahf = rng.random(n_pat) < 0.4
    idx = np.repeat(np.arange(n_pat), images_per_patient)[:n]
    w = rng.standard_normal((n, D))
    if images_per_patient > 1:  # images of one patient share anatomy
        w = 0.5 * w + rng.standard_normal((n_pat, D))[idx]
    age = pat_age[idx]
    w[:, 0] += effect * (age - 55) / 20
    table = pd.DataFrame({"image_id": [f"img{i:04d}" for i in range(n)], "patient_id": pid,
                          "age": age, "sex": pat_sex[idx], "ahf": pat_ahf[idx],
                          "bnpp": np.exp(rng.normal(6, 1.2, n))})
    for k, v in (extra or {}).items():
        table[k] = v
    return seegaan.create_cohort(w, table, model="test", image_size=8)


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
