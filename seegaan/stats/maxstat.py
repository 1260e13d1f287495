"""Single-step max statistics over every pixel of every step (Westfall–Young).

``MaxT``: the difference over its permutation SD plus an offset s0, ``z = d / (SD + s0)``; ``MaxD``: the raw
difference (the paper's pixel statistic). Each pixel's adjusted p-value is the share of the B + 1 maps whose
largest statistic anywhere reaches the pixel's observed one. ``min_change`` shrinks the observed difference
towards zero before it meets the null maxima, so only a change beyond it can be significant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import seegaan_kernels as kern
from seegaan._internal.choices import Backend
from seegaan._internal.errors import SeegaanError
from seegaan.stats.base import FamilyWise, PixelStatistic


# ----------------------------------------------------------------------------------------------
# pixel statistics
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PermutationSD(PixelStatistic):
    """``z = d / (SD + s0)`` with the permutation SD over all B + 1 maps; s0 from ``offset``.

    ``offset=None`` divides by the SD alone and records nothing; otherwise ``offset`` is as in
    :func:`parse_sd_offset` and is recorded as ``sd_offset`` and ``sd_offset_value``.
    """

    offset: float | str | None = None

    def scale(self, sd, tested):
        spec = parse_sd_offset(0.0 if self.offset is None else self.offset)
        s0 = _sd_offset_value(spec, sd[(sd > 0) & tested])
        scale = np.zeros(sd.size, dtype=np.float64)
        np.divide(1.0, sd + s0, out=scale, where=sd > 0)
        scale[~tested] = 0.0
        attrs = {} if self.offset is None else {"sd_offset": spec[0], "sd_offset_value": float(s0)}
        return scale, attrs


@dataclass(frozen=True)
class RawDifference(PixelStatistic):
    """``z = d``: the map itself; pixels that never vary under permutation are left out."""

    def scale(self, sd, tested):
        scale = np.zeros(sd.size, dtype=np.float64)
        scale[sd > 0] = 1.0
        scale[~tested] = 0.0
        return scale, {}


def parse_sd_offset(value) -> tuple[str, float | None, float | None]:
    """``(spec, absolute, percentile)`` from a number (image units, >= 0), ``"median"`` or ``"pNN"``."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "median":
            return "median", None, 50.0
        if text.startswith("p"):
            try:
                q = float(text[1:])
            except ValueError:
                q = -1.0
            if 0 <= q <= 100:
                return f"p{q:g}", None, q
            raise SeegaanError(f"--sd-offset {value!r}: a percentile is p0 to p100, e.g. p50")
        try:
            value = float(text)
        except ValueError:
            raise SeegaanError(f"--sd-offset {value!r}: give a number >= 0 (image units), median or pNN") from None
    value = float(value)
    if not value >= 0 or not np.isfinite(value):
        raise SeegaanError(f"--sd-offset must be a finite number >= 0, median or pNN (got {value})")
    return f"{value:g}", value, None


def _sd_offset_value(spec, sd_tested: np.ndarray) -> float:
    _, absolute, q = spec
    if absolute is not None:
        return absolute
    return float(np.percentile(sd_tested, q)) if sd_tested.size else 0.0


def _check_min_change(value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise SeegaanError(f"--min-change must be a number >= 0 in image units (got {value!r})") from None
    if not (np.isfinite(value) and value >= 0):
        raise SeegaanError(f"--min-change must be a finite number >= 0 in image units (got {value})")
    return value


# ----------------------------------------------------------------------------------------------
# corrections
# ----------------------------------------------------------------------------------------------
class _MaxStatistic(FamilyWise):
    """The maximum of the statistic over the whole family is the null; ``min_change`` shrinks the observed."""

    min_change: float

    def null_maxima(self, batch, scale, code, shape, backend: Backend):
        return kern.accumulate_maxima(batch, scale, code, backend=backend)

    def adjusted_pvalues(self, observed, scale, code, shape, null_max, backend: Backend):
        if self.min_change > 0:  # only a change beyond min_change can be significant
            observed = self.statistic.shrink(observed, self.min_change)
        z_obs = kern.standardized_statistic(observed, scale, code).reshape(shape)
        B = null_max.size
        return np.where(np.isfinite(z_obs), (kern.maxt_counts(z_obs, null_max) + 1) / (B + 1), 1.0)

    def attrs(self) -> dict:
        return {"min_change": self.min_change}


@dataclass(frozen=True)
class MaxT(_MaxStatistic):
    """Westfall–Young max-T of the standardised difference ``z = d / (permutation SD + s0)``.

    Parameters
    ----------
    sd_offset : float, "median" or "pNN"
        s0 added to every pixel's permutation SD before dividing, as SAM's fudge factor (Tusher et al.
        2001) or SnPM's variance smoothing: without it a pixel whose null hardly varies (saturated
        background, burned-in text) turns a negligible but consistent change into a huge z. A number is in
        image units; ``"median"`` or ``"p25"`` take that percentile of the SD over the tested pixels; ``0``
        (the default) is the plain studentised max-T. s0 is computed from all B + 1 maps like the SD, so the
        test stays exact. Recorded as ``sd_offset`` and ``sd_offset_value``.
    min_change : float
        Test that a pixel's change *exceeds* this many image units (the model's [-1, 1] scale: 0.05 is 2.5%
        of the range) instead of that it is not zero: the observed difference is shrunk towards zero by
        ``min_change`` (|d| - min_change, or 0) before it meets the null maxima. With no change anywhere
        the test stays exact (only more conservative); for "|change| <= min_change" it assumes that the
        permutation null describes the estimate's spread around a non-zero change too (a shift model).
        Recorded as ``min_change``. With a studentised ``pixel_statistic`` the *difference* is shrunk
        before it is divided by its standard error.
    pixel_statistic : PixelStatistic, optional
        The statistic the maximum is taken of, when it is not ``d / (permutation SD + s0)``: maps already
        studentised per null draw, used as they are (an extension point: seegaan's own sequences test the
        difference). Not with ``sd_offset``.
    """

    sd_offset: float | str = 0.0
    min_change: float = 0.0
    pixel_statistic: PixelStatistic | None = field(default=None, compare=False, repr=False)
    name = "maxt"

    def __post_init__(self):
        spec = parse_sd_offset(self.sd_offset)
        object.__setattr__(self, "min_change", _check_min_change(self.min_change))
        if self.pixel_statistic is not None and spec[0] != "0":
            raise SeegaanError(
                "--sd-offset applies to the difference statistic z = d / (SD + s0); a studentised "
                "statistic divides every map by its own SE: drop --sd-offset"
            )

    @property
    def statistic(self) -> PixelStatistic:
        return self.pixel_statistic if self.pixel_statistic is not None else PermutationSD(self.sd_offset)


@dataclass(frozen=True)
class MaxD(_MaxStatistic):
    """Westfall–Young max of the raw difference (the paper's pixel statistic), family-wise.

    Every pixel must beat the largest null change anywhere, so it keeps large changes and drops small
    consistent ones that max-T finds where the null varies little. ``min_change`` as in :class:`MaxT`.
    """

    min_change: float = 0.0
    name = "maxd"

    def __post_init__(self):
        object.__setattr__(self, "min_change", _check_min_change(self.min_change))

    @property
    def statistic(self) -> PixelStatistic:
        return RawDifference()
