"""Null plans: every null draw is decided up front from one seed -- sign flips or permutations.

``sign-flip`` (the default null of :func:`seegaan.sequence`; :func:`draw_signflips`)
    one random sign per patient: row ``b`` is a ``(n,)`` float64 vector of multipliers (±1), every image
    carrying its patient's sign; the null model's residual latents are flipped (wild bootstrap with
    Rademacher weights, PALM's "independent and symmetric errors"). The identity draw is all +1.

Three permutation schemes keep the permutation null honest when a patient has several images:

``image``
    every patient has one image: latents are shuffled across images.
``patient-label``
    the feature is constant within patients: patient labels are shuffled across patients and every image
    of a patient carries its (new) label.
``whole-block``
    otherwise (an image-level feature, or covariates with Freedman–Lane residuals): whole patients of the
    same number of images are exchanged as blocks, images kept in their within-patient order (PALM's
    whole-block permutation).

A permutation plan is a ``(B, n)`` integer array. For ``image`` and ``whole-block`` row ``b`` says which image's
latent (or residual) image ``i`` receives: ``W[idx[b]]``. For ``patient-label`` it says which image's
feature value image ``i`` receives: ``x[idx[b]]``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from seegaan._internal.choices import SCHEMES, Scheme
from seegaan._internal.errors import SeegaanError

MAX_EXACT = 200_000


@dataclass(frozen=True)
class PermutationPlan:
    """Pre-drawn permutations.

    Attributes
    ----------
    indices : ndarray, shape (n_perm, n_images)
        int64 image indices of a permutation, or float64 multipliers of a sign flip.
    scheme : {"image", "patient-label", "whole-block", "sign-flip"}
    exact : bool
        True when ``indices`` enumerates every distinct rearrangement (or sign pattern) except the identity.
    """

    indices: np.ndarray
    scheme: Scheme | Literal["sign-flip"]
    exact: bool

    @property
    def n_perm(self) -> int:
        return int(self.indices.shape[0])

    def batches(self, batch_size: int):
        """Yield ``(start, indices[start:start+batch_size])`` in order."""
        for start in range(0, self.n_perm, batch_size):
            yield start, self.indices[start : start + batch_size]


def _groups(patient_ids: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Patients in order of first appearance and the image indices of each (ascending)."""
    patients, first, inverse = np.unique(patient_ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    inverse = inverse.reshape(-1)
    # one stable sort, not a scan of every image per patient (that was O(n x patients): 20 s at n = 100k)
    grouped = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    members = [grouped[k] for k in order]
    return patients[order], members


def choose_scheme(patient_ids, feature=None, *, covariates: bool = False) -> Scheme:
    """The exchangeability scheme implied by the patients and the feature (see module docstring)."""
    patient_ids = np.asarray(patient_ids).astype(str)
    _, members = _groups(patient_ids)
    if all(len(m) == 1 for m in members):
        return "image"
    if feature is not None and not covariates:
        feature = np.asarray(feature)
        if all(len(set(map(repr, feature[m].tolist()))) == 1 for m in members):
            return "patient-label"
    return "whole-block"


class _Layout:
    """Where each patient's images are, as arrays, so one draw is a few vectorised gathers."""

    def __init__(self, members: list[np.ndarray], n: int, size_groups: list[np.ndarray]):
        self.n = n
        self.first = np.array([m[0] for m in members], dtype=np.int64)  # each patient's first image
        self.patient_of = np.empty(n, dtype=np.int64)
        for k, imgs in enumerate(members):
            self.patient_of[imgs] = k
        # whole-block: per block size, the (patients, size) table of image indices, in group order
        self.blocks = [(len(g), np.stack([members[k] for k in g])) for g in size_groups]


def _one_draw(rng: np.random.Generator, scheme: Scheme, layout: _Layout) -> np.ndarray:
    """One permutation; the random calls are those of the original per-patient loops (same bits)."""
    if scheme == "image":
        return rng.permutation(layout.n).astype(np.int64)
    if scheme == "patient-label":  # every image takes the label of its patient's donor (its first image)
        donors = rng.permutation(layout.first.size)
        return layout.first[donors][layout.patient_of]
    idx = np.empty(layout.n, dtype=np.int64)
    for size, table in layout.blocks:  # whole-block: patients of one block size exchange whole blocks
        idx[table] = table[rng.permutation(size)]
    return idx


def _exact_units(scheme: Scheme, members: list[np.ndarray], n: int, size_groups: list[np.ndarray]) -> list[np.ndarray]:
    """What an exact enumeration rearranges: the images, the patients, or the patients of each block size."""
    if scheme == "image":
        return [np.arange(n)]
    if scheme == "patient-label":
        return [np.arange(len(members))]
    return size_groups


def _exact_total(units: list[np.ndarray]) -> int:
    """The number of rearrangements (the identity included); a one-line error above :data:`MAX_EXACT`."""
    total = math.prod(math.factorial(len(u)) for u in units)
    if total - 1 > MAX_EXACT:
        raise SeegaanError(
            f"exact enumeration needs {total - 1} permutations (more than {MAX_EXACT}); "
            "give a number of permutations instead"
        )
    return total


def _exact_draws(scheme: Scheme, members: list[np.ndarray], n: int, size_groups: list[np.ndarray]) -> np.ndarray:
    """Every rearrangement of the scheme except the identity, in lexicographic order."""
    units = _exact_units(scheme, members, n, size_groups)
    _exact_total(units)
    rows = []
    for combo in itertools.product(*(itertools.permutations(range(len(u))) for u in units)):
        if all(c == tuple(range(len(c))) for c in combo):
            continue
        idx = np.empty(n, dtype=np.int64)
        if scheme == "image":
            idx[:] = combo[0]
        elif scheme == "patient-label":
            for k, imgs in enumerate(members):
                idx[imgs] = members[combo[0][k]][0]
        else:
            for group, perm in zip(units, combo):
                for k, j in zip(group, perm):
                    idx[members[k]] = members[group[j]]
        rows.append(idx)
    return np.array(rows, dtype=np.int64).reshape(len(rows), n)


def _layout(patient_ids, feature, covariates: bool, scheme):
    """The ids as strings, the scheme (checked or chosen), each patient's images and the block-size groups."""
    patient_ids = np.asarray(patient_ids).astype(str)
    if scheme is None:
        scheme = choose_scheme(patient_ids, feature, covariates=covariates)
    elif scheme not in SCHEMES:
        raise SeegaanError(f"unknown permutation scheme {scheme!r}; use one of {', '.join(SCHEMES)}")
    _, members = _groups(patient_ids)
    sizes = np.array([len(m) for m in members])
    size_groups = [np.flatnonzero(sizes == s) for s in np.unique(sizes)]
    return patient_ids, scheme, members, size_groups


def check_plan(
    patient_ids, n_perm: int | Literal["exact"], *, feature=None, covariates: bool = False, scheme: Scheme | None = None
) -> Scheme:
    """Every refusal of :func:`draw_permutations` for these settings, without drawing; returns the scheme.

    An unknown scheme, and for ``"exact"`` an enumeration larger than :data:`MAX_EXACT` or one that holds
    only the identity (a cohort too small to test), are one-line errors.
    """
    patient_ids, scheme, members, size_groups = _layout(patient_ids, feature, covariates, scheme)
    if n_perm == "exact":
        if _exact_total(_exact_units(scheme, members, patient_ids.size, size_groups)) <= 1:
            raise SeegaanError(
                "exact enumeration found no permutation other than the identity; the cohort is too small"
            )
    return scheme


def draw_permutations(
    patient_ids,
    n_perm: int | Literal["exact"],
    *,
    feature=None,
    covariates: bool = False,
    scheme: Scheme | None = None,
    seed: int | np.random.Generator | None = 0,
) -> PermutationPlan:
    """Draw every permutation of a test before any work is done.

    Parameters
    ----------
    patient_ids : array-like of str, shape (n_images,)
    n_perm : int or "exact"
        Number of random permutations (the identity may be drawn; it is counted like any other draw),
        or ``"exact"`` for every distinct rearrangement but the identity.
    feature : array-like, optional
        Feature values per image; used to decide whether labels can be permuted per patient.
    covariates : bool
        Whether covariates are adjusted for (Freedman–Lane permutes residuals: whole blocks).
    scheme : str, optional
        Force a scheme instead of choosing it from the data.
    seed : int, Generator or None
        The one source of randomness; the draws do not depend on how they are later batched.

    Returns
    -------
    PermutationPlan
    """
    patient_ids, scheme, members, size_groups = _layout(patient_ids, feature, covariates, scheme)
    n = patient_ids.size
    if isinstance(n_perm, str):
        if n_perm != "exact":
            raise SeegaanError(f"n_perm must be a non-negative integer or 'exact', not {n_perm!r}")
        return PermutationPlan(_exact_draws(scheme, members, n, size_groups), scheme, True)
    if int(n_perm) < 0:
        raise SeegaanError(f"the number of permutations must be >= 0 (got {n_perm})")
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed < 0:
        raise SeegaanError(f"--seed must be 0 or more (got {seed})")
    rng = np.random.default_rng(seed)
    layout = _Layout(members, n, size_groups)
    rows = [_one_draw(rng, scheme, layout) for _ in range(int(n_perm))]
    indices = np.array(rows, dtype=np.int64).reshape(int(n_perm), n)
    return PermutationPlan(indices, scheme, False)


def patient_count(patient_ids) -> int:
    """The number of distinct patients."""
    return int(np.unique(np.asarray(patient_ids).astype(str)).size)


#: the multipliers of a sign flip
MULTIPLIERS = ("rademacher",)


def draw_signflips(
    patient_ids, n_flips: int | Literal["exact"], *, seed: int | np.random.Generator | None = 0
) -> PermutationPlan:
    """Draw every sign flip of a test before any work: one Rademacher sign (±1) per patient.

    Parameters
    ----------
    patient_ids : array-like of str, shape (n_images,)
        Every image of a patient carries the patient's sign (patients in order of first appearance).
    n_flips : int or "exact"
        Number of random draws (the identity, all +1, may be drawn and counts like any other draw), or
        ``"exact"`` for every sign pattern but the identity (2^P - 1 of them, at most :data:`MAX_EXACT`).
    seed : int, Generator or None

    Returns
    -------
    PermutationPlan
        ``scheme="sign-flip"``, ``indices`` the (B, n) float64 multipliers.
    """
    patient_ids = np.asarray(patient_ids).astype(str)
    _, members = _groups(patient_ids)
    P, n = len(members), patient_ids.size
    owner = np.empty(n, dtype=np.int64)
    for k, imgs in enumerate(members):
        owner[imgs] = k
    if isinstance(n_flips, str):
        if n_flips != "exact":
            raise SeegaanError(f"n_perm must be a non-negative integer or 'exact', not {n_flips!r}")
        total = 2**P
        if total - 1 > MAX_EXACT:
            raise SeegaanError(
                f"exact enumeration needs {total - 1} sign flips (more than {MAX_EXACT}); "
                "give a number of draws instead"
            )
        codes = np.arange(1, total, dtype=np.int64)[:, None]
        signs = np.where((codes >> np.arange(P)[None]) & 1, -1.0, 1.0)  # pattern k flips the set bits of k
        return PermutationPlan(signs[:, owner], "sign-flip", True)
    if int(n_flips) < 0:
        raise SeegaanError(f"the number of permutations must be >= 0 (got {n_flips})")
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed < 0:
        raise SeegaanError(f"--seed must be 0 or more (got {seed})")
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(int(n_flips), P))
    return PermutationPlan(signs[:, owner].reshape(int(n_flips), n), "sign-flip", False)
