"""Which direction explains what the demo CNN uses? Intervention on the phantom, then the shares of every direction.

    python analyses/explain_directions.py            # about 3 minutes on one core
    python analyses/explain_directions.py --n 10     # fewer images

1. **What the demo CNN uses, by intervention** (``seegaan.demo.cnn_path()``, log NT-proBNP): 200 phantoms
   of the demo's own distribution (``sample_cohort(1600, seed=0)``, the first 200, rendered at 64 px),
   each rendered again with one factor changed and everything else kept: effusions added (``ahf`` True,
   BNPP fixed) and log BNPP raised by 1 (AHF fixed). The mean ± SD change of the CNN's output.
2. **Where each direction puts its change**: ``--n`` test-split images of the demo cohort, each explained
   towards ``prediction + 1`` (log units) with ``explain(direction=...)``: ``mean`` (the paper's: split of
   the cohort at the target on the CNN's own predictions), ``mean`` adjusted for ``ahf``, ``gradient`` and
   ``minimal`` (proximity 1). Score: the share of the counterfactual's absolute change that lies on the
   effusion mask (``truth/ahf_mask.npy``: the costophrenic regions, 4.9% of the pixels) and on the BNPP
   mask (heart and hila). A CNN that ignores effusions is explained faithfully by a direction that puts
   little change there.

Prints both tables (Markdown) and writes ``analyses/output/explain_directions.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np

import seegaan
from seegaan import demo
from seegaan.explain.cnn import load_model
from seegaan.explain.counterfactual import explain
from seegaan.phantom import render, sample_cohort

DIRECTIONS = [
    ("mean", dict(direction="mean")),
    ("mean, adjusted for ahf", dict(direction="mean", adjust=["ahf"])),
    ("gradient", dict(direction="gradient")),
    ("minimal", dict(direction="minimal")),
]


def intervention(model, n: int = 200) -> dict:
    _, params = sample_cohort(1600, seed=0)
    rows = {"effusions added (ahf False -> True, BNPP fixed)": [], "log BNPP + 1 (AHF fixed)": []}
    for p in params[:n]:
        base = render(p, size=64)
        eff = render(dataclasses.replace(p, ahf=True), size=64) if not p.ahf else None
        up = render(dataclasses.replace(p, bnpp=float(p.bnpp) * np.e), size=64)
        pb = model(base[None, None])[0]
        if eff is not None:
            rows["effusions added (ahf False -> True, BNPP fixed)"].append(model(eff[None, None])[0] - pb)
        rows["log BNPP + 1 (AHF fixed)"].append(model(up[None, None])[0] - pb)
    return {k: {"mean": float(np.mean(v)), "sd": float(np.std(v)), "n": len(v)} for k, v in rows.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30, help="test images explained")
    ap.add_argument("--out", type=Path, default=Path("analyses/output/explain_directions.json"))
    args = ap.parse_args(argv)
    cohort = seegaan.open_cohort(demo.cohort_path())
    decoder = seegaan.load_decoder(demo.decoder_path())
    model = load_model(demo.cnn_path())
    effusion = np.load(demo.truth_path("ahf_mask.npy"))
    heart = np.load(demo.truth_path("bnpp_mask.npy"))
    t0 = time.time()
    used = intervention(model)
    print("| intervention on the phantom | change of the CNN's output (log units), mean ± SD | n |")
    print("|---|---|---|")
    for k, v in used.items():
        print(f"| {k} | {v['mean']:+.3f} ± {v['sd']:.3f} | {v['n']} |")
    test = np.flatnonzero(cohort["split"].values.astype(str) == "test")[: args.n]
    ids = [str(i) for i in cohort["image_id"].values[test]]
    w = cohort["w"].values.astype(np.float32)
    scores = model(decoder(w)[:, None])  # the CNN's predictions on every reconstruction (the mean split)
    cohort_scored = cohort.assign_coords(cnn=("image", scores))
    shares: dict[str, dict[str, list]] = {name: {"effusion": [], "heart": [], "seconds": []} for name, _ in DIRECTIONS}
    failures: dict[str, int] = {name: 0 for name, _ in DIRECTIONS}
    for image_id, i in zip(ids, test):
        target = float(scores[i]) + 1.0
        for name, kwargs in DIRECTIONS:
            start = time.perf_counter()
            try:
                feature = "cnn" if kwargs["direction"] == "mean" else None
                r = explain(cohort_scored, decoder, model, image_id=image_id, target=target, feature=feature, **kwargs)
            except seegaan.SeegaanError:
                failures[name] += 1
                continue
            a = np.abs(r.difference)
            shares[name]["effusion"].append(float(a[effusion].sum() / a.sum()))
            shares[name]["heart"].append(float(a[heart].sum() / a.sum()))
            shares[name]["seconds"].append(time.perf_counter() - start)
    print()
    print(f"effusion mask {effusion.mean():.1%} of the pixels, BNPP mask {heart.mean():.1%}; {len(ids)} test images")
    print("| direction | share of the change on the effusions, median [IQR] | on heart and hila | reached | s/image |")
    print("|---|---|---|---|---|")
    table = {}
    for name, _ in DIRECTIONS:
        e, h = np.array(shares[name]["effusion"]), np.array(shares[name]["heart"])
        q = lambda v: f"{np.median(v):.3f} [{np.quantile(v, 0.25):.3f}, {np.quantile(v, 0.75):.3f}]"  # noqa: E731
        ok = len(e)
        print(f"| {name} | {q(e)} | {q(h)} | {ok}/{len(ids)} | {np.mean(shares[name]['seconds']):.1f} |")
        table[name] = {"effusion": e.tolist(), "heart": h.tolist(), "reached": ok, "failures": failures[name]}
    result = {"intervention": used, "directions": table, "images": ids, "seconds": round(time.time() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".part")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
