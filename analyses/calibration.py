"""The calibration table of docs/statistics.md: family-wise error and power of the nulls on the harness designs.

For every design x decoder of :mod:`seegaan.testing.harness` it runs the default null (``sign-flip``) and the
permutation null on the same cohorts (paired), the exchangeable controls, and the power runs (a shift of a
group's mean, or an effect along the feature), and writes a JSON of rows (each with every cohort's smallest
adjusted p) and a Markdown table. Power is compared pairwise with an exact McNemar test.

Run (about 15 minutes on 2 shared cores with the defaults)::

    OMP_NUM_THREADS=1 python analyses/calibration.py --out analyses/output/calibration.json
    OMP_NUM_THREADS=1 python analyses/calibration.py --quick      # a minute: fewer cohorts and designs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seegaan.testing.harness import family_wise_error  # noqa: E402

DESIGNS = [
    "class-120-30-sd2",
    "class-190-10-sd2",
    "class-120-30-sd3",
    "class-20-8-sd2",
    "clustered",
    "confounded",
    "gam-u",
    "gam-growing",
    "gam-skewed",
    "gam-skewed-log",
    "linear-u",
    "linear-growing",
    "linear-growing-patients",
    "gam-growing-patients",
    "local-atypical",
    "local-atypical-sd2",
]
CONTROLS = ["class-120-30-sd2", "class-20-8-sd2", "clustered", "confounded", "gam-u", "linear-u"]
#: power at equal spread (the exchangeable controls, where the permutation null is exact): a shift of the
#: second group's mean (class-mean) or an effect along the feature (numeric)
POWER = [("class-120-30-sd2", 0.8), ("class-20-8-sd2", 2.0), ("clustered", 0.8), ("linear-u", 0.6), ("gam-u", 0.6)]
DECODERS = ["saturated", "mlp-softplus", "linear"]
NULLS = ["sign-flip", "permutation"]


def mcnemar(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sided McNemar p of paired rejections ``a`` and ``b`` (bool arrays)."""
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    return 1.0 if n == 0 else float(min(1.0, 2 * stats.binom.cdf(min(only_a, only_b), n, 0.5)))


def _cell(row) -> str:
    lo, hi = row["ci95"]
    return f"{row['k']}/{row['n']} = {row['rate']:.3f} [{lo:.3f}, {hi:.3f}]"


def markdown(results: dict) -> str:
    """The tables of docs/statistics.md: null designs and controls (one column per decoder and null), power."""
    rows = results["rows"]
    out = []
    for kind, title in (("null", "Null designs"), ("control", "Exchangeable controls")):
        out += [f"**{title}** (k/n family-wise errors, exact 95% interval; α = 0.05)", ""]
        out.append("| design | null | " + " | ".join(DECODERS) + " |")
        out.append("|---|---|" + "---|" * len(DECODERS))
        designs = list(dict.fromkeys(r["design"] for r in rows if r["kind"] == kind))
        for design in designs:
            for null in NULLS:
                cells = []
                for decoder in DECODERS:
                    hit = [
                        r
                        for r in rows
                        if (r["kind"], r["design"], r["decoder"], r["null"]) == (kind, design, decoder, null)
                    ]
                    cells.append(_cell(hit[0]) if hit else "")
                out.append(f"| {design} | {null} | " + " | ".join(cells) + " |")
        out.append("")
    if results.get("power"):
        out += [
            "**Power at equal spread** (k/n cohorts with a significant pixel; exact McNemar p of the paired "
            "difference)",
            "",
        ]
        out.append("| design | effect | decoder | sign-flip | permutation | McNemar p |")
        out.append("|---|---|---|---|---|---|")
        for p in results["power"]:
            out.append(
                f"| {p['design']} | {p['effect']:g} | {p['decoder']} | {p['flips']}/{p['n']} | "
                f"{p['permutation']}/{p['n']} | {p['mcnemar_p']:.2g} |"
            )
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-R", "--cohorts", type=int, default=400)
    ap.add_argument("-B", "--perm", type=int, default=199)
    ap.add_argument("--quick", action="store_true", help="100 cohorts, B 99, three designs")
    ap.add_argument("--out", type=Path, default=Path("analyses/output/calibration.json"))
    ap.add_argument("--table", type=Path, help="print the Markdown tables of a results file and stop")
    ap.add_argument("--parts", nargs="+", default=["null", "control", "power"], choices=["null", "control", "power"])
    args = ap.parse_args(argv)
    if args.table is not None:
        print(markdown(json.loads(args.table.read_text())))
        return 0
    R, B = (100, 99) if args.quick else (args.cohorts, args.perm)
    designs = DESIGNS[:1] + ["gam-u", "local-atypical-sd2"] if args.quick else DESIGNS
    rows = []

    def run(kind, design, decoder, null, **kw):
        rate = family_wise_error(design, decoder, n_cohorts=R, n_perm=B, null=null, **kw)
        lo, hi = rate.interval
        row = dict(
            kind=kind,
            design=design,
            decoder=decoder,
            null=null,
            k=rate.k,
            n=rate.n,
            rate=rate.rate,
            ci95=[lo, hi],
            B=B,
            seconds=round(rate.seconds, 2),
            min_p=[float(p) for p in rate.min_p],
            **kw,
        )
        rows.append(row)
        print(f"{kind:<8}{design:<26}{decoder:<14}{null:<12}{rate}  ({rate.seconds:.1f} s)", flush=True)
        return rate

    for design in designs if "null" in args.parts else []:
        for decoder in DECODERS:
            for null in NULLS:
                run("null", design, decoder, null)
    for design in [d for d in CONTROLS if d in designs] if "control" in args.parts else []:
        for decoder in DECODERS:
            for null in NULLS:
                run("control", design, decoder, null, control=True)
    power = []
    for design, effect in (POWER if not args.quick else POWER[:1]) if "power" in args.parts else []:
        for decoder in DECODERS:
            rates = {null: run("power", design, decoder, null, effect=effect, control=True) for null in NULLS}
            flips, perm = (rates[n].min_p <= 0.05 for n in NULLS)
            power.append(
                dict(
                    design=design,
                    effect=effect,
                    decoder=decoder,
                    flips=int(flips.sum()),
                    permutation=int(perm.sum()),
                    n=R,
                    mcnemar_p=mcnemar(flips, perm),
                )
            )
            print(
                f"  power {design} {decoder}: flips {flips.sum()}/{R}, permutation {perm.sum()}/{R}, "
                f"McNemar p {power[-1]['mcnemar_p']:.3g}",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".part")
    tmp.write_text(json.dumps({"rows": rows, "power": power}, indent=1))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
