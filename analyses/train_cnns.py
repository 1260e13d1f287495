"""Train the small CNNs that the explanation analyses explain (CPU, deterministic from a seed).

    python analyses/train_cnns.py                 # all four, ~5-10 min on 2 shared CPU cores
    python analyses/train_cnns.py --only bnpp     # one of: bnpp, sex, anatomy, shortcut

The networks (:class:`SmallCNN`: four 3x3 convolutions with max pooling and a linear read-out, 64x64
inputs on the [-1, 1] scale, one output per image):

``bnpp``
    regression of log NT-proBNP on the demo phantom's images (``seegaan.demo``: 1,600 images, seed 0,
    64x64, rendered again here from ``sample_cohort(1600, seed=0)``), trained on the demo cohort's
    ``train`` split, model selection on ``val``; reports val/test MAE and R².
``sex``
    logit of male sex on the frontal (PA/AP) real radiographs of ``SEEGAAN_CXR_DIR`` (default
    ``../shared/data/cxr``) with a known sex, patient-level split of :func:`seegaan.data.load_dataset`;
    reports val/test AUC.
``anatomy`` and ``shortcut``
    logit of acute heart failure (AHF) on a fresh phantom (2,000 images, seed 1). ``anatomy`` sees
    token-free images, so it must use the anatomy; ``shortcut`` sees images whose burned-in token
    (``PhantomParams.token``, pixels ``seegaan.phantom.shortcut_mask``) is drawn *with the label*: on
    every AHF image and no other. ``shortcut95``: the same with a token that agrees with the label on 95%
    of the images (present with probability 0.95 when AHF, 0.05 otherwise). Their evaluation phantom (600
    images, seed 2) is drawn by :func:`shortcut_sets`; ``analyses/shortcut_experiment.py`` scores them.

Outputs (git-ignored) under ``analyses/output/cnns/``: ``<name>.pt`` (TorchScript; the state dict loads
into :class:`SmallCNN` with :func:`load_cnn`, which Grad-CAM needs) and ``<name>.json`` (metrics, seed,
settings, training time).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from seegaan.explain.smallcnn import SmallCNN, auc, class_metrics, predict_array, regression_metrics, train_cnn  # noqa: F401  (auc: re-exported for shortcut_experiment)

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "analyses" / "output" / "cnns"
SIZE = 64
#: P(token | label) in the training images of each shortcut CNN (and 1 - that for the other class)
TOKEN_WITH_LABEL = {"shortcut": 1.0, "shortcut95": 0.95}
NAMES = ("bnpp", "sex", "anatomy", "shortcut", "shortcut95")


def cxr_dir() -> Path:
    return Path(os.environ.get("SEEGAAN_CXR_DIR", REPO.parent / "shared" / "data" / "cxr"))


# ----------------------------------------------------------------------------------------- network
def load_cnn(name: str, folder: Path = OUT):
    """The trained network ``name`` as a plain ``nn.Module`` in eval mode (TorchScript has no hooks for
    Grad-CAM), with its metrics record."""
    meta = json.loads((folder / f"{name}.json").read_text())
    net = SmallCNN(meta["width"], meta["size"])
    net.load_state_dict(torch.jit.load(str(folder / f"{name}.pt")).state_dict())
    return net.eval(), meta


# -------------------------------------------------------------------------------------------- data
def render_all(params, size: int = SIZE) -> np.ndarray:
    from seegaan.phantom import render

    return np.stack([render(p, size=size) for p in params])


def add_token(images: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Images with the token of level ``tokens[i]`` burned in (what ``render`` draws with ``token=``)."""
    from seegaan.phantom import shortcut_mask

    out = images.copy()
    mask = shortcut_mask(images.shape[-1])
    for i, t in enumerate(np.asarray(tokens, float)):
        if t > 0:
            out[i][mask] = np.maximum(out[i][mask], np.float32(2.0 * t - 1.0))
    return out


def demo_images():
    """(table, images) of the bundled demo phantom (same draws as its cohort, rows in cohort order)."""
    from seegaan.phantom import sample_cohort

    table, params = sample_cohort(1600, seed=0)
    return table, render_all(params)


def shortcut_sets(size: int = SIZE):
    """Training and evaluation data of the shortcut experiment (AHF labels), deterministic.

    Returns a dict: ``train``/``eval`` -> (table, token-free images, label); ``tokens``: per variant the
    token levels (``train_shortcut``, ``train_shortcut95``: drawn with the label at P = 1 and 0.95;
    ``eval_with_label`` (P = 0.95), ``eval_independent``, ``eval_none``, ``eval_all``). The training table's last 15% of
    patients are its validation part (``val`` bool column).
    """
    from seegaan.phantom import sample_cohort

    rng = np.random.default_rng(3)
    out = {}
    for part, n, seed in (("train", 2000, 1), ("eval", 600, 2)):
        table, params = sample_cohort(n, seed=seed)
        out[part] = (table, render_all(params, size), table["ahf"].to_numpy(bool))
    y_tr, y_ev = out["train"][2], out["eval"][2]
    patients = out["train"][0]["patient_id"].unique()
    val_patients = set(patients[int(0.85 * len(patients)) :])
    out["train"][0]["val"] = out["train"][0]["patient_id"].isin(val_patients).to_numpy()

    def with_label(y, p):
        agree = rng.random(len(y)) < p
        return np.where(agree, y, ~y).astype(float)

    out["tokens"] = {
        "train_shortcut95": with_label(y_tr, 0.95),
        "eval_with_label": with_label(y_ev, 0.95),
        "eval_independent": (rng.random(len(y_ev)) < 0.5).astype(float),
        "eval_none": np.zeros(len(y_ev)),
        "eval_all": np.ones(len(y_ev)),
        "train_shortcut": y_tr.astype(float),
    }
    return out


def cxr_sex(size: int = SIZE):
    """(table, images, male) of the frontal real radiographs with a known sex (patient-level splits)."""
    from seegaan.data import load_dataset

    folder = cxr_dir()
    data = load_dataset(folder / "images", folder / "metadata.csv", size=size, view=["PA", "AP"], seed=0)
    keep = data.table["sex"].isin(["F", "M"]).to_numpy()
    table = data.table[keep].reset_index(drop=True)
    return table, data.array(np.flatnonzero(keep))[:, 0], (table["sex"] == "M").to_numpy()


# ---------------------------------------------------------------------------------------- training
def fit(x, y, x_val, y_val, *, task: str, seed: int, epochs: int, flip: bool = False, **kwargs):
    """:func:`seegaan.explain.smallcnn.train_cnn` (the package's training, the same algorithm as before),
    printing each epoch's validation metrics."""
    net, history = train_cnn(x, y, x_val, y_val, task=task, seed=seed, epochs=epochs, flip=flip, **kwargs)
    for h in history:
        print(f"  epoch {h['epoch']}: {h}", flush=True)
    return net, history


def save(net, name: str, meta: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(net), str(OUT / f"{name}.pt"))
    (OUT / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"{name}: {json.dumps({k: v for k, v in meta.items() if k != 'history'})}", flush=True)


def train_bnpp(seed: int, epochs: int) -> None:
    import xarray as xr

    import seegaan.demo

    table, images = demo_images()
    split = xr.open_dataset(seegaan.demo.cohort_path())["split"].values.astype(str)
    y = np.log(table["bnpp"].to_numpy(float))
    part = {s: split == s for s in ("train", "val", "test")}
    t0 = time.time()
    net, hist = fit(
        images[part["train"]],
        y[part["train"]],
        images[part["val"]],
        y[part["val"]],
        task="regression",
        seed=seed,
        epochs=epochs,
    )
    secs = time.time() - t0
    metrics = {s: regression_metrics(y[part[s]], predict_array(net, images[part[s]])) for s in part}
    save(
        net,
        "bnpp",
        {
            "target": "log NT-proBNP (pg/mL)",
            "data": "demo phantom (sample_cohort(1600, seed=0)), demo cohort splits",
            "seed": seed,
            "epochs": epochs,
            "width": 8,
            "size": SIZE,
            "train_seconds": round(secs, 1),
            "metrics": metrics,
            "history": hist,
        },
    )


def train_sex(seed: int, epochs: int) -> None:
    table, images, male = cxr_sex()
    split = table["split"].to_numpy(str)
    part = {s: split == s for s in ("train", "val", "test")}
    t0 = time.time()
    net, hist = fit(
        images[part["train"]],
        male[part["train"]],
        images[part["val"]],
        male[part["val"]],
        task="binary",
        seed=seed,
        epochs=epochs,
        flip=True,
    )
    secs = time.time() - t0
    metrics = {s: class_metrics(male[part[s]], predict_array(net, images[part[s]])) for s in part}
    metrics["patients"] = {s: int(table.loc[part[s], "patient_id"].nunique()) for s in part}
    save(
        net,
        "sex",
        {
            "target": "logit of male sex",
            "data": f"{cxr_dir()} frontal (PA/AP) images with a known sex, "
            "load_dataset patient-level split (0.8/0.1/0.1, seed 0), horizontal-flip augmentation",
            "seed": seed,
            "epochs": epochs,
            "width": 8,
            "size": SIZE,
            "train_seconds": round(secs, 1),
            "metrics": metrics,
            "history": hist,
        },
    )


def train_shortcut_cnns(seed: int, epochs: int, which=("anatomy", "shortcut", "shortcut95")) -> None:
    sets = shortcut_sets()
    table, images, y = sets["train"]
    val = table["val"].to_numpy()
    for name in which:
        x = images if name == "anatomy" else add_token(images, sets["tokens"][f"train_{name}"])
        t0 = time.time()
        net, hist = fit(x[~val], y[~val], x[val], y[val], task="binary", seed=seed, epochs=epochs)
        secs = time.time() - t0
        save(
            net,
            name,
            {
                "target": "logit of AHF",
                "data": "phantom sample_cohort(2000, seed=1), last 15% of patients "
                "for model selection; "
                + ("no token" if name == "anatomy" else f"token drawn with the label (P = {TOKEN_WITH_LABEL[name]})"),
                "seed": seed,
                "epochs": epochs,
                "width": 8,
                "size": SIZE,
                "train_seconds": round(secs, 1),
                "metrics": {
                    "train": class_metrics(y[~val], predict_array(net, x[~val])),
                    "val": class_metrics(y[val], predict_array(net, x[val])),
                },
                "history": hist,
            },
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=NAMES, action="append", help="train only these (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=12)
    args = ap.parse_args()
    torch.set_num_threads(1)
    todo = args.only or list(NAMES)
    t0 = time.time()
    if "bnpp" in todo:
        train_bnpp(args.seed, args.epochs)
    if "sex" in todo:
        train_sex(args.seed, args.epochs)
    phantom_cnns = [n for n in ("anatomy", "shortcut", "shortcut95") if n in todo]
    if phantom_cnns:
        train_shortcut_cnns(args.seed, args.epochs, phantom_cnns)
    print(f"train_cnns: {', '.join(todo)} in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
