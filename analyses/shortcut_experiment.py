"""Do explanations show what the CNN uses? The anatomy and shortcut AHF CNNs, scored against known regions.

    python analyses/train_cnns.py --only anatomy --only shortcut    # first
    python analyses/shortcut_experiment.py                          # ~3-6 min on 2 shared CPU cores

1. Accuracy of the three CNNs (anatomy, shortcut, shortcut95) on the evaluation phantom (600 images, seed 2,
   never seen) with the token drawn with the label (P = 0.95), independently of it, absent, on every image,
   and against the label.
2. VG, Grad-CAM and IG (``seegaan.explain.attribution``) on the evaluation images that carry the token (token drawn
   independently of the label), each map scored with :func:`seegaan.phantom.explanation_scores` against
   the token's pixels (``shortcut_mask``) and the anatomy's region (the marginal AHF truth mask: effusions,
   heart and shoulder bones, what AHF changes in the phantom's population); mean over the images whose map
   is not all zero (Grad-CAM's ReLU can zero a whole map; their count is reported).
3. SEE-GAAN with the demo autoencoder (trained on token-free phantoms): (i) a global sequence along each
   CNN's prediction on the reconstructions (``predict(on="reconstruction")``, ``interpolate`` +
   ``sequence``, max-T) scored by its last step (significant pixels: Dice; |difference|: the same scores);
   (ii) the λ-solve of ``explain`` to the ground truth (logit +3 for AHF, -3 otherwise) for the four cases
   of each CNN on the demo cohort's validation/test images (3: anatomy and shortcut only); (iii) token images encoded
   with the demo
   model: is the token reconstructed, and what does the shortcut CNN say on the reconstructions?

Outputs (git-ignored) under ``analyses/output/shortcut/``: ``results.json``, ``table.md`` (the tables
quoted in docs/validation.md), ``attributions.png``, the sequence and case figures.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from cnn_cases import CASES, case_labels, explain_case, pick_cases, plot_attribution_rows
from train_cnns import REPO, add_token, auc, class_metrics, load_cnn, predict_array, shortcut_sets

OUT = REPO / "analyses" / "output" / "shortcut"
NETS = ("anatomy", "shortcut", "shortcut95")
SEEGAAN_NETS = ("anatomy", "shortcut")
METHODS = ("vg", "gradcam", "ig")
VARIANTS = {
    "eval_with_label": "token with the label (P 0.95)",
    "eval_independent": "token independent of the label",
    "eval_none": "no token",
    "eval_all": "token on every image",
    "eval_against": "token against the label",
}


def accuracy_table(nets, sets) -> dict:
    _, images, y = sets["eval"]
    tokens = dict(sets["tokens"], eval_against=(~y).astype(float))
    return {
        name: {v: class_metrics(y, predict_array(net, add_token(images, tokens[v]))) for v in VARIANTS}
        for name, net in nets.items()
    }


def attribution_scores(nets, sets, regions, n_images: int) -> tuple[dict, dict]:
    from seegaan.explain.attribution import attributions
    from seegaan.phantom import explanation_scores

    _, images, y = sets["eval"]
    tok = sets["tokens"]["eval_independent"]
    idx = np.flatnonzero(tok > 0)[:n_images]
    x = add_token(images[idx], tok[idx])
    out, example = {}, {}
    for name, net in nets.items():
        maps = attributions(net, x, methods=METHODS)
        example[name] = {m: v[:2] for m, v in maps.items()}
        out[name] = {
            m: {
                "all_zero_maps": int((np.abs(v).reshape(len(v), -1).max(1) == 0).sum()),
                **{
                    r: {k: float(np.nanmean([explanation_scores(a, mask)[k] for a in v])) for k in ("mass", "dice_top")}
                    for r, mask in regions.items()
                },
            }
            for m, v in maps.items()
        }
    return out, {"images": x[:2], "maps": example, "n": int(len(idx))}


def seegaan_sequences(nets, cohort, decoder, regions, n_perm: int) -> tuple[dict, object]:
    import seegaan
    from seegaan.explain.predictions import predict
    from seegaan.phantom import explanation_scores, score_map

    out = {}
    for name, net in nets.items():
        feature = f"{name}_cnn"
        cohort = predict(cohort, net, name=feature, on="reconstruction", decoder=decoder)
        pred = cohort[feature].values
        ahf = cohort["ahf"].values.astype(bool)
        interp = seegaan.interpolate(cohort, feature=feature)
        res = seegaan.sequence(interp, decoder, n_perm=n_perm, correction="maxt", seed=0)
        res.plot(OUT / f"sequence_{name}.png", overwrite=True)
        last_sig, last_diff = res.significant[-1], res.difference[-1]
        out[name] = {
            "prediction_sd": float(pred.std()),
            "auc_ahf_on_reconstructions": auc(ahf, pred),
            "significant_share_last": float(last_sig.mean()),
            "max_abs_change_last": float(np.abs(last_diff).max()),
            "scores": {
                r: {"dice_significant": score_map(last_sig, mask)["dice"], **explanation_scores(last_diff, mask)}
                for r, mask in regions.items()
            },
        }
        print(f"sequence {name}: {json.dumps(out[name], default=float)}", flush=True)
    return out, cohort


def seegaan_cases(nets, cohort, decoder, regions) -> dict:
    held_out = np.isin(cohort["split"].values.astype(str), ["val", "test"])
    y = cohort["ahf"].values.astype(bool)
    out = {}
    for name, net in nets.items():
        feature = f"{name}_cnn"
        pred = cohort[feature].values
        labels = case_labels(y, pred > 0)
        picks = pick_cases(labels, pred - np.where(y, 3.0, -3.0), held_out)
        out[name] = {"counts (val+test)": {c: int(((labels == c) & held_out).sum()) for c in CASES}, "cases": {}}
        for case in CASES:
            i = picks[case]
            if i is None:
                out[name]["cases"][case] = None
                continue
            out[name]["cases"][case] = explain_case(
                cohort,
                decoder,
                net,
                image_id=str(cohort["image_id"].values[i]),
                target=3.0 if y[i] else -3.0,
                feature=feature,
                regions=regions,
                png=OUT / f"case_{name}_{case}.png",
                nc=OUT / f"case_{name}_{case}.nc",
            )
            print(f"case {name} {case}: {json.dumps(out[name]['cases'][case], default=float)[:300]}", flush=True)
    return out


def encode_token_images(nets, sets, decoder, n: int) -> dict:
    """Write n evaluation images with the token as PNGs, encode them with the demo model, decode, compare."""
    import pandas as pd
    from PIL import Image

    from seegaan import demo
    from seegaan.model.tasks import encode_images
    from seegaan.phantom import shortcut_mask

    table, images, y = sets["eval"]
    folder = OUT / "token_images"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    x = add_token(images[:n], np.ones(n))
    for i in range(n):
        Image.fromarray(np.round((x[i] + 1) / 2 * 65535).astype(np.uint16)).save(folder / "images" / f"t{i:03d}.png")
    pd.DataFrame(
        {"image_id": [f"t{i:03d}" for i in range(n)], "patient_id": [f"p{i:03d}" for i in range(n)], "ahf": y[:n]}
    ).to_csv(folder / "clinical.csv", index=False)
    cohort = encode_images(demo.decoder_path(), folder / "images", table=folder / "clinical.csv", split="none")
    recon = decoder(cohort["w"].values)
    order = np.array([int(s[1:]) for s in cohort["image_id"].values.astype(str)])
    mask = shortcut_mask(x.shape[-1])
    plain_recon = recon.copy()
    out = {
        "n": n,
        "token_pixels_input_mean": float(x[order][:, mask].mean()),
        "token_pixels_recon_mean": float(recon[:, mask].mean()),
        "token_pixels_tokenfree_input_mean": float(images[:n][order][:, mask].mean()),
    }
    for name, net in nets.items():
        out[name] = {
            "accuracy_on_token_images": float(((predict_array(net, x[order]) > 0) == y[:n][order]).mean()),
            "accuracy_on_their_reconstructions": float(((predict_array(net, plain_recon) > 0) == y[:n][order]).mean()),
            "positive_rate_on_reconstructions": float((predict_array(net, plain_recon) > 0).mean()),
        }
    return out


def markdown(res: dict) -> str:
    lines = ["| CNN | " + " | ".join(VARIANTS.values()) + " |", "|---|" + "---|" * len(VARIANTS)]
    for name, row in res["accuracy"].items():
        lines.append(
            f"| {name} | " + " | ".join(f"{row[v]['accuracy']:.3f} (AUC {row[v]['auc']:.3f})" for v in VARIANTS) + " |"
        )
    lines += [
        "",
        "| method | CNN | mass in token | top-k Dice token | mass in anatomy | top-k Dice anatomy |",
        "|---|---|---|---|---|---|",
    ]
    rows = []
    for name, by_method in res["attributions"].items():
        for m, s in by_method.items():
            rows.append((m, name, s["token"], s["anatomy"]))
    for name, s in res.get("sequences", {}).items():
        rows.append(("SEE-GAAN sequence, last step |diff|", name, s["scores"]["token"], s["scores"]["anatomy"]))
    for m, name, t, a in rows:
        lines.append(
            f"| {m} | {name} | {t['mass']:.3f} | {t['dice_top']:.3f} | {a['mass']:.3f} | {a['dice_top']:.3f} |"
        )
    lines.append(f"\nchance (uniform map): token {res['chance']['token']:.4f}, anatomy {res['chance']['anatomy']:.3f}")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-images", type=int, default=64, help="evaluation images with the token to attribute")
    ap.add_argument("--perm", type=int, default=200, help="permutations of the SEE-GAAN sequences")
    ap.add_argument("--encode", type=int, default=64, help="token images to encode with the demo model (0: skip)")
    args = ap.parse_args()
    import torch
    import xarray as xr

    import seegaan
    from seegaan import demo
    from seegaan.phantom import effect_mask, marginal_effect_map, shortcut_mask

    torch.set_num_threads(1)
    t0 = time.time()
    OUT.mkdir(parents=True, exist_ok=True)
    nets = {name: load_cnn(name)[0] for name in NETS}
    sets = shortcut_sets()
    regions = {"token": shortcut_mask(64), "anatomy": effect_mask(marginal_effect_map("ahf", False, True, size=64))}
    res = {
        "regions_pixels": {k: int(v.sum()) for k, v in regions.items()},
        "chance": {k: float(v.mean()) for k, v in regions.items()},
    }
    res["accuracy"] = accuracy_table(nets, sets)
    print(f"accuracy: {json.dumps(res['accuracy'])}", flush=True)
    res["attributions"], example = attribution_scores(nets, sets, regions, args.n_images)
    res["n_attributed"] = example["n"]
    print(f"attributions: {json.dumps(res['attributions'])}", flush=True)
    maps = {f"{n} {m}": np.stack(example["maps"][n][m]) for n in NETS for m in METHODS}
    plot_attribution_rows(example["images"], maps, ["eval image with token"] * 2, OUT / "attributions.png")
    res["seconds_before_seegaan"] = round(time.time() - t0, 1)
    (OUT / "results.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
    decoder = seegaan.load_decoder(demo.decoder_path())
    cohort = xr.open_dataset(demo.cohort_path()).load()
    nets = {name: nets[name] for name in SEEGAAN_NETS}
    res["sequences"], cohort = seegaan_sequences(nets, cohort, decoder, regions, args.perm)
    (OUT / "results.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
    if args.encode:
        res["encoded_token_images"] = encode_token_images(nets, sets, decoder, args.encode)
        print(f"encoded: {json.dumps(res['encoded_token_images'])}", flush=True)
        (OUT / "results.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
    res["cases"] = seegaan_cases(nets, cohort, decoder, regions)
    res["seconds"] = round(time.time() - t0, 1)
    (OUT / "results.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
    (OUT / "table.md").write_text(markdown(res))
    print(markdown(res))
    print(f"shortcut_experiment: done in {res['seconds']} s -> {OUT}", flush=True)


if __name__ == "__main__":
    main()
