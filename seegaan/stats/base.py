"""The pieces every part of the statistics shares: the null-map contract, pixel statistics, family-wise
corrections, and the block sums that make results independent of batches and processes.

A correction module (:mod:`~seegaan.stats.maxstat`, :mod:`~seegaan.stats.spatial`) implements
:class:`PixelStatistic` and :class:`FamilyWise`; the engine
(:mod:`~seegaan.stats.engine`) and the Dask reduction (:mod:`~seegaan.stats.distributed`) only call them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

import seegaan_kernels as kern
from seegaan._internal.choices import Backend

__all__ = ["NullMaps", "SUM_BLOCK", "PixelStatistic", "FamilyWise", "BlockSums", "permutation_sd"]

#: ``null_maps(rows)``: rows (nb, n_images) of a plan's indices -> float32 C-contiguous maps (nb, M), a new
#: array on every call (the engine may keep it for its second pass)
NullMaps = Callable[[np.ndarray], np.ndarray]

#: plan rows whose per-pixel sums are added into one partial sum; the partials are then added in plan order
SUM_BLOCK = 16


class PixelStatistic(ABC):
    """How a map becomes the statistic a family-wise correction acts on: ``z = map * scale``."""

    @abstractmethod
    def scale(self, sd: np.ndarray, tested: np.ndarray) -> tuple[np.ndarray, dict]:
        """Per-pixel factor (M,) from the permutation SD (M,) over all B + 1 maps, and attrs to record.

        Pixels outside ``tested`` (bool, (M,)) and pixels that cannot be tested get 0.
        """

    def shrink(self, observed: np.ndarray, min_change: float) -> np.ndarray:
        """The observed map (M,) with only the change beyond ``min_change`` image units left, before scaling.

        Default: the map is the difference itself, shrunk towards 0 by ``min_change``. A statistic that is
        not the difference (a studentised z) shrinks its difference and recomputes itself.
        """
        return (np.sign(observed) * np.maximum(np.abs(observed) - min_change, 0)).astype(observed.dtype)


class FamilyWise(ABC):
    """A correction with family-wise error control: the null distribution of a maximum over the family."""

    family_wise = True
    name: str

    @property
    @abstractmethod
    def statistic(self) -> PixelStatistic:
        """The pixel statistic the correction acts on."""

    @abstractmethod
    def null_maxima(
        self, batch: np.ndarray, scale: np.ndarray, code: int, shape: tuple[int, ...], backend: Backend
    ) -> np.ndarray:
        """Per-permutation maximum (nb,) of the corrected statistic of a batch of null maps (nb, M)."""

    @abstractmethod
    def adjusted_pvalues(
        self,
        observed: np.ndarray,
        scale: np.ndarray,
        code: int,
        shape: tuple[int, ...],
        null_max: np.ndarray,
        backend: Backend,
    ) -> np.ndarray:
        """Family-wise adjusted p-values (``shape``) of the observed map (M,) given the null maxima (B,)."""

    def attrs(self) -> dict:
        """The correction's parameters, recorded in the output's attrs."""
        return {}


class BlockSums:
    """Exceedance counts and per-pixel sums of null maps streamed in plan order.

    Rows are added one at a time into the partial sums of their block of :data:`SUM_BLOCK` plan rows;
    ``on_block(sum, sum_sq)`` receives each block's partials (float64, (M,)) when its last row was added
    (or at :meth:`flush`), so whoever adds the partials in plan order gets the same bits whatever the
    batches or the processes that produced the rows.
    """

    def __init__(
        self, observed: np.ndarray, code: int, backend: Backend, on_block: Callable[[np.ndarray, np.ndarray], None]
    ):
        self.observed, self.code, self.backend, self.on_block = observed, code, backend, on_block
        self.counts = np.zeros(observed.size, dtype=np.int64)
        self._rows = 0
        self._new_block()

    def _new_block(self) -> None:
        self._sum = np.zeros(self.observed.size, dtype=np.float64)
        self._sq = np.zeros(self.observed.size, dtype=np.float64)
        self._rows = 0

    def add(self, batch: np.ndarray, start: int) -> None:
        """Add the null maps ``batch`` (nb, M) of plan rows ``start .. start + nb - 1`` (rows in order)."""
        pos = 0
        while pos < len(batch):
            stop = min(len(batch), pos + SUM_BLOCK - (start + pos) % SUM_BLOCK)
            kern.accumulate_exceedances(
                batch[pos:stop], self.observed, self.code, self.counts, self._sum, self._sq, backend=self.backend
            )
            self._rows += stop - pos
            pos = stop
            if (start + pos) % SUM_BLOCK == 0:
                self.flush()

    def flush(self) -> None:
        """Hand over the current block's partial sums (if it has rows) and start a new block."""
        if self._rows:
            self.on_block(self._sum, self._sq)
            self._new_block()


def permutation_sd(total: np.ndarray, total_sq: np.ndarray, observed: np.ndarray, n_perm: int) -> np.ndarray:
    """Per-pixel SD over all B + 1 maps (the observed one included) from the null maps' running sums.

    A symmetric function of the maps, so max-statistic tests built on it stay exact. Where the variance is
    pure cancellation error (below 1e-12 of the mean square) the pixel does not vary: SD 0.
    """
    obs64 = observed.astype(np.float64)
    s1 = total + obs64
    s2 = total_sq + obs64 * obs64
    var = (s2 - s1 * s1 / (n_perm + 1)) / (n_perm + 1)
    var[var <= 1e-12 * (s2 / (n_perm + 1))] = 0.0
    return np.sqrt(np.maximum(var, 0.0))
