"""One image and a CNN: local sequences, counterfactuals, attribution maps, CNN loading and predictions.

local
    :func:`local_sequence`: one image moved along a feature, every pixel of its change permutation-tested.
counterfactual
    :func:`explain`: the λ at which the CNN's answer on the decoded image reaches a target
    (:func:`local_direction`, :class:`ExplainResult`).
attribution
    :func:`attributions` (vanilla gradient, Grad-CAM, integrated gradients through captum) and the panel.
cnn
    :func:`load_model`: a TorchScript file or ``module:attr`` as a :class:`~seegaan.explain.cnn.Model`.
predictions
    :func:`predict`: a CNN's prediction for every cohort image, as a numeric feature.

Names load on first use (torch and captum only when a function needs them).
"""

from __future__ import annotations

from seegaan._internal.lazy import lazy_module

_LAZY = {
    "local_sequence": "seegaan.explain.local",
    "LocalResult": "seegaan.explain.local",
    "plot_local": "seegaan.explain.local",
    "parse_lambdas": "seegaan.explain.local",
    "explain": "seegaan.explain.counterfactual",
    "ExplainResult": "seegaan.explain.counterfactual",
    "Direction": "seegaan.explain.counterfactual",
    "local_direction": "seegaan.explain.counterfactual",
    "solve_lambda": "seegaan.explain.counterfactual",
    "attributions": "seegaan.explain.attribution",
    "plot_explanation": "seegaan.explain.attribution",
    "load_model": "seegaan.explain.cnn",
    "Model": "seegaan.explain.cnn",
    "predict": "seegaan.explain.predictions",
}

__getattr__, __dir__, __all__ = lazy_module("seegaan.explain", _LAZY)
