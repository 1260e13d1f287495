"""Every named choice of the library, defined once.

The ``Literal`` types are the source; the tuples are derived from them, and the CLI builds its ``Enum``
choices from the tuples (:func:`cli_enum`), so a new correction or method is added in one place.
"""

from __future__ import annotations

import enum
from typing import Literal, get_args

Correction = Literal["maxt", "maxd", "tfce", "cluster", "none", "fdr_bh", "fdr_by", "bonferroni", "holm"]
PValueMethod = Literal["none", "bonferroni", "holm", "fdr_bh", "fdr_by"]
Alternative = Literal["two-sided", "greater", "less"]
Method = Literal["auto", "class-mean", "linear", "gam"]
Transform = Literal["none", "log"]
Backend = Literal["numba", "numpy"]
Split = Literal["train", "val", "test"]
Scheme = Literal["image", "patient-label", "whole-block"]
Connectivity = Literal[4, 8]
#: the pixel statistic of a sequence (see :func:`seegaan.sequence`): the decoded difference
Statistic = Literal["auto", "difference"]
#: the null distribution of a test (see :func:`seegaan.sequence`)
Null = Literal["sign-flip", "permutation"]

CORRECTIONS: tuple[str, ...] = get_args(Correction)
P_METHODS: tuple[str, ...] = get_args(PValueMethod)
#: permutation corrections with family-wise error control (they need the null maxima)
FWER_CORRECTIONS: tuple[str, ...] = ("maxt", "maxd", "tfce", "cluster")
#: single-step max statistics over pixels and steps (standardised or raw difference)
MAX_STATISTICS: tuple[str, ...] = ("maxt", "maxd")
ALTERNATIVES: tuple[str, ...] = get_args(Alternative)
METHODS: tuple[str, ...] = get_args(Method)
TRANSFORMS: tuple[str, ...] = get_args(Transform)
BACKENDS: tuple[str, ...] = get_args(Backend)
SPLITS: tuple[str, ...] = get_args(Split)
SCHEMES: tuple[str, ...] = get_args(Scheme)
CONNECTIVITIES: tuple[int, ...] = get_args(Connectivity)
STATISTICS: tuple[str, ...] = get_args(Statistic)
NULLS: tuple[str, ...] = get_args(Null)

assert set(P_METHODS) | set(FWER_CORRECTIONS) == set(CORRECTIONS)


def cli_enum(name: str, values: tuple[str, ...]) -> type[enum.Enum]:
    """A ``str`` Enum whose members are ``values`` (for typer choices); member names are identifiers."""
    return enum.Enum(name, {v.replace("-", "_"): v for v in values}, type=str)


#: side of the square images the model reads (bicubic resize)
DEFAULT_SIZE = 256
