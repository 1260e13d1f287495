"""Score global SEE-GAAN sequences of the phantom against its ground truth.

For every phantom feature, the global sequence (the feature's default interpolator, max-T over pixels x
steps, B permutations) is decoded with the model, and the significant pixels of its last step (the 95th
percentile against the 5th, or level B against level A) are compared with the true region of the
feature's *marginal* effect (an unadjusted sequence estimates the marginal effect: AHF patients also have
higher BNPP, ...): Dice, sensitivity, and the fraction of significant pixels outside the true region. As the
true region is ``|effect| > 10% of its max``, the same scores are also given for the significant pixels whose
decoded change exceeds 10% of its max (significance alone also picks up small, consistent changes).

Features whose marginal and direct effects differ (AHF, BNPP and age are correlated) are also scored
adjusted for the other two (Freedman-Lane), against the *direct* truth (the feature alone).

    python analyses/score_phantom.py                   # the bundled demo (seegaan/demo)
    python analyses/score_phantom.py --cohort C.nc --decoder M.pt --truth PHANTOM_DIR --perm 1000
    python analyses/score_phantom.py --features ahf,sex --null permutation --out OUT
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FEATURES = {  # feature: interpolate() options matching the truth maps' contrast
    "bnpp": dict(method="gam", transform="log"),
    "ahf": dict(method="class-mean", levels="False,True"),
    "sex": dict(method="class-mean", levels="F,M"),
    "age": dict(method="gam"),
    "manufacturer": dict(method="class-mean", levels="vendor_a,vendor_b"),
}
ADJUSTED = {  # covariate-adjusted sequences, scored against the direct effect (that feature alone)
    "ahf": "bnpp,age",
    "bnpp": "ahf,age",
    "age": "ahf,bnpp",
}


def main():
    import seegaan
    from seegaan import demo
    from seegaan.phantom import score_map
    from seegaan.stats import as_correction

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cohort", type=Path, default=None)
    ap.add_argument("--decoder", default=None)
    ap.add_argument("--truth", type=Path, default=None, help="phantom folder (with truth/); default: the demo's")
    ap.add_argument("--perm", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--correction", default="maxt")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sd-offset", default=None, help="max-T s0: a number, median or pNN (default 0)")
    ap.add_argument(
        "--mask",
        default=None,
        help="test only these pixels (.npy/PNG), e.g. TRUTH/truth/marker_free_mask.npy; 'marker-free' "
        "takes the phantom's own",
    )
    ap.add_argument(
        "--min-change",
        type=float,
        default=0.0,
        help="significant only where |change| exceeds this (image units; default 0: any change)",
    )
    ap.add_argument(
        "--null",
        default="sign-flip",
        choices=["sign-flip", "permutation"],
        help="the null distribution (default: the sign flips of the weighted null model)",
    )
    ap.add_argument(
        "--features",
        default=None,
        help="comma-separated runs to score, e.g. 'ahf,sex,bnpp' or 'ahf adj. bnpp+age'; default all",
    )
    ap.add_argument("--out", type=Path, default=REPO / "analyses" / "output" / "phantom_scores")
    args = ap.parse_args()
    cohort = seegaan.open_cohort(args.cohort or demo.cohort_path())
    decoder = seegaan.load_decoder(args.decoder or demo.decoder_path())
    truth = args.truth or demo.cohort_path().parent
    args.out.mkdir(parents=True, exist_ok=True)
    roi = truth / "truth" / "marker_free_mask.npy" if args.mask == "marker-free" else args.mask
    rows = []
    runs = [(feature, feature, opts, "marginal_") for feature, opts in FEATURES.items()]
    runs += [
        (feature, f"{feature} adj. {adjust.replace(',', '+')}", {**FEATURES[feature], "adjust": adjust}, "")
        for feature, adjust in ADJUSTED.items()
    ]
    if args.features:
        wanted = [f.strip() for f in args.features.split(",")]
        runs = [r for r in runs if r[1] in wanted]
    for feature, name, opts, truth_kind in runs:
        t0 = time.time()
        interp = seegaan.interpolate(cohort, feature=feature, steps=args.steps, **opts)
        correction = as_correction(args.correction, sd_offset=args.sd_offset, min_change=args.min_change)
        res = seegaan.sequence(
            interp, decoder, n_perm=args.perm, correction=correction, seed=args.seed, mask=roi, null=args.null
        )
        seconds = time.time() - t0
        res.plot(args.out / f"{name.replace(' adj. ', '_adjusted_').replace('+', '_')}.png", overwrite=True)
        mask = np.load(truth / "truth" / f"{truth_kind}{feature}_mask.npy")
        score = score_map(res.significant[-1], mask)
        # the truth mask is |effect| > 10% of its max: score the same definition on the decoded change too
        diff = np.abs(res.difference[-1])
        large = res.significant[-1] & (diff > 0.1 * diff.max())
        score_large = score_map(large, mask)
        # sign agreement inside the overlap: does the decoded change go the way the truth does?
        effect = np.load(truth / "truth" / (f"marginal_{feature}.npy" if truth_kind else f"effect_{feature}.npy"))
        both = res.significant[-1] & mask
        sign = (
            float(np.mean(np.sign(res.difference[-1][both]) == np.sign(effect[both]))) if both.any() else float("nan")
        )
        rows.append(
            {
                "feature": name,
                "method": interp.method,
                "null": res.attrs["null"],
                "truth": f"{truth_kind or 'direct_'}{feature}",
                **score,
                "sign_agreement": sign,
                "dice_large": score_large["dice"],
                "sensitivity_large": score_large["sensitivity"],
                "outside_large": score_large["outside"],
                "seconds": seconds,
            }
        )
        print(
            f"{name:<22} dice {score['dice']:.3f}  sensitivity {score['sensitivity']:.3f}  "
            f"outside {score['outside']:.3f}  sign {sign:.3f}  | >10% of max: dice {score_large['dice']:.3f} "
            f"outside {score_large['outside']:.3f}  ({seconds:.1f} s)"
        )
    (args.out / "scores.json").write_text(
        json.dumps(
            {
                "perm": args.perm,
                "correction": args.correction,
                "seed": args.seed,
                "sd_offset": args.sd_offset,
                "min_change": args.min_change,
                "null": args.null,
                "mask": None if roi is None else str(roi),
                "rows": rows,
            },
            indent=2,
        )
    )
    print(
        "\n| feature | method | truth | Dice | sensitivity | outside | sign agreement | Dice, |Δ| > 10% max | outside, |Δ| > 10% max |"  # noqa: E501
        "\n|---|---|---|---|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['feature']} | {r['method']} | {r['truth']} | {r['dice']:.2f} | {r['sensitivity']:.2f} | {r['outside']:.2f} | "  # noqa: E501
            f"{r['sign_agreement']:.2f} | {r['dice_large']:.2f} | {r['outside_large']:.2f} |"
        )


if __name__ == "__main__":
    main()
