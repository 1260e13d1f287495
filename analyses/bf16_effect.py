"""Effect of bf16 autocast decoding on a SEE-GAAN sequence: images, p-values and significance maps.

    python analyses/bf16_effect.py                    # the bundled demo, BNPP, 1,000 permutations

Decodes the same global sequence (same seed, same permutations) with the checkpoint in fp32 and with bf16
autocast, and reports the speed of each, the largest pixel difference, how many p-values change and the
agreement (Dice) of the two significance maps.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main():
    import torch

    import seegaan
    from seegaan import demo
    from seegaan.model import load_checkpoint_decoder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cohort", type=Path, default=None)
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--feature", default="bnpp")
    ap.add_argument("--perm", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "analyses" / "output" / "bf16_effect.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cohort = seegaan.open_cohort(args.cohort or demo.cohort_path())
    ckpt = args.checkpoint or demo.decoder_path()
    interp = seegaan.interpolate(cohort, feature=args.feature)
    runs = {}
    for name, bf16 in (("fp32", False), ("bf16", True)):
        dec = load_checkpoint_decoder(ckpt, autocast_bf16=bf16)
        t0 = time.perf_counter()
        runs[name] = seegaan.sequence(interp, dec, n_perm=args.perm, seed=0)
        runs[name + "_s"] = time.perf_counter() - t0
    a, b = runs["fp32"], runs["bf16"]
    sa, sb = a.significant, b.significant
    both = int((sa & sb).sum())
    result = {
        "feature": args.feature,
        "perm": args.perm,
        "seconds_fp32": runs["fp32_s"],
        "seconds_bf16": runs["bf16_s"],
        "max_abs_image_difference": float(np.abs(a.images - b.images).max()),
        "max_abs_difference_map_difference": float(np.abs(a.difference - b.difference).max()),
        "raw_p_changed_fraction": float((a.p_value != b.p_value).mean()),
        "max_abs_raw_p_change": float(np.abs(a.p_value - b.p_value).max()),
        "significant_fp32": int(sa.sum()),
        "significant_bf16": int(sb.sum()),
        "dice_significance": 2 * both / (sa.sum() + sb.sum()) if sa.sum() + sb.sum() else 1.0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
