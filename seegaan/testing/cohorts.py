"""Latent cohorts with known structure, for tests and analyses."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seegaan.data.cohort import create_cohort

__all__ = ["make_cohort"]


def make_cohort(n=60, D=8, *, seed=0, images_per_patient=1, effect=0.0, extra=None):
    """A random latent cohort with numeric ``age``/``bnpp``, categorical ``sex`` and boolean ``ahf``."""
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
    table = pd.DataFrame(
        {
            "image_id": [f"img{i:04d}" for i in range(n)],
            "patient_id": pid,
            "age": age,
            "sex": pat_sex[idx],
            "ahf": pat_ahf[idx],
            "bnpp": np.exp(rng.normal(6, 1.2, n)),
        }
    )
    for k, v in (extra or {}).items():
        table[k] = v
    return create_cohort(w, table, model="test", image_size=8)
