"""Real radiographs: train on the frontal views of ../shared/data/cxr, report reconstruction quality, and
produce global sequences for sex and age with max-T significance.

    python analyses/real_cxr.py                         # 64x64, CPU-sized model
    python analyses/real_cxr.py --size 128 --steps 6000 --device cuda

Outputs (never committed) go to ``analyses/output/real_<size>/``: the checkpoints, ``cohort.nc``, the
sequence netCDF files and figures, reconstructions and ``results.json`` with the numbers quoted in the
README. The data folder comes from ``--data`` or ``SEEGAAN_CXR_DIR`` (default ``../shared/data/cxr``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", type=Path, default=Path(os.environ.get("SEEGAAN_CXR_DIR", REPO.parent / "shared" / "data" / "cxr"))
    )
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--latent", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--perm", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sd-offset", default=None, help="max-T s0: a number, median or pNN (default 0)")
    ap.add_argument(
        "--min-change",
        type=float,
        default=0.0,
        help="significant only where |change| exceeds this (image units; default 0: any change)",
    )
    ap.add_argument(
        "--max-minutes", type=float, default=None, help="stop training cleanly after this many minutes (resumable)"
    )
    ap.add_argument("--train-only", action="store_true", help="stop after training (no encoding)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (one is fastest on a shared 2-core CPU)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import seegaan
    from seegaan.data import load_dataset
    from seegaan.model import small_config
    from seegaan.model.tasks import encode_images, reconstruct_images
    from seegaan.model.training import TrainConfig, train

    out = args.out or REPO / "analyses" / "output" / f"real_{args.size}"
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset(
        args.data / "images", args.data / "metadata.csv", size=args.size, view=["PA", "AP"], seed=args.seed
    )
    print(data.report())
    cfg = small_config(args.size, width=args.width, latent_size=args.latent)
    tcfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch,
        checkpoint_every=250,
        val_every=250,
        val_images=256,
        seed=args.seed,
        max_minutes=args.max_minutes,
    )
    t0 = time.time()
    result = train(data, out_dir=out / "train", model_config=cfg, config=tcfg, resume=True, device=args.device)
    train_s = time.time() - t0
    print(f"training: step {result.step} in {train_s:.0f} s this run; best {result.best}")
    if args.train_only:
        return
    best = result.best or result.last
    best_val = min((h for h in result.history if "val_l2" in h), key=lambda h: h["val_l2"], default={})
    cohort = encode_images(best, data, out=out / "cohort.nc", overwrite=True, device=args.device)
    reconstruct_images(best, data, out=out / "reconstructions.png", split="val", overwrite=True, device=args.device)
    results = {
        "size": args.size,
        "width": args.width,
        "latent": args.latent,
        "steps": result.step,
        "train_seconds_this_run": train_s,
        "images": len(data),
        "baseline_val_l2_mean_image": result.baseline_l2,
        "best_validation": best_val,
        "perceptual": result.perceptual,
        "sequences": {},
    }
    # non-default test options name their own outputs (sex_mc0.02.nc, results_mc0.02.json, ...)
    suffix = (f"_s0{args.sd_offset}" if args.sd_offset else "") + (f"_mc{args.min_change:g}" if args.min_change else "")
    results.update(sd_offset=args.sd_offset, min_change=args.min_change)
    runs = []
    for feature, opts in (("sex", dict(method="class-mean", levels="F,M")), ("age", dict(method="gam"))):
        runs += [(feature, feature, opts), (feature, f"{feature}_adjusted", {**opts, "adjust": "source,view"})]
    for feature, name, opts in runs:  # unadjusted, and adjusted for data source and view (Freedman-Lane)
        t0 = time.time()
        interp = seegaan.interpolate(cohort, feature=feature, steps=8, **opts)
        res = seegaan.sequence(
            interp,
            best,
            n_perm=args.perm,
            seed=args.seed,
            correction=seegaan.MaxT(sd_offset=args.sd_offset or 0, min_change=args.min_change),
        )
        res.save(out / f"{name}{suffix}.nc", out / f"{name}{suffix}.png", overwrite=True)
        sig = res.significant[1:]
        results["sequences"][name] = {
            "images_used": int(interp.image_index.size),
            "left_out_missing": interp.n_missing,
            "patients": int(len(np.unique(interp.patient_ids))),
            "scheme": res.attrs["permutation_scheme"],
            "significant_fraction_last_step": float(res.significant[-1].mean()),
            "significant_fraction_all_steps": float(sig.mean()),
            "max_abs_difference_last_step": float(np.abs(res.difference[-1]).max()),
            "seconds": time.time() - t0,
        }
        print(name, results["sequences"][name])
    (out / f"results{suffix}.json").write_text(json.dumps(results, indent=2, default=float))
    print(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
