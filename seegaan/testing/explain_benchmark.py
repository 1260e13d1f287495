"""A known-truth benchmark of explanations: two co-localised factors, CNNs whose reliance is measured.

The phantom's heart has two factors with their own truth maps: its **size** (``heart_jitter``: the silhouette
grows, the change lies on its border) and its **density** (``heart_density``: the interior brightens). A
cohort draws both as standard normal scores ``z`` (size 0.08 z_s, density 0.04 z_d) with correlation ``r``;
everything else is a fixed reference patient (BNPP 300, no AHF) with a little individual anatomy, so the
heart is the only thing that carries the factors.

* **The autoencoder** is linear: PCA with ``n_components`` components fitted on a training phantom where the
  two factors are independent (``E(x) = (x − mean) Vᵀ``, ``G(w) = mean + w V``). It is shown to draw both
  factors: the R² of each factor's truth map from ``G(E(base + T)) − G(E(base))``.
* **The CNNs** (:class:`seegaan.explain.smallcnn.SmallCNN`) learn ``z_s`` (``size``), ``z_d``
  (``density``) and ``z_s + z_d`` (``both``) on that training phantom; their reliance is **measured by
  intervention**: the change of the output when one factor of test phantoms is raised by one SD, the
  other fixed.
* **Every method** explains each CNN on images of an explanation cohort with correlation ``r``: the four
  counterfactuals of :func:`seegaan.explain.explain` (``mean``, ``mean`` adjusted for the *other* CNN's
  prediction, ``gradient``, ``minimal``), the global sequence along the CNN's prediction (the decoded
  difference from its 5th to its 95th percentile), and VG, Grad-CAM and IG of the reconstruction.
* **The score** of a change (or attribution) map ``c``: regress ``c`` (attributions: ``|c|``) on the two
  truth maps (attributions: their absolute values) by least squares over the pixels, ``c ≈ α T_s + β T_d``;
  the share of the size factor is ``|α| ‖T_s‖ / (|α| ‖T_s‖ + |β| ‖T_d‖)`` (1: all size, 0: all density).

:func:`run` returns one record per (seed, r, CNN, method); ``analyses/explain_benchmark.py`` runs the full
grid and prints the table of docs/validation.md; a fast version runs in the tests.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from seegaan._internal.errors import SeegaanError, SeegaanWarning
from seegaan.data.cohort import create_cohort
from seegaan.explain.attribution import attributions
from seegaan.explain.cnn import load_model
from seegaan.explain.counterfactual import explain
from seegaan.interpolation import interpolate
from seegaan.phantom.anatomy import PhantomParams, render

__all__ = ["run", "truth_maps", "factor_images", "METHODS", "CNNS"]

SIZE_PER_SD = 0.08
DENSITY_PER_SD = 0.04
CNNS = ("size", "density", "both")
METHODS = ("mean", "mean adjusted", "gradient", "minimal", "global sequence", "vg", "gradcam", "ig")


def _params(z_s: float, z_d: float, rng) -> PhantomParams:
    return PhantomParams(
        heart_jitter=SIZE_PER_SD * float(z_s),
        heart_density=DENSITY_PER_SD * float(z_d),
        breast_jitter=float(rng.normal(0, 0.05)),
        rib_phase=float(rng.uniform(0, 1)),
        inspiration=float(1.0 + rng.normal(0, 0.02)),
    )


def factor_images(n: int, r: float, seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, size, size) float32, scores z (n, 2)) with corr(z_s, z_d) = ``r``, no noise."""
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal([0.0, 0.0], [[1.0, r], [r, 1.0]], size=n)
    images = np.stack([render(_params(a, b, rng), size=size, noise=False) for a, b in z])
    return images.astype(np.float32), z


def truth_maps(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(T_size, T_density): the image change of one SD of each factor on the reference patient."""
    base = render(PhantomParams(), size=size, noise=False)
    t_s = render(PhantomParams(heart_jitter=SIZE_PER_SD), size=size, noise=False) - base
    t_d = render(PhantomParams(heart_density=DENSITY_PER_SD), size=size, noise=False) - base
    return t_s.astype(np.float64), t_d.astype(np.float64)


class PCA:
    """The linear autoencoder: ``encode(x) = (x − mean) Vᵀ``, ``__call__(w) = mean + w V`` (a decoder)."""

    def __init__(self, images: np.ndarray, n_components: int):
        x = images.reshape(len(images), -1).astype(np.float64)
        self.mean = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - self.mean, full_matrices=False)
        self.V = vt[:n_components]
        self.side = images.shape[-1]
        self.batch_invariant = True

    def encode(self, images: np.ndarray) -> np.ndarray:
        return ((images.reshape(len(images), -1) - self.mean) @ self.V.T).astype(np.float32)

    def __call__(self, w: np.ndarray) -> np.ndarray:
        out = self.mean + np.asarray(w, np.float64) @ self.V
        return out.reshape(len(w), self.side, self.side).astype(np.float32)


def reconstruction_r2(pca: PCA, size: int) -> dict:
    """R² of each truth map as the autoencoder draws it: ``G(E(base + T)) − G(E(base))`` against ``T``."""
    base = render(PhantomParams(), size=size, noise=False)[None]
    out = {}
    for name, t in zip(("size", "density"), truth_maps(size)):
        drawn = pca(pca.encode(base + t.astype(np.float32)))[0] - pca(pca.encode(base))[0]
        out[name] = float(1 - ((drawn - t) ** 2).sum() / ((t - t.mean()) ** 2).sum())
    return out


def share(change: np.ndarray, t_s: np.ndarray, t_d: np.ndarray, absolute: bool = False) -> float:
    """The size factor's share of a map (module docstring)."""
    c = np.abs(change) if absolute else np.asarray(change, np.float64)
    a, b = (np.abs(t_s), np.abs(t_d)) if absolute else (t_s, t_d)
    X = np.column_stack([a.ravel(), b.ravel()])
    alpha, beta = np.linalg.lstsq(X, c.ravel(), rcond=None)[0]
    wa, wb = abs(alpha) * np.linalg.norm(a), abs(beta) * np.linalg.norm(b)
    return float(wa / (wa + wb)) if wa + wb > 0 else float("nan")


def _train_cnns(images, z, seed: int, epochs: int):
    from seegaan.explain.smallcnn import predict_array, train_cnn  # deferred: torch (heavy)

    n = len(images)
    val = np.arange(n) >= int(0.85 * n)
    targets = {"size": z[:, 0], "density": z[:, 1], "both": z[:, 0] + z[:, 1]}
    nets = {}
    for name, y in targets.items():
        net, _ = train_cnn(images[~val], y[~val], images[val], y[val], task="regression", seed=seed, epochs=epochs)
        nets[name] = net
    return nets, predict_array


def reliance(nets, size: int, seed: int, n: int = 40) -> dict:
    """Per CNN: the mean change of its output when size (or density) rises by one SD, the other fixed."""
    from seegaan.explain.smallcnn import predict_array  # deferred: torch (heavy)

    rng = np.random.default_rng(seed + 1000)
    z = rng.standard_normal((n, 2))
    params = [_params(a, b, np.random.default_rng([seed, i])) for i, (a, b) in enumerate(z)]
    base = np.stack([render(p, size=size, noise=False) for p in params])
    up_s = np.stack(
        [
            render(dataclasses.replace(p, heart_jitter=p.heart_jitter + SIZE_PER_SD), size=size, noise=False)
            for p in params
        ]
    )
    up_d = np.stack(
        [
            render(dataclasses.replace(p, heart_density=p.heart_density + DENSITY_PER_SD), size=size, noise=False)
            for p in params
        ]
    )
    out = {}
    for name, net in nets.items():
        b0 = predict_array(net, base)
        out[name] = {
            "size": float((predict_array(net, up_s) - b0).mean()),
            "density": float((predict_array(net, up_d) - b0).mean()),
        }
    return out


def run(
    *,
    rs=(0.0, 0.5, 0.8),
    seeds=(0, 1, 2),
    n_train: int = 1200,
    n_explain: int = 400,
    n_images: int = 10,
    size: int = 32,
    n_components: int = 24,
    epochs: int = 10,
    methods=METHODS,
    progress=None,
) -> tuple[pd.DataFrame, dict]:
    """The benchmark (module docstring): a table of shares, one row per (seed, r, CNN, method, image), and
    the facts per seed (the autoencoder's R², each CNN's reliance by intervention)."""
    t_s, t_d = truth_maps(size)
    rows, facts = [], {}
    for seed in seeds:
        train_x, train_z = factor_images(n_train, 0.0, seed, size)
        pca = PCA(train_x, n_components)
        nets, predict_array = _train_cnns(train_x, train_z, seed, epochs)
        facts[seed] = {"r2": reconstruction_r2(pca, size), "reliance": reliance(nets, size, seed)}
        for r in rs:
            x, z = factor_images(n_explain, r, seed + 100, size)
            w = pca.encode(x)
            recon = pca(w)
            preds = {name: predict_array(net, recon) for name, net in nets.items()}
            table = pd.DataFrame(
                {"image_id": [f"i{i:04d}" for i in range(len(x))], "patient_id": [f"p{i:04d}" for i in range(len(x))]}
            )
            for name, p in preds.items():
                table[f"cnn_{name}"] = p
            cohort = create_cohort(w, table, model="pca", image_size=size)
            for cnn in CNNS:
                other = "density" if cnn == "size" else "size"
                model = load_model(nets[cnn])
                spread = float(np.std(preds[cnn]))
                if "global sequence" in methods:
                    traj = interpolate(cohort, feature=f"cnn_{cnn}", method="linear", steps=2)
                    frames = pca(traj.trajectory)
                    rows.append(
                        dict(
                            seed=seed,
                            r=r,
                            cnn=cnn,
                            method="global sequence",
                            image="",
                            share=share(frames[-1] - frames[0], t_s, t_d),
                        )
                    )
                for i in range(n_images):
                    image_id = f"i{i:04d}"
                    target = float(preds[cnn][i]) + spread
                    for method in methods:
                        kw = None
                        if method == "mean":
                            kw = dict(feature=f"cnn_{cnn}")
                        elif method == "mean adjusted":
                            kw = dict(feature=f"cnn_{cnn}", adjust=[f"cnn_{other}"])
                        elif method in ("gradient", "minimal"):
                            kw = dict(direction=method)
                        if kw is None:
                            continue
                        try:
                            with warnings.catch_warnings():
                                warnings.simplefilter("ignore", SeegaanWarning)
                                res = explain(cohort, pca, model, image_id=image_id, target=target, **kw)
                        except SeegaanError:
                            rows.append(dict(seed=seed, r=r, cnn=cnn, method=method, image=image_id, share=np.nan))
                            continue
                        rows.append(
                            dict(
                                seed=seed,
                                r=r,
                                cnn=cnn,
                                method=method,
                                image=image_id,
                                share=share(res.difference, t_s, t_d),
                            )
                        )
                    maps_wanted = [m for m in ("vg", "gradcam", "ig") if m in methods]
                    if maps_wanted:
                        maps = attributions(model, recon[i : i + 1], methods=maps_wanted)
                        for m, amap in maps.items():
                            rows.append(
                                dict(
                                    seed=seed,
                                    r=r,
                                    cnn=cnn,
                                    method=m,
                                    image=image_id,
                                    share=share(amap[0], t_s, t_d, absolute=True),
                                )
                            )
                if progress is not None:
                    progress(1)
    return pd.DataFrame(rows), facts
