"""GAM permutation null: seegaan's linear-map path against fitting 512 pyGAM models per permutation.

Both produce the trajectory (K grid values x D latent dims) of every permutation of the latents. seegaan
builds the K x n map once (fixed λ) or a per-λ factorisation once (GCV λ per dimension) and applies it to
permuted latents; pyGAM refits ``LinearGAM(s(0))`` (or ``.gridsearch``) for every dimension and every
permutation. pyGAM is far too slow to run all B permutations, so it runs ``--pygam-perms`` of them (and,
for gridsearch, ``--pygam-dims`` dimensions) and its per-permutation time is scaled up; the fitted values
of the permutations both ran are compared.

    python benchmarks/bench_gam.py                 # n=2691, D=512, K=10, B=1000
    python benchmarks/bench_gam.py --quick         # smoke run in seconds (tested): n=500, D=64, B=100,
                                                   # pyGAM 1 permutation; no JSON unless --out is given
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

import seegaan
from seegaan.stats import draw_permutations


def make_cohort(n, D, seed=0):
    rng = np.random.default_rng(seed)
    bnpp = np.exp(rng.normal(6.0, 1.3, n))
    x = np.log(bnpp)
    w = rng.standard_normal((n, D)).astype(np.float32)
    w[:, : D // 4] += (0.3 * np.sin(x)[:, None] * rng.standard_normal(D // 4)).astype(np.float32)
    table = pd.DataFrame(
        {"image_id": [f"i{i}" for i in range(n)], "patient_id": [f"p{i}" for i in range(n)], "bnpp": bnpp}
    )
    return seegaan.create_cohort(w, table)


def seegaan_null(interp, plan):
    t0 = time.perf_counter()
    out = [interp.trajectory]
    for idx in plan.indices:
        out.append(interp.null_trajectory(idx, plan.scheme))
    return time.perf_counter() - t0, out


def pygam_null(interp, plan, n_perm, dims, gridsearch):
    from pygam import LinearGAM, s

    x = interp.feature_codes[:, None]
    W = interp.latents
    grid = np.log(interp.grid)[:, None]
    t0 = time.perf_counter()
    trajs = []
    for idx in plan.indices[:n_perm]:
        Wp = W[idx]
        traj = np.empty((grid.shape[0], len(dims)))
        for j, d in enumerate(dims):
            if gridsearch:
                gam = LinearGAM(s(0)).gridsearch(x, Wp[:, d], progress=False)
            else:
                gam = LinearGAM(s(0)).fit(x, Wp[:, d])
            traj[:, j] = gam.predict(grid)
        trajs.append(traj)
    return (time.perf_counter() - t0) / n_perm, trajs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2691)
    ap.add_argument("--latent", type=int, default=512)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--perm", type=int, default=1000)
    ap.add_argument("--pygam-perms", type=int, default=2)
    ap.add_argument("--pygam-dims", type=int, default=32, help="dimensions fitted by pyGAM gridsearch")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: n=500, D=64, B=100, pyGAM on 1 permutation; writes no JSON unless --out",
    )
    ap.add_argument("--out", help="JSON output (default benchmarks/output/gam.json; none with --quick)")
    args = ap.parse_args()
    if args.quick:
        args.n, args.latent, args.perm, args.pygam_perms, args.pygam_dims = 500, 64, 100, 1, 8
    elif args.out is None:
        args.out = "benchmarks/output/gam.json"
    ds = make_cohort(args.n, args.latent)
    plan = draw_permutations(ds["patient_id"].values, args.perm, seed=0)
    rows = []
    for label, lam, gridsearch in (("fixed lambda 0.6", 0.6, False), ("GCV lambda per dim", "auto", True)):
        interp = seegaan.interpolate(ds, feature="bnpp", method="gam", transform="log", steps=args.steps, gam_lam=lam)
        ours, trajs = seegaan_null(interp, plan)
        dims = (
            np.arange(args.latent) if not gridsearch else np.linspace(0, args.latent - 1, args.pygam_dims).astype(int)
        )
        per_perm, ref = pygam_null(interp, plan, args.pygam_perms, dims, gridsearch)
        per_perm_all_dims = per_perm * args.latent / len(dims)
        err = max(float(np.abs(trajs[1 + b][:, dims] - ref[b]).max()) for b in range(args.pygam_perms))
        pygam_total = per_perm_all_dims * (args.perm + 1)
        rows.append(
            {
                "path": label,
                "n": args.n,
                "latent": args.latent,
                "steps": args.steps,
                "perm": args.perm,
                "seegaan_s_total": ours,
                "seegaan_ms_per_perm": 1e3 * ours / (args.perm + 1),
                "pygam_s_per_perm": per_perm_all_dims,
                "pygam_dims_fitted": int(len(dims)),
                "pygam_s_total_extrapolated": pygam_total,
                "speedup": pygam_total / ours,
                "max_abs_diff_fitted": err,
            }
        )
    print(
        f"{'path':<22}{'seegaan total s':>16}{'pyGAM s/perm':>14}{'pyGAM total s (est.)':>22}{'speed-up':>10}{'max |diff|':>12}"  # noqa: E501
    )
    for r in rows:
        print(
            f"{r['path']:<22}{r['seegaan_s_total']:>16.2f}{r['pygam_s_per_perm']:>14.2f}"
            f"{r['pygam_s_total_extrapolated']:>22.0f}{r['speedup']:>9.0f}x{r['max_abs_diff_fitted']:>12.1e}"
        )
    if args.out is None:
        return
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
