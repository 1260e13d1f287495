"""The paper's four cases (true/false positive/negative) of the CNNs of ``analyses/train_cnns.py``, end to end.

    python analyses/train_cnns.py --only bnpp --only sex    # first (writes analyses/output/cnns/)
    python analyses/cnn_cases.py                            # ~2-4 min on 2 shared CPU cores

``bnpp`` (phantom, threshold BNPP > 400 pg/mL): the CNN's predictions on the reconstructions G(w_E) of the
demo cohort are stored with :func:`seegaan.explain.predictions.predict`; for each case one validation/test image (the
median absolute error of its case; a training image when no held-out image falls in the case) is explained with
:func:`seegaan.explain.explain`, the λ-solve to the
*ground-truth* log BNPP along the local direction of those predictions, with VG, Grad-CAM and IG. The
counterfactual difference and the attribution maps are scored against the marginal BNPP truth mask.

``sex`` (real radiographs, male logit > 0): attribution maps only, for one validation/test image per case:
``explain`` needs an autoencoder of these radiographs (``analyses/real_cxr.py`` trains one; ~30 min of CPU),
which this script does not train.

Outputs (git-ignored) under ``analyses/output/cases/``: ``bnpp_<case>.png``/``.nc`` (the explanation
panel), ``sex_cases.png`` and ``cases.json`` (the numbers).
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
from train_cnns import OUT as CNN_DIR
from train_cnns import REPO, cxr_sex, demo_images, load_cnn, predict_array

CASES = ("TP", "FP", "FN", "TN")
OUT = REPO / "analyses" / "output" / "cases"


def case_labels(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """'TP', 'FP', 'FN' or 'TN' per image, from boolean truth and decision."""
    truth, predicted = np.asarray(truth, bool), np.asarray(predicted, bool)
    return np.where(predicted, np.where(truth, "TP", "FP"), np.where(truth, "FN", "TN"))


def pick_cases(labels: np.ndarray, error: np.ndarray, eligible: np.ndarray) -> dict[str, int | None]:
    """Per case the eligible image whose |error| is the case's median (None when the case is empty)."""
    out = {}
    for case in CASES:
        idx = np.flatnonzero((labels == case) & eligible)
        if idx.size == 0:
            out[case] = None
            continue
        e = np.abs(error[idx])
        out[case] = int(idx[np.argsort(e, kind="stable")[len(idx) // 2]])
    return out


def explain_case(cohort, decoder, net, *, image_id: str, target: float, feature: str, regions: dict, png, nc):
    """Run ``explain`` with the three attribution maps; the result's numbers and its scores per region."""
    from seegaan import SeegaanError
    from seegaan.explain.counterfactual import explain
    from seegaan.phantom import explanation_scores

    try:
        res = explain(
            cohort,
            decoder,
            net,
            image_id=image_id,
            target=target,
            feature=feature,
            attributions=("vg", "gradcam", "ig"),
            lambda_range=(0.0, 4.0),
        )
    except SeegaanError as exc:
        return {"image_id": image_id, "target": target, "error": str(exc)}
    res.save(nc, png, overwrite=True)
    maps = {"see-gaan |difference|": res.difference, **res.attributions}
    scores = {region: {m: explanation_scores(v, mask) for m, v in maps.items()} for region, mask in regions.items()}
    return {
        "image_id": image_id,
        "target": target,
        "prediction_recon": res.prediction_0,
        "lambda_star": res.lambda_star,
        "prediction_star": res.prediction_star,
        "max_abs_difference": float(np.abs(res.difference).max()),
        "scores": scores,
    }


def bnpp_cases(decoder) -> dict:
    import xarray as xr

    from seegaan import demo
    from seegaan.explain.predictions import predict

    cohort = xr.open_dataset(demo.cohort_path()).load()
    table, images = demo_images()
    net, meta = load_cnn("bnpp")
    cohort = predict(cohort, net, name="cnn_log_bnpp", on="reconstruction", decoder=decoder)
    truth = np.log(table["bnpp"].to_numpy(float))
    pred_img = predict_array(net, images)
    pred_rec = cohort["cnn_log_bnpp"].values
    cut = math.log(400.0)
    labels = case_labels(truth > cut, pred_img > cut)
    held_out = np.isin(cohort["split"].values.astype(str), ["val", "test"])
    movable = np.abs(pred_rec - truth) > 0.05
    picks = pick_cases(labels, pred_img - truth, held_out & movable)
    fallback = pick_cases(labels, pred_img - truth, movable)  # a case with no held-out image: a training one
    picks = {c: fallback[c] if i is None else i for c, i in picks.items()}
    regions = {"marginal bnpp": np.load(demo.truth_path("marginal_bnpp_mask.npy"))}
    out = {
        "threshold": "BNPP > 400 pg/mL (log 5.99)",
        "counts (val+test)": {c: int(((labels == c) & held_out).sum()) for c in CASES},
        "recon_vs_image_mae": float(np.abs(pred_rec - pred_img).mean()),
        "recon_vs_truth_mae": float(np.abs(pred_rec - truth).mean()),
        "cases": {},
    }
    for case, i in picks.items():
        if i is None:
            out["cases"][case] = None
            continue
        rec = explain_case(
            cohort,
            decoder,
            net,
            image_id=str(table["image_id"][i]),
            target=float(truth[i]),
            feature="cnn_log_bnpp",
            regions=regions,
            png=OUT / f"bnpp_{case}.png",
            nc=OUT / f"bnpp_{case}.nc",
        )
        out["cases"][case] = {
            "split": str(cohort["split"].values[i]),
            "truth_log_bnpp": float(truth[i]),
            "prediction_image": float(pred_img[i]),
            **rec,
        }
        print(f"bnpp {case}: {json.dumps(out['cases'][case], default=float)[:400]}", flush=True)
    return out


def plot_attribution_rows(images, maps: dict, titles, path) -> None:
    """One row per image: the image, then each map over the faded image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(maps)
    fig = Figure(figsize=(2.0 * (1 + len(names)), 2.1 * len(images)), layout="constrained")
    axes = fig.subplots(len(images), 1 + len(names), squeeze=False)
    for r, img in enumerate(images):
        axes[r, 0].imshow(img, cmap="gray", vmin=-1, vmax=1)
        axes[r, 0].set_title(titles[r], fontsize=7)
        for c, name in enumerate(names, start=1):
            m = maps[name][r]
            axes[r, c].imshow(img, cmap="gray", vmin=-1, vmax=1, alpha=0.4)
            lim = float(np.abs(m).max()) or 1.0
            axes[r, c].imshow(
                m, cmap="RdBu_r" if m.min() < 0 else "inferno", alpha=0.75, vmin=-lim if m.min() < 0 else 0, vmax=lim
            )
            axes[r, c].set_title(name, fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120)


def sex_cases() -> dict:
    from seegaan.explain.attribution import attributions

    table, images, male = cxr_sex()
    net, meta = load_cnn("sex")
    logit = predict_array(net, images)
    labels = case_labels(male, logit > 0)
    held_out = table["split"].isin(["val", "test"]).to_numpy()
    picks = pick_cases(labels, logit, held_out)
    chosen = [(c, i) for c, i in picks.items() if i is not None]
    idx = [i for _, i in chosen]
    maps = attributions(net, images[idx], methods=("vg", "gradcam", "ig"))
    titles = [f"{c}: {table['image_id'][i][:18]}\n{'M' if male[i] else 'F'}, logit {logit[i]:.2f}" for c, i in chosen]
    plot_attribution_rows(images[idx], maps, titles, OUT / "sex_cases.png")
    return {
        "threshold": "male logit > 0",
        "counts (val+test)": {c: int(((labels == c) & held_out).sum()) for c in CASES},
        "cases": {
            c: {
                "image_id": str(table["image_id"][i]),
                "source": str(table["source"][i]),
                "view": str(table["view"][i]),
                "male": bool(male[i]),
                "logit": float(logit[i]),
            }
            for c, i in chosen
        },
        "explain": "not run: no autoencoder of the real radiographs in this workspace",
    }


def main():
    import torch

    import seegaan
    from seegaan import demo

    torch.set_num_threads(1)
    t0 = time.time()
    OUT.mkdir(parents=True, exist_ok=True)
    decoder = seegaan.load_decoder(demo.decoder_path())
    result = {"bnpp": bnpp_cases(decoder), "sex": sex_cases(), "cnn_folder": str(CNN_DIR)}
    result["seconds"] = round(time.time() - t0, 1)
    (OUT / "cases.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"cnn_cases: done in {result['seconds']} s -> {OUT}", flush=True)


if __name__ == "__main__":
    main()
