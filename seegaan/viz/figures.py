"""Figures of SEE-GAAN sequences (paper Fig. 1c): frames in gray, significant differences in Spectral_r."""

from __future__ import annotations

import numpy as np
import xarray as xr

from seegaan.formats import save_figure


def _label(ds: xr.Dataset, k: int) -> str:
    levels = str(ds.attrs.get("levels", ""))
    value = float(ds["feature_value"].values[k])
    text = f"{levels.split(',')[0]} → {levels.split(',')[1]}: {value:.2f}" if levels else None
    text = text or f"{ds.attrs.get('feature', '')} = {value:.4g}"
    return text + cnn_label(ds, k)


def cnn_label(ds: xr.Dataset, k: int) -> str:
    """``"\nCNN 0.123"`` when the dataset holds the CNN's prediction at every step, else ``""``."""
    if "model_prediction" not in ds:
        return ""
    return f"\nCNN {float(ds['model_prediction'].values[k]):.3g}"


def plot_sequence(ds: xr.Dataset, path=None, *, max_steps: int | None = None, dpi: int = 150, overwrite: bool = False):
    """Plot a sequence dataset.

    Top row: the decoded frames (gray, [-1, 1]) with their feature values. Bottom row: the significant
    differences (image − image[step 0]) in the ``Spectral_r`` colour map with symmetric limits over a faded
    frame, and one colour bar; the title names the feature, correction and number of null draws (sign flips
    or permutations). Without a test the bottom row shows the raw differences.

    Parameters
    ----------
    ds : xarray.Dataset
        A sequence dataset (:meth:`SequenceResult.to_dataset` or a file read with xarray).
    path : str or Path, optional
        Where to save the PNG (written atomically).
    max_steps : int, optional
        Show at most this many evenly chosen steps.

    Returns
    -------
    matplotlib.figure.Figure
        A figure outside pyplot's figure list (no backend is chosen or changed); show it in a notebook as
        it is, or with ``fig.savefig``.
    """
    from matplotlib.figure import Figure  # deferred: matplotlib (heavy, figures only)

    steps, tested, diff, lim = panel_steps(ds, max_steps)
    fig = Figure(figsize=(1.9 * len(steps) + 0.8, 4.3), layout="constrained")
    axes = fig.subplots(2, len(steps), squeeze=False)
    im = None
    for j, k in enumerate(steps):
        top, bottom = axes[0, j], axes[1, j]
        top.imshow(ds["image"].values[k], cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        top.set_title(_label(ds, k), fontsize=7)
        bottom.imshow(ds["image"].values[k], cmap="gray", vmin=-1, vmax=1, alpha=0.35, interpolation="nearest")
        shown = np.where(diff[k] != 0, diff[k], np.nan) if tested else diff[k]
        im = bottom.imshow(shown, cmap="Spectral_r", vmin=-lim, vmax=lim, interpolation="nearest")
        if tested:
            n_sig = int(ds["significant"].values[k].sum())
            bottom.set_title(f"{n_sig} px", fontsize=7)
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("decoded", fontsize=8)
    axes[1, 0].set_ylabel("significant Δ" if tested else "Δ (untested)", fontsize=8)
    fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.9, label="image − step 0")
    a = ds.attrs
    if tested:
        draws = "sign flips" if a.get("null") == "sign-flip" else "permutations"
        corr = f"{a.get('correction')}, α={a.get('alpha')}, B={a.get('n_perm')} {draws}"
        if str(a.get("sd_offset", "0")) != "0":
            corr += f", s0={float(a['sd_offset_value']):.3g} ({a['sd_offset']})"
        if float(a.get("min_change", 0) or 0) > 0:
            corr += f", |Δ| > {float(a['min_change']):g}"
    else:
        corr = "no permutation test"
    fig.suptitle(f"{a.get('feature', '')} ({a.get('method', '')}) — {corr}", fontsize=9)
    if path is not None:
        save_figure(fig, path, dpi=dpi, overwrite=overwrite)
    return fig


def panel_steps(ds: xr.Dataset, max_steps: int | None):
    """The steps a figure shows (at most ``max_steps``, evenly spread), whether the sequence was tested, the
    maps drawn (significant differences if tested, else differences) and their colour limit."""
    K = ds.sizes["step"]
    steps = np.arange(K)
    if max_steps and K > max_steps:
        steps = np.unique(np.linspace(0, K - 1, max_steps).round().astype(int))
    tested = "significant_difference" in ds
    diff = ds["significant_difference" if tested else "difference"].values
    lim = float(np.abs(ds["difference"].values[steps]).max()) or 1.0
    return steps, tested, diff, lim
