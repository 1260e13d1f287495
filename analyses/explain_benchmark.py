"""The known-truth benchmark of explanations (seegaan.testing.explain_benchmark): the table of docs/validation.md.

    python analyses/explain_benchmark.py              # 3 seeds x r = 0, 0.5, 0.8; about 6 minutes on one core
    python analyses/explain_benchmark.py --quick      # 1 seed, r = 0 and 0.8, 3 images

For each correlation r of the explanation cohort, CNN (size, density, both) and method: the median share of
the size factor in the method's change or attribution map over the explained images and seeds, and the
range of the per-seed medians. 1 = all size, 0 = all density: the size CNN is explained faithfully near 1,
the density CNN near 0 (their reliance by intervention is printed first). Writes
``analyses/output/explain_benchmark.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from seegaan.testing import explain_benchmark as bench


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("analyses/output/explain_benchmark.json"))
    args = ap.parse_args(argv)
    t0 = time.time()
    if args.quick:
        table, facts = bench.run(rs=(0.0, 0.8), seeds=(0,), n_train=600, n_explain=300, n_images=3, epochs=6)
    else:
        table, facts = bench.run()
    print("| seed | autoencoder R² (size, density) | size CNN: +1 SD size, density | density CNN | both CNN |")
    print("|---|---|---|---|---|")
    for seed, f in facts.items():
        rel = f["reliance"]
        cells = [f"{rel[c]['size']:+.3f}, {rel[c]['density']:+.3f}" for c in bench.CNNS]
        print(f"| {seed} | {f['r2']['size']:.3f}, {f['r2']['density']:.3f} | " + " | ".join(cells) + " |")
    print()
    methods = [m for m in bench.METHODS if m in set(table["method"])]
    print("| r | CNN | " + " | ".join(methods) + " |")
    print("|---|---|" + "---|" * len(methods))
    summary = {}
    for r in sorted(set(table["r"])):
        for cnn in bench.CNNS:
            cells = []
            for m in methods:
                part = table[(table["r"] == r) & (table["cnn"] == cnn) & (table["method"] == m)]
                per_seed = part.groupby("seed")["share"].median()
                missing = int(part["share"].isna().sum())
                if per_seed.notna().sum() == 0:
                    cells.append("all zero" if m == "gradcam" else "—")
                    continue
                med = float(np.nanmedian(part["share"]))
                lo, hi = float(np.nanmin(per_seed)), float(np.nanmax(per_seed))
                cell = f"{med:.2f} [{lo:.2f}, {hi:.2f}]" if len(per_seed) > 1 else f"{med:.2f}"
                cells.append(cell + (f" ({missing} none)" if missing else ""))
                summary[f"{r}/{cnn}/{m}"] = {"median": med, "seed_range": [lo, hi], "missing": missing}
            print(f"| {r:g} | {cnn} | " + " | ".join(cells) + " |")
    out = {"facts": {str(k): v for k, v in facts.items()}, "summary": summary, "seconds": round(time.time() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".part")
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({out['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
