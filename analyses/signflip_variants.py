"""Two variants of the sign-flip null that would recover power for unbalanced classes, and their calibration.

docs/statistics.md ("Where the loss comes from") explains why the default loses power against the
permutation test for unbalanced classes at equal spread: the null model's residuals carry each class's
offset from the weighted centre, so the flipped null variance includes the observed effect with a weight
above the permutation test's 1/n. This script measures, on the harness's class-mean designs and decoders,
what happens when that weight is removed or shrunk:

``full``
    flip the full model's leverage-corrected residuals (projected off the weighted null model), around the
    weighted centre: no self-inclusion;
``balanced``
    flip residuals about a centre weighted 1/n_g² per image (self-inclusion 1/n, as a permutation test),
    decoded around the 1/v̂ centre as the default.

Both are patched into :class:`seegaan.InterpolationResult` for this run only (they are not package
options). Prints k/n family-wise errors (null designs, equal-spread controls) and power, with exact 95%
intervals; writes ``analyses/output/signflip_variants.json``.

    python analyses/signflip_variants.py            # 400 cohorts per cell, about 3 minutes on one core
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

import seegaan.interpolation.result as result
from seegaan.testing.harness import family_wise_error

ORIGINAL_FLIPS = result.InterpolationResult.flip_trajectories
ORIGINAL_NULL_MODEL = result.InterpolationResult.null_model

CASES = [
    ("control", "class-20-8-sd2", "linear", dict(control=True)),
    ("null", "class-20-8-sd2", "linear", {}),
    ("null", "class-20-8-sd2", "saturated", {}),
    ("null", "class-120-30-sd2", "saturated", {}),
    ("null", "class-190-10-sd2", "saturated", {}),
    ("power", "class-120-30-sd2", "saturated", dict(control=True, effect=0.8)),
    ("power", "class-20-8-sd2", "linear", dict(control=True, effect=2.0)),
]


def _full_residuals(interp, null):
    """The full model's leverage-corrected residuals ``(W − fitted) / sqrt(1 − h)``, projected off ``null``."""
    X, _ = interp._design
    n_cov = 0 if interp._Z is None else interp._Z.shape[1]
    S = interp._spec.penalty(interp._spec.lam if interp._spec.lam is not None else 1.0, n_cov)
    W = interp._latents
    A = np.linalg.solve(X.T @ X + S, X.T)
    h = np.clip(np.einsum("ip,pi->i", X, A), 0.0, 0.99)
    return null.project((W - X @ (A @ W)) / np.sqrt(1.0 - h)[:, None])


def flips_full(self, rows, null=None):
    rows = np.asarray(rows, dtype=np.float64)
    null = self.null_model() if null is None else null
    M = self._flip_map(null)
    centre = self.trajectory - M @ null.residuals
    out = centre[None] + (M[None] * rows[:, None, :]) @ _full_residuals(self, null)
    out[(rows == 1).all(axis=1)] = self.trajectory  # the identity draw is the observed trajectory
    return out


def null_model_balanced(self):
    null = ORIGINAL_NULL_MODEL(self)
    codes = np.asarray(self._x)
    w = np.empty(codes.size)
    for g in np.unique(codes):
        w[codes == g] = 1.0 / np.sum(codes == g) ** 2
    Xw = null.X0 * w[:, None]
    C = np.linalg.solve(null.X0.T @ Xw, Xw.T)
    return replace(null, residuals=self._latents - null.X0 @ (C @ self._latents))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-R", "--cohorts", type=int, default=400)
    ap.add_argument("--out", type=Path, default=Path("analyses/output/signflip_variants.json"))
    args = ap.parse_args(argv)
    rows = []
    for variant in ("default", "full", "balanced"):
        result.InterpolationResult.flip_trajectories = flips_full if variant == "full" else ORIGINAL_FLIPS
        result.InterpolationResult.null_model = null_model_balanced if variant == "balanced" else ORIGINAL_NULL_MODEL
        for kind, design, decoder, kw in CASES:
            rate = family_wise_error(design, decoder, n_cohorts=args.cohorts, n_perm=199, null="sign-flip", **kw)
            lo, hi = rate.interval
            rows.append(
                dict(variant=variant, kind=kind, design=design, decoder=decoder, k=rate.k, n=rate.n, ci95=[lo, hi])
            )
            print(f"{variant:<9}{kind:<8}{design:<18}{decoder:<10}{rate}", flush=True)
    result.InterpolationResult.flip_trajectories = ORIGINAL_FLIPS
    result.InterpolationResult.null_model = ORIGINAL_NULL_MODEL
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".part")
    tmp.write_text(json.dumps(rows, indent=1))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
