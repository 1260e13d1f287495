"""Attribution maps of a CNN (captum) and the explanation panel (the paper's Fig. 6).

Methods (keys of :func:`attributions`; each map has the image's shape (H, W)):

``vg``
    vanilla gradient, captum ``Saliency``: |∂ prediction / ∂ pixel|.
``gradcam``
    Grad-CAM, captum ``LayerGradCam`` on a named layer (default: the model's last ``Conv2d``), with the
    usual ReLU (only evidence *for* a higher prediction), upsampled bilinearly to the image size with
    ``LayerAttribution.interpolate``. Needs forward hooks, so not TorchScript models.
``ig``
    Integrated Gradients, captum ``IntegratedGradients`` from the all −1 image (black on the decoder's
    [-1, 1] scale; ``baseline=`` takes a number or an (H, W) image such as the cohort's mean
    reconstruction), ``ig_steps`` Gauss-Legendre steps; signed.

The gradients run through the model's input resize and rescale (:meth:`seegaan.explain.cnn.Model.prepare`), so
the maps are in the pixels of the decoder's images. captum is the ``explain`` extra
(``pip install 'seegaan[explain]'``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seegaan._internal.errors import SeegaanError
from seegaan.explain.cnn import load_model
from seegaan.formats import save_figure

METHODS: tuple[str, ...] = ("vg", "gradcam", "ig")


def check_methods(methods) -> tuple[str, ...]:
    """The attribution methods asked for (``"vg,ig"`` or a list), lower-case and unique.

    An unknown method is a one-line error.
    """
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    methods = tuple(dict.fromkeys(str(m).lower() for m in (methods or ())))
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise SeegaanError(f"unknown attribution method {bad[0]!r}; use {', '.join(METHODS)}")
    return methods


_TITLES = {"vg": "vanilla gradient", "gradcam": "Grad-CAM", "ig": "integrated gradients"}


def _captum():
    try:
        import captum.attr as attr  # deferred: captum (optional extra)
    except ImportError:
        raise SeegaanError(
            "attribution maps need captum; install it with pip install 'seegaan[explain]' (or pip install captum)"
        ) from None
    return attr


def _is_conv2d(module) -> bool:
    import torch  # deferred: torch (heavy)

    return isinstance(module, torch.nn.Conv2d) or getattr(module, "original_name", None) == "Conv2d"


def resolve_layer(model, layer: str | None):
    """The ``nn.Module`` named ``layer`` in ``model.named_modules()`` (default: the last Conv2d)."""
    named = dict(model.module.named_modules())
    if layer is None:
        convs = [name for name, mod in named.items() if _is_conv2d(mod)]
        if not convs:
            raise SeegaanError(f"model {model.identity} has no Conv2d layer for Grad-CAM; name a layer with --layer")
        return named[convs[-1]]
    if layer not in named or layer == "":
        convs = [name for name, mod in named.items() if _is_conv2d(mod)]
        raise SeegaanError(f"the model has no layer {layer!r}; its Conv2d layers: {', '.join(convs[-6:]) or 'none'}")
    return named[layer]


def check_attribution_model(model, methods: Sequence[str], layer: str | None = None) -> None:
    """Refuse (one line) a model the requested methods cannot use, before any work."""
    _captum()
    if model.module is None:
        raise SeegaanError(
            f"attribution maps need a torch nn.Module (a TorchScript file or module:attr naming "
            f"an nn.Module); {model.identity} is a plain function"
        )
    if "gradcam" in methods:
        if model.is_torchscript:
            raise SeegaanError(
                "Grad-CAM needs forward hooks, which TorchScript models do not have; give the "
                "network as module:attr (an nn.Module) or leave gradcam out"
            )
        resolve_layer(model, layer)
    elif layer is not None:
        raise SeegaanError("--layer is used by Grad-CAM only; add gradcam to the attribution methods")


def attributions(
    model,
    images,
    *,
    methods: Sequence[str] = METHODS,
    layer: str | None = None,
    baseline: float | np.ndarray = -1.0,
    ig_steps: int = 32,
) -> dict[str, np.ndarray]:
    """Attribution maps of ``model`` for each image.

    Parameters
    ----------
    model : Model, nn.Module or spec
        The CNN (:func:`seegaan.explain.cnn.load_model`); must be a torch module, not a plain function.
    images : ndarray, shape (B, H, W) or (B, 1, H, W)
        Images on the decoder's [-1, 1] scale.
    methods : sequence of {"vg", "gradcam", "ig"}
    layer : str, optional
        Grad-CAM layer, by its name in ``named_modules()`` (e.g. ``"features.3"``); default: the last Conv2d.
    baseline : float or ndarray (H, W)
        Integrated Gradients baseline (default the all −1 image).
    ig_steps : int
        Integrated Gradients steps.

    Returns
    -------
    dict of str -> ndarray (B, H, W), float32
        One map per method, in the order asked.
    """
    import torch  # deferred: torch (heavy)

    methods = check_methods(methods)
    if not methods:
        raise SeegaanError("give at least one attribution method (vg, gradcam, ig)")
    model = load_model(model)
    check_attribution_model(model, methods, layer)
    attr = _captum()
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise SeegaanError(f"images for attribution maps must have shape (B, H, W), got {np.shape(images)}")
    H, W = x.shape[-2:]
    base = np.asarray(baseline, np.float32)
    if base.ndim not in (0, 2) or (base.ndim == 2 and base.shape != (H, W)):
        raise SeegaanError(f"the IG baseline must be a number or an image of shape {(H, W)}, not {base.shape}")
    inputs = torch.from_numpy(np.ascontiguousarray(x)).to(model.device)
    forward = model.forward
    out: dict[str, np.ndarray] = {}
    with torch.enable_grad():
        for method in methods:
            xi = inputs.clone().requires_grad_(True)
            if method == "vg":
                maps = attr.Saliency(forward).attribute(xi, abs=True)
            elif method == "gradcam":
                cam = attr.LayerGradCam(forward, resolve_layer(model, layer)).attribute(
                    xi, relu_attributions=True, attr_dim_summation=True
                )
                maps = attr.LayerAttribution.interpolate(cam, (H, W), interpolate_mode="bilinear")
            else:
                b = torch.broadcast_to(torch.from_numpy(base).to(xi.device), xi.shape).contiguous()
                maps = attr.IntegratedGradients(forward).attribute(xi, baselines=b, n_steps=int(ig_steps))
            maps = maps.detach().cpu().numpy()
            if maps.ndim == 4:
                maps = maps.sum(axis=1)
            out[method] = maps.astype(np.float32)
    return out


def _draw_maps(row, recon: np.ndarray, maps: dict, title: str) -> None:
    """The reconstruction, then each attribution map over it (one axis each of ``row``)."""
    row[0].imshow(recon, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
    row[0].set_title(title, fontsize=7)
    for j, (m, amap) in enumerate(maps.items(), start=1):
        row[j].imshow(recon, cmap="gray", vmin=-1, vmax=1, alpha=0.4, interpolation="nearest")
        if m == "ig":
            lim = float(np.abs(amap).max()) or 1.0
            row[j].imshow(amap, cmap="RdBu_r", vmin=-lim, vmax=lim, alpha=0.8, interpolation="nearest")
        else:
            row[j].imshow(amap, cmap="inferno", alpha=0.7, interpolation="nearest")
        blank = m == "gradcam" and not np.any(amap)
        row[j].set_title(_TITLES[m] + (": all zero" if blank else ""), fontsize=7)
        if blank:
            row[j].text(
                0.5,
                0.5,
                "all zero\n(no positive evidence\nat this layer)",
                ha="center",
                va="center",
                fontsize=7,
                color="white",
                transform=row[j].transAxes,
            )


def plot_attribution_row(
    recon: np.ndarray, maps: dict, *, title: str = "", path=None, dpi: int = 150, overwrite: bool = False
):
    """One row: the reconstruction and its attribution maps (as the top row of :func:`plot_explanation`)."""
    from matplotlib.figure import Figure  # deferred: matplotlib (heavy, figures only)

    fig = Figure(figsize=(1.9 * (1 + len(maps)) + 0.2, 2.3), layout="constrained")
    axes = fig.subplots(1, 1 + len(maps), squeeze=False)[0]
    _draw_maps(axes, recon, maps, "reconstruction G(w_E)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    if path is not None:
        save_figure(fig, path, dpi=dpi, overwrite=overwrite)
    return fig


def _direction_words(a) -> str:
    """What moved the image, for the figure's title."""
    if str(a.get("direction", "mean")) != "mean":
        return f"{a.get('direction')}: {a.get('direction_basis', '')}"
    return f"{a.get('direction_basis', '')}: {a.get('current', '')} → {a.get('desired', '')}"


def plot_explanation(ds, path=None, *, dpi: int = 150, overwrite: bool = False):
    """The explanation panel, like the paper's Fig. 6.

    Top row: the reconstruction G(w_E) with the CNN's prediction, then each attribution map (vanilla
    gradient, Grad-CAM, integrated gradients; colour over the faded image). Bottom row: the decoded frames
    from λ = 0 to λ* with their predictions, and the difference counterfactual − reconstruction
    (``Spectral_r``, symmetric limits).

    Parameters
    ----------
    ds : xarray.Dataset or ExplainResult
        :meth:`seegaan.explain.ExplainResult.to_dataset` (or such a file read with xarray).
    path : str or Path, optional
        Where to save the PNG (atomically).

    Returns
    -------
    matplotlib.figure.Figure
        Outside pyplot's figure list (no backend is chosen or changed).
    """
    from matplotlib.figure import Figure  # deferred: matplotlib (heavy, figures only)

    if hasattr(ds, "to_dataset"):
        ds = ds.to_dataset()
    a = ds.attrs
    maps = [m for m in METHODS if f"attribution_{m}" in ds]
    n_frames = ds.sizes.get("frame", 0)
    ncol = max(1 + len(maps), n_frames + 1)
    fig = Figure(figsize=(1.9 * ncol + 0.6, 4.4), layout="constrained")
    axes = fig.subplots(2, ncol, squeeze=False)
    recon = ds["reconstruction"].values
    _draw_maps(
        axes[0], recon, {m: ds[f"attribution_{m}"].values for m in maps}, f"G(w_E): {float(a['prediction_0']):.3g}"
    )
    for k in range(n_frames):
        axes[1, k].imshow(ds["frames"].values[k], cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        axes[1, k].set_title(
            f"λ={float(ds['frame_lambda'].values[k]):.3g}: {float(ds['frame_prediction'].values[k]):.3g}", fontsize=7
        )
    diff = ds["difference"].values
    lim = float(np.abs(diff).max()) or 1.0
    ax = axes[1, ncol - 1]
    ax.imshow(recon, cmap="gray", vmin=-1, vmax=1, alpha=0.35, interpolation="nearest")
    im = ax.imshow(diff, cmap="Spectral_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_title("counterfactual − G(w_E)", fontsize=7)
    fig.colorbar(im, ax=ax, shrink=0.8)
    for row in axes:
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
            if not ax.images:
                ax.set_axis_off()
    fig.suptitle(
        f"{a.get('image_id', '')}: {float(a['prediction_0']):.4g} → target {float(a['target']):g} "
        f"at λ* = {float(a['lambda_star']):.3g} ({_direction_words(a)})",
        fontsize=9,
    )
    if path is not None:
        save_figure(fig, path, dpi=dpi, overwrite=overwrite)
    return fig
