"""python analyses/calibration_ties.py (about 1 minute on one core).

Calibration of the tie-pooled sign-flip null: U-shaped spread with the feature (age) rounded to whole
years, as real ages are, so that patients share feature values. 400 cohorts, B = 199, max-T."""

import dataclasses

import numpy as np

from seegaan.testing import designs
from seegaan.testing.harness import family_wise_error


def rounded(builder):
    def build(rng, D, **kw):
        ds = builder(rng, D, **kw)
        ages = np.round(ds["age"].values)
        return ds.assign_coords(age=("image", ages))

    return build


def main() -> None:
    for name in ("linear-u", "gam-u"):
        base = designs.DESIGNS[name]
        designs.DESIGNS[name + "-tied"] = dataclasses.replace(base, build=rounded(base.build))
        for dec in ("saturated", "mlp-softplus", "linear"):
            ds = designs.DESIGNS[name + "-tied"](np.random.default_rng(0), 6)
            n_unique = np.unique(ds["age"].values).size
            rate = family_wise_error(name + "-tied", dec, n_cohorts=400, n_perm=199, null="sign-flip")
            print(
                f"| {name}, age rounded ({n_unique} distinct values in {ds.sizes['image']} images) | {dec} | {rate} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
