"""Spatial family-wise corrections: TFCE and cluster mass, over the kernels of ``seegaan_kernels.spatial``.

Both act on the standardised difference ``z = d / permutation SD`` (or a ``pixel_statistic`` such as the
maps studentised per draw) within each step (2-D maps) and take the
maximum over steps as the null. Positive and negative effects are enhanced separately (FSL, MNE): a
two-sided test uses the larger of the two.
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from dataclasses import dataclass, field

import numpy as np

import seegaan_kernels as kern
from seegaan._internal.choices import CONNECTIVITIES, Backend, Connectivity
from seegaan._internal.errors import SeegaanError
from seegaan.stats.base import FamilyWise, PixelStatistic
from seegaan.stats.maxstat import PermutationSD
from seegaan_kernels import spatial
from seegaan_kernels.spatial import TooManyLevelsError


def _signed_codes(code: int) -> tuple[int, ...]:
    """Kernel alternative codes to enhance: two-sided (0) = greater (1) and less (2) separately."""
    return (1, 2) if code == 0 else (code,)


def _standardise(batch: np.ndarray, scale: np.ndarray, code: int) -> np.ndarray:
    """z = stat(null) * scale for a batch (nb, M); -inf where a pixel cannot be tested (scale 0)."""
    return np.stack([kern.standardized_statistic(row, scale, code) for row in batch])


def _finite(value, what: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise SeegaanError(f"{what} must be a number (got {value!r})") from None
    if not np.isfinite(value):
        raise SeegaanError(f"{what} must be a finite number (got {value})")
    return value


def _check_connectivity(connectivity) -> int:
    if connectivity not in CONNECTIVITIES:
        raise SeegaanError(f"connectivity must be 4 or 8 (got {connectivity!r})")
    return int(connectivity)


class _Spatial(FamilyWise):
    """Null: per permutation, the largest enhanced score over steps and signs."""

    pixel_statistic: PixelStatistic | None

    @property
    def statistic(self) -> PixelStatistic:
        """z = d / permutation SD, or the ``pixel_statistic`` given (maps studentised per draw, used as they are)."""
        return self.pixel_statistic if self.pixel_statistic is not None else PermutationSD()

    @abstractmethod
    def _null_score(self, z: np.ndarray, shape, backend) -> np.ndarray:
        """The largest score of each map of a batch of signed statistic maps (nb, M)."""

    @abstractmethod
    def _observed_p(self, z: np.ndarray, null_max: np.ndarray, backend) -> tuple[np.ndarray, np.ndarray]:
        """(where the map scores, its p-values) for one signed observed statistic map of the shape (K, H, W)."""

    def null_maxima(self, batch, scale, code, shape, backend: Backend):
        out = np.full(batch.shape[0], -np.inf)
        with self._guard():
            for sign in _signed_codes(code):
                out = np.maximum(out, self._null_score(_standardise(batch, scale, sign), shape, backend))
        return out

    def adjusted_pvalues(self, observed, scale, code, shape, null_max, backend: Backend):
        p = np.ones(shape)
        with self._guard():
            for sign in _signed_codes(code):
                z = kern.standardized_statistic(observed, scale, sign).reshape(shape)
                scored, p_sign = self._observed_p(z, null_max, backend)
                p = np.where(scored, np.minimum(p, p_sign), p)
        return p

    def _guard(self):
        return contextlib.nullcontext()


def _pvalues(scores: np.ndarray, null_max: np.ndarray) -> np.ndarray:
    return (kern.maxt_counts(scores, null_max) + 1) / (null_max.size + 1)


@dataclass(frozen=True)
class TFCE(_Spatial):
    """Threshold-free cluster enhancement (Smith & Nichols 2009) of z within each step.

    Parameters
    ----------
    H, E : float
        Height and extent exponents (H = 2; E = 0.5 or 1 for 2-D maps).
    dh : float
        Threshold step in z units, fixed so the score is the same function for the observed and every null
        map.
    connectivity : {4, 8}
        Pixel neighbourhood: 4 (edges) or 8 (edges and corners).
    pixel_statistic : PixelStatistic, optional
        The statistic to enhance instead of ``d / permutation SD`` (maps studentised per draw; see :class:`MaxT`).
    """

    H: float = 2.0
    E: float = 0.5
    dh: float = 0.1
    connectivity: Connectivity = 4
    pixel_statistic: PixelStatistic | None = field(default=None, compare=False, repr=False)
    name = "tfce"

    def __post_init__(self):
        for key in ("H", "E", "dh"):
            value = _finite(getattr(self, key), f"TFCE {key}")
            if value <= 0:
                raise SeegaanError(
                    f"TFCE {key} must be > 0 (got {value:g}); the usual 2-D values are H = 2, "
                    "E = 0.5 or 1, dh = 0.1 (--tfce-e)"
                )
            object.__setattr__(self, key, value)
        object.__setattr__(self, "connectivity", _check_connectivity(self.connectivity))

    def _null_score(self, z, shape, backend):
        return spatial.tfce_max(
            z, shape=shape, dh=self.dh, H=self.H, E=self.E, connectivity=self.connectivity, backend=backend
        )

    def _observed_p(self, z, null_max, backend):
        score = spatial.tfce(z, dh=self.dh, H=self.H, E=self.E, connectivity=self.connectivity, backend=backend)
        return score > 0, _pvalues(score, null_max)

    @contextlib.contextmanager
    def _guard(self):
        """TFCE refuses a map that would need too many thresholds: a one-line user error."""
        try:
            yield
        except TooManyLevelsError as exc:
            raise SeegaanError(
                f"tfce: a pixel whose permutation SD is almost 0 gives standardised differences "
                f"too large for TFCE steps of {self.dh:g} ({exc}); use more permutations or "
                "--correction maxt"
            ) from None

    def attrs(self) -> dict:
        return {"tfce_H": self.H, "tfce_E": self.E, "tfce_dh": self.dh, "connectivity": self.connectivity}


@dataclass(frozen=True)
class Cluster(_Spatial):
    """Cluster mass: the sum of z − threshold over each 2-D cluster with z > threshold.

    Every pixel of a cluster gets the cluster's p-value.

    Parameters
    ----------
    threshold : float
        Cluster-forming threshold on z.
    connectivity : {4, 8}
        Pixel neighbourhood: 4 (edges) or 8 (edges and corners).
    pixel_statistic : PixelStatistic, optional
        The statistic to threshold instead of ``d / permutation SD`` (maps studentised per draw; see :class:`MaxT`).
    """

    threshold: float = 3.0
    connectivity: Connectivity = 4
    pixel_statistic: PixelStatistic | None = field(default=None, compare=False, repr=False)
    name = "cluster"

    def __post_init__(self):
        object.__setattr__(self, "threshold", _finite(self.threshold, "--cluster-threshold"))
        object.__setattr__(self, "connectivity", _check_connectivity(self.connectivity))

    def _null_score(self, z, shape, backend):
        return spatial.cluster_max(
            z, shape=shape, threshold=self.threshold, connectivity=self.connectivity, backend=backend
        )

    def _observed_p(self, z, null_max, backend):
        labels, masses = spatial.cluster_masses(z, self.threshold, connectivity=self.connectivity, backend=backend)
        p_cluster = np.concatenate([[1.0], _pvalues(masses, null_max)])
        return labels > 0, p_cluster[labels]

    def attrs(self) -> dict:
        return {"cluster_threshold": self.threshold, "connectivity": self.connectivity}
