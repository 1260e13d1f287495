"""Trajectories through latent space along a clinical feature.

fit
    :func:`interpolate`: checks the options, builds the design and fits the trajectory.
methods
    One class per interpolation method (class-mean, linear, gam) behind the small
    :class:`~seegaan.interpolation.methods.Method` protocol, and the registry that names them.
result
    :class:`InterpolationResult`: the fitted trajectory, its linear map and the null trajectories.
gam
    The penalised B-spline maths (pyGAM's ``LinearGAM(s(0))``, reproduced bit for bit).
"""

from __future__ import annotations

from seegaan.interpolation.fit import interpolate
from seegaan.interpolation.result import InterpolationResult

__all__ = ["InterpolationResult", "interpolate"]
