"""A small CNN a newcomer can train, explain and attribute: :class:`SmallCNN`, :func:`train_cnn`, its file.

:class:`SmallCNN` is four 3x3 convolutions (the first three each followed by ReLU and 2x2 max pooling, the
last, ``features.9``, by ReLU: the Grad-CAM layer) and a linear read-out of the flattened map: one number
per image (a regression value or a logit), on single-channel square images in [-1, 1] whose side is a
multiple of 8. At 64x64 and ``width=8`` it has 14,000 parameters and trains on a CPU in a minute.

Its file (:func:`save_cnn`, written atomically) is a ``torch.save`` dictionary with the architecture
(``seegaan_cnn``: width, size), the weights, the training facts (target, task, seed, epochs, metrics):
:func:`seegaan.explain.cnn.load_model` loads it as an ordinary ``nn.Module``, so Grad-CAM, IG and the
gradient directions of ``explain`` work on it (TorchScript has no hooks for Grad-CAM).

``seegaan-stats train-cnn`` trains one on a folder of radiographs and a clinical table; the bundled demo
ships one (:func:`seegaan.demo.cnn_path`), trained on the demo phantom's log NT-proBNP.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

from seegaan._internal.errors import SeegaanError
from seegaan._internal.io import atomic_paths

__all__ = ["SmallCNN", "train_cnn", "predict_array", "save_cnn", "load_cnn", "is_cnn_file", "TASKS"]

#: what the read-out is trained for: ``regression`` (MSE) or ``binary`` (a logit, BCE)
TASKS = ("regression", "binary")
#: the key that marks a seegaan CNN file
FILE_KEY = "seegaan_cnn"


class SmallCNN(nn.Module):
    """conv-pool x3, conv (the Grad-CAM layer ``features.9``), linear read-out of the flattened map.

    Parameters
    ----------
    width : int
        Channels of the first convolution (then 2, 4 and 4 times it).
    size : int
        Side of the (square) input images, a multiple of 8.
    """

    def __init__(self, width: int = 8, size: int = 64):
        super().__init__()
        if size % 8 or size < 8:
            raise SeegaanError(f"SmallCNN needs square images whose side is a multiple of 8, not {size}")
        w = int(width)
        self.width, self.size = w, int(size)
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4 * w, 4 * w, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(4 * w * (size // 8) ** 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))[:, 0]


def predict_array(net: nn.Module, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """float64 outputs (n,) of ``net`` on float32 images (n, H, W), in batches, without gradients."""
    out = []
    with torch.no_grad():
        for s in range(0, len(images), batch):
            out.append(net(torch.from_numpy(np.ascontiguousarray(images[s : s + batch, None], np.float32))).numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def regression_metrics(y, pred) -> dict:
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    return {
        "mae": float(np.abs(y - pred).mean()),
        "r2": float(1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum()),
        "n": int(len(y)),
    }


def auc(y: np.ndarray, score: np.ndarray) -> float:
    y = np.asarray(y, bool)
    r = rankdata(score)
    n1, n0 = y.sum(), (~y).sum()
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def class_metrics(y, logit) -> dict:
    y = np.asarray(y, bool)
    return {"accuracy": float(((np.asarray(logit) > 0) == y).mean()), "auc": auc(y, logit), "n": int(len(y))}


def metrics(task: str, y, pred) -> dict:
    """MAE, R² (regression) or accuracy, AUC (binary) of predictions ``pred`` against ``y``."""
    return regression_metrics(y, pred) if task == "regression" else class_metrics(y, pred)


def train_cnn(
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    task: str,
    seed: int = 0,
    epochs: int = 12,
    lr: float = 2e-3,
    batch: int = 32,
    width: int = 8,
    flip: bool = False,
    progress=None,
) -> tuple[SmallCNN, list[dict]]:
    """Train a :class:`SmallCNN`: Adam (weight decay 1e-4) on MSE (``regression``) or BCE with logits
    (``binary``), keeping the epoch best on the validation images (lowest MAE, highest AUC).

    Deterministic given ``seed`` on one thread. ``flip`` adds horizontal-flip augmentation.
    ``progress(n=1, total=None)`` is called once per epoch. Returns the network (eval mode) and the
    per-epoch validation metrics.
    """
    if task not in TASKS:
        raise SeegaanError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    if len(x) < 2 or len(x_val) < 1:
        raise SeegaanError(f"too few images to train a CNN ({len(x)} to train, {len(x_val)} to validate)")
    if task == "binary" and (np.unique(np.asarray(y_val)).size < 2 or np.unique(np.asarray(y)).size < 2):
        raise SeegaanError("a binary target needs both classes among the training and the validation images")
    torch.manual_seed(seed)
    net = SmallCNN(width, x.shape[-1])
    if task == "regression":
        with torch.no_grad():
            net.head.bias.fill_(float(np.mean(y)))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = torch.nn.MSELoss() if task == "regression" else torch.nn.BCEWithLogitsLoss()
    gen = np.random.default_rng(seed)
    xt = torch.from_numpy(np.ascontiguousarray(x[:, None], np.float32))
    yt = torch.from_numpy(np.asarray(y, np.float32))
    best, best_state, history = None, None, []
    for epoch in range(epochs):
        net.train()
        order = gen.permutation(len(x))
        for s in range(0, len(order), batch):
            idx = torch.from_numpy(order[s : s + batch])
            xb = xt[idx]
            if flip:
                xb = torch.where(torch.from_numpy(gen.random(len(idx)) < 0.5)[:, None, None, None], xb.flip(-1), xb)
            opt.zero_grad()
            loss_fn(net(xb), yt[idx]).backward()
            opt.step()
        net.eval()
        m = metrics(task, y_val, predict_array(net, x_val))
        score = -m["mae"] if task == "regression" else m["auc"]
        history.append({"epoch": epoch + 1, **m})
        if progress is not None:
            progress(1)
        if best is None or score > best:
            best, best_state = score, {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    return net.eval(), history


def save_cnn(net: SmallCNN, path, meta: dict | None = None, *, overwrite: bool = False, inputs=()) -> Path:
    """Write ``net`` (a :class:`SmallCNN`) and its training facts ``meta`` to ``path``, atomically."""
    path = Path(path)
    payload = {
        FILE_KEY: {"width": net.width, "size": net.size},
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "meta": json.dumps(meta or {}),
    }
    with atomic_paths([path], overwrite=overwrite, inputs=inputs, suffixes=[".pt"]) as temps:
        torch.save(payload, temps[0])
    return path


def is_cnn_file(path) -> bool:
    """Whether ``path`` is a file written by :func:`save_cnn`."""
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:
        return False
    return isinstance(payload, dict) and FILE_KEY in payload


def load_cnn(path, device: str = "cpu") -> tuple[SmallCNN, dict]:
    """The network of a :func:`save_cnn` file (eval mode) and its training facts."""
    if not os.path.isfile(path):
        raise SeegaanError(f"CNN file {path} does not exist")
    try:
        payload = torch.load(str(path), map_location=device, weights_only=True)
        arch = payload[FILE_KEY]
        net = SmallCNN(arch["width"], arch["size"])
        net.load_state_dict(payload["state_dict"])
        meta = json.loads(payload.get("meta", "{}"))
    except SeegaanError:
        raise
    except Exception as exc:
        raise SeegaanError(f"{path} is not a seegaan CNN file ({type(exc).__name__}); write it with save_cnn") from None
    return net.to(device).eval(), meta
