"""The phantom's patients: clinical variables from a known joint distribution, and the render parameters
(anatomy and nuisance) of every image of a cohort."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seegaan._internal.errors import SeegaanError
from seegaan.phantom.anatomy import MANUFACTURERS, MARKER_JITTER, PhantomParams

# closed-form pieces of the joint distribution (age clipping and rounding ignored in the truth maps)
AGE_MEAN, AGE_SD = 60.0, 14.0
LOG_BNPP_SD = 0.75
MANUFACTURER_P = (0.45, 0.35, 0.20)


def _p_ahf(age):
    return 1.0 / (1.0 + np.exp(-(-0.8 + 0.035 * (age - 60.0))))


def _mu_log_bnpp(ahf, age):
    return 4.9 + 2.0 * ahf + 0.005 * (age - 60.0)


def sample_clinical(n_patients: int, *, seed: int | np.random.Generator | None = 0) -> pd.DataFrame:
    """Draw patients' clinical variables from the phantom's joint distribution.

    age ~ N(60, 14) in [20, 95] (whole years); P(AHF) = logistic(-0.8 + 0.035 (age - 60)) (AHF patients
    are older); log BNPP ~ N(4.9 + 2.0 AHF + 0.005 (age - 60), 0.75); sex 50/50 and manufacturer
    45/35/20 %, independent of the rest and assigned in blocks along (AHF, BNPP) so that each sample is
    balanced on them.
    """
    rng = np.random.default_rng(seed)
    n = int(n_patients)
    age = np.clip(np.round(rng.normal(AGE_MEAN, AGE_SD, n)), 20, 95)
    p_ahf = _p_ahf(age)
    ahf = rng.random(n) < p_ahf
    log_bnpp = rng.normal(_mu_log_bnpp(ahf, age), LOG_BNPP_SD)
    # sex and manufacturer: blocked randomisation along (AHF, BNPP) so that every sample, not only the
    # population, is balanced on them (no chance confounding of the sex or manufacturer contrasts)
    order = np.lexsort((log_bnpp, ahf))
    male = np.zeros(n, dtype=bool)
    for start in range(0, n, 2):
        block = order[start : start + 2]
        male[block] = rng.permutation([True, False])[: len(block)]
    pattern = np.repeat(np.arange(3), (9, 7, 4))  # 45/35/20 % in blocks of 20
    codes = np.empty(n, dtype=int)
    for start in range(0, n, 20):
        block = order[start : start + 20]
        codes[block] = rng.permutation(pattern)[: len(block)]
    manufacturer = np.array(MANUFACTURERS)[codes]
    return pd.DataFrame(
        {
            "sex": np.where(male, "M", "F"),
            "age": age,
            "ahf": ahf,
            "bnpp": np.round(np.exp(log_bnpp), 1),
            "manufacturer": manufacturer,
        }
    )


def sample_cohort(
    n_images: int, *, seed: int | np.random.Generator | None = 0
) -> tuple[pd.DataFrame, list[PhantomParams]]:
    """Clinical table and render parameters of a phantom cohort of ``n_images`` images.

    About 20% of patients have two images (same anatomy and clinical values, new nuisance). Returns the
    table (image_id, patient_id, sex, age, ahf, bnpp, manufacturer, view) and one
    :class:`PhantomParams` per row.
    """
    n_images = int(n_images)
    if n_images < 1:
        raise SeegaanError(f"the phantom needs at least one image; got n={n_images}")
    rng = np.random.default_rng(seed)
    n_patients = n_images  # enough; trimmed below
    clinical = sample_clinical(n_patients, seed=rng)
    n_per = np.where(rng.random(n_patients) < 0.2, 2, 1)
    rows, params = [], []
    for i in range(n_patients):
        c = clinical.iloc[i]
        anatomy = {
            "heart_jitter": float(rng.normal(0, 0.025)),
            "breast_jitter": float(np.clip(rng.normal(0, 0.06), -0.15, 0.15)),
            "rib_phase": float(rng.normal(0, 0.02)),
        }
        for k in range(int(n_per[i])):
            if len(rows) == n_images:
                break
            nuisance = {
                "shift_x": float(np.clip(rng.normal(0, 0.015), -0.05, 0.05)),
                "shift_y": float(np.clip(rng.normal(0, 0.015), -0.05, 0.05)),
                "rotation": float(np.clip(rng.normal(0, 0.8), -2.5, 2.5)),
                "scale": float(np.clip(rng.normal(1, 0.02), 0.94, 1.06)),
                "inspiration": float(np.clip(rng.normal(1, 0.025), 0.92, 1.08)),
                "noise": 0.02,
                "noise_seed": int(rng.integers(2**31 - 1)),
                "marker_side": int(rng.choice([-1, 1])),
                "marker_dx": float(rng.uniform(-MARKER_JITTER[0], MARKER_JITTER[0])),
                "marker_dy": float(rng.uniform(-MARKER_JITTER[1], MARKER_JITTER[1])),
            }
            params.append(
                PhantomParams(
                    sex=c.sex,
                    age=float(c.age),
                    ahf=bool(c.ahf),
                    bnpp=float(c.bnpp),
                    manufacturer=c.manufacturer,
                    **anatomy,
                    **nuisance,
                )
            )
            rows.append(
                {
                    "image_id": f"ph{i:05d}_{k}",
                    "patient_id": f"p{i:05d}",
                    "sex": c.sex,
                    "age": float(c.age),
                    "ahf": bool(c.ahf),
                    "bnpp": float(c.bnpp),
                    "manufacturer": c.manufacturer,
                    "view": "PA",
                }
            )
        if len(rows) == n_images:
            break
    return pd.DataFrame(rows), params
