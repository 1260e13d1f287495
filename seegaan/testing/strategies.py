"""Hypothesis strategies for the permutation logic: tiny cohorts, small decoders and seeds.

Hypothesis is a test extra (``pip install seegaan[test]``), imported here at the top: import this module
only from tests and analyses that have it.

Everything goes through public names only (:func:`seegaan.create_cohort`); a decoder is a plain NumPy
callable mapping float32 latents (B, D) to float32 images (B, H, W).

Cohorts
-------
:func:`tiny_cohorts` draws a :class:`TinyCohort`: 4 to 12 images with 2 to 4 latents, optionally patients
with several images, a two-level class feature ``group`` (levels ``"A"``/``"B"``, at least two images
each), a numeric feature ``x`` and, optionally, a numeric covariate ``c``. The features are either
constant within every patient (``level="patient"``: the patient-label scheme) or per image
(``level="image"``: whole blocks). The structure (sizes, labels, level) is drawn by Hypothesis, the values
from one drawn seed, so examples shrink to small structures. :func:`exact_cohorts` keeps only cohorts
whose exact permutation enumeration is small (:meth:`TinyCohort.exact_count`), :func:`signflip_cohorts`
those with few patients (an exact sign-flip test enumerates 2^P sign patterns).

Decoders
--------
:func:`linear_decoder`, :func:`smooth_decoder` (a mild tanh), :func:`tanh_decoder` (saturated: some pixels
sit on the flat part of tanh, where a change is a few float32 ulps), :func:`quantised` (outputs on a dyadic
grid, so an affine change with short dyadic coefficients is exact in float32) and :func:`affine`
(``a * G(w) + b``); :func:`decoders` draws one of the first three for a latent size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from hypothesis import assume
from hypothesis import strategies as st

from seegaan.data.cohort import create_cohort
from seegaan.stats.permutation import choose_scheme

#: images of every decoder here (non-square, so a transposed axis shows)
SHAPE = (3, 4)
#: the levels of the class feature, in order (A -> B)
LEVELS = ("A", "B")

#: any seed a NumPy Generator (and seegaan's ``seed=``) accepts
seeds = st.integers(0, 2**32 - 1)


# --------------------------------------------------------------------------------------------------
# decoders
# --------------------------------------------------------------------------------------------------
def _weights(latent: int, shape, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((latent, int(np.prod(shape)))) / np.sqrt(latent)).astype(np.float32)


def linear_decoder(latent: int, shape=SHAPE, seed: int = 0):
    """``G(w) = w @ A`` (float32), ``A`` (D, H * W) drawn from ``seed``; attribute ``A``."""
    A = _weights(latent, shape, seed)

    def decode(w):
        return (np.asarray(w, np.float32) @ A).reshape(len(w), *shape)

    decode.A = A
    decode.identity = f"seegaan.testing.strategies:linear_decoder({latent}, {tuple(shape)}, {seed})"
    return decode


def tanh_decoder(latent: int, shape=SHAPE, seed: int = 0, gain: float = 2.0, saturation: float = 6.0):
    """``G(w) = tanh(gain * (w @ A) + o)`` (float32) with per-pixel offsets ``o`` uniform in
    ``[-saturation, saturation]``: the pixels with a large offset are saturated (their values hardly move,
    as burned-in text or background: a change there is a few float32 ulps). ``saturation=0`` gives a
    smooth decoder with no saturated pixel."""
    A = _weights(latent, shape, seed)
    rng = np.random.default_rng(seed + 1)
    offset = rng.uniform(-saturation, saturation, A.shape[1]).astype(np.float32)
    gain32 = np.float32(gain)

    def decode(w):
        return np.tanh(gain32 * (np.asarray(w, np.float32) @ A) + offset).reshape(len(w), *shape)

    decode.A, decode.offset = A, offset
    decode.identity = f"seegaan.testing.strategies:tanh_decoder({latent}, {tuple(shape)}, {seed}, {gain}, {saturation})"
    return decode


def smooth_decoder(latent: int, shape=SHAPE, seed: int = 0):
    """A nonlinear decoder with no saturated pixel: ``tanh(0.5 * (w @ A))``."""
    return tanh_decoder(latent, shape, seed, gain=0.5, saturation=0.0)


def quantised(decoder, bits: int = 12):
    """``decoder``'s images rounded to multiples of ``2**-bits`` (float32). With |G| <= 2 every value has at
    most ``bits + 2`` significant bits, so ``a * G + b`` is exact in float32 when ``a`` and ``b`` are
    dyadic with few bits (see :func:`affine`)."""
    q = np.float32(2.0**bits)

    def decode(w):
        return (np.round(np.asarray(decoder(w), np.float32) * q) / q).astype(np.float32)

    decode.identity = f"quantised({getattr(decoder, 'identity', decoder)}, {bits})"
    return decode


def affine(decoder, a: float, b: float):
    """``a * G(w) + b`` in float32: the same images on another pixel scale."""
    a32, b32 = np.float32(a), np.float32(b)

    def decode(w):
        return (a32 * np.asarray(decoder(w), np.float32) + b32).astype(np.float32)

    decode.identity = f"affine({getattr(decoder, 'identity', decoder)}, {a!r}, {b!r})"
    return decode


#: the decoders :func:`decoders` draws from, by name
DECODERS = {"linear": linear_decoder, "smooth": smooth_decoder, "saturated": tanh_decoder}


def decoders(latent: int, shape=SHAPE, kinds=("linear", "smooth", "saturated")):
    """One of the ``kinds`` of :data:`DECODERS` for ``latent`` latents (weights from a drawn seed)."""
    return st.builds(
        lambda kind, seed: DECODERS[kind](latent, shape, seed), st.sampled_from(list(kinds)), st.integers(0, 10_000)
    )


# --------------------------------------------------------------------------------------------------
# cohorts
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TinyCohort:
    """Latents and a clinical table, with what the strategy drew about them.

    Attributes
    ----------
    w : ndarray (n, D), float32
    table : DataFrame
        ``image_id``, ``patient_id``, ``group`` (``"A"``/``"B"``), ``x`` (float) and, when drawn, ``c``.
    level : {"patient", "image"}
        Whether ``group``, ``x`` (and ``c``) are constant within every patient.
    """

    w: np.ndarray
    table: pd.DataFrame
    level: str

    @property
    def n(self) -> int:
        return int(self.w.shape[0])

    @property
    def latent(self) -> int:
        return int(self.w.shape[1])

    @property
    def patient_ids(self) -> np.ndarray:
        return self.table["patient_id"].to_numpy(dtype=str)

    @property
    def sizes(self) -> list[int]:
        """Images per patient, in order of first appearance."""
        _, first, counts = np.unique(self.patient_ids, return_index=True, return_counts=True)
        return [int(c) for c in counts[np.argsort(first)]]

    @property
    def n_patients(self) -> int:
        return len(self.sizes)

    @property
    def several_images(self) -> bool:
        return max(self.sizes) > 1

    def dataset(self):
        """The cohort, :func:`seegaan.create_cohort` of ``w`` and ``table``."""
        return create_cohort(self.w, self.table, model="seegaan.testing")

    def reordered(self, order) -> TinyCohort:
        """The same images in another row order (latents and table rows together)."""
        order = np.asarray(order)
        return replace(self, w=self.w[order], table=self.table.iloc[order].reset_index(drop=True))

    def renamed(self, mapping: dict) -> TinyCohort:
        """Patient ids renamed by ``mapping`` (old -> new)."""
        table = self.table.copy()
        table["patient_id"] = [mapping[p] for p in table["patient_id"]]
        return replace(self, table=table)

    def with_latents(self, w) -> TinyCohort:
        return replace(self, w=np.asarray(w, np.float32))

    def with_column(self, name: str, values) -> TinyCohort:
        table = self.table.copy()
        table[name] = values
        return replace(self, table=table)

    def exact_count(self, scheme: str) -> int:
        """Rearrangements of the exact enumeration under ``scheme`` (the identity included)."""
        sizes = self.sizes
        if scheme == "image":
            return math.factorial(self.n)
        if scheme == "patient-label":
            return math.factorial(len(sizes))
        return math.prod(math.factorial(sizes.count(s)) for s in set(sizes))

    def scheme_of(self, feature: str = "x", *, covariates: bool = False) -> str:
        """The scheme :func:`seegaan.draw_permutations` picks for ``feature`` (the class feature may be
        constant within every patient by chance even when ``level == "image"``)."""
        return choose_scheme(self.patient_ids, self.table[feature].to_numpy(), covariates=covariates)

    @property
    def scheme(self) -> str:
        """The scheme of the numeric feature ``x`` without covariates: image (one image per patient),
        patient-label (``level == "patient"``) or whole-block."""
        return self.scheme_of("x")


@st.composite
def tiny_cohorts(
    draw,
    *,
    n_images=(4, 12),
    latents=(2, 4),
    patients: bool | None = None,
    level: str | None = None,
    covariate: bool | None = None,
    max_per_patient: int = 3,
):
    """A :class:`TinyCohort` (see the module docstring).

    Parameters
    ----------
    n_images, latents : (min, max)
    patients : bool, optional
        True: some patient has several images (1 to ``max_per_patient`` each); False: one image each;
        None: either.
    level : {"patient", "image"}, optional
        Where the features vary (drawn when None; irrelevant with one image per patient).
    covariate : bool, optional
        Whether the numeric covariate ``c`` is added (drawn when None).
    """
    lo, hi = n_images
    several = draw(st.booleans()) if patients is None else patients
    if several:
        sizes = draw(st.lists(st.integers(1, max_per_patient), min_size=2, max_size=hi))
        total = 0
        kept = []
        for s in sizes:  # trim to at most `hi` images, keep at least `lo`
            if total + s > hi:
                break
            kept.append(s)
            total += s
        sizes = kept
        assume(total >= lo and max(sizes) > 1)
    else:
        sizes = [1] * draw(st.integers(lo, hi))
    P, n = len(sizes), sum(sizes)
    lvl = ("patient" if P == n else draw(st.sampled_from(["patient", "image"]))) if level is None else level
    units = P if lvl == "patient" else n
    # the class feature: every level with at least two images (Welch needs two)
    labels = draw(st.lists(st.sampled_from(LEVELS), min_size=units, max_size=units))
    per_image = np.repeat(labels, sizes) if lvl == "patient" else np.array(labels)
    assume(min(np.sum(per_image == lv) for lv in LEVELS) >= 2)
    D = draw(st.integers(*latents))
    with_c = draw(st.booleans()) if covariate is None else covariate
    rng = np.random.default_rng(draw(seeds))
    pid_names = [f"p{k:02d}" for k in range(P)]
    pid = np.repeat(pid_names, sizes)
    index = np.repeat(np.arange(P), sizes)

    def feature():
        values = rng.normal(size=units)
        return values[index] if lvl == "patient" else values

    x = feature()
    w = rng.standard_normal((n, D))
    if several:  # images of one patient share anatomy
        w = 0.6 * w + rng.standard_normal((P, D))[index]
    table = pd.DataFrame({"image_id": [f"i{i:02d}" for i in range(n)], "patient_id": pid, "group": per_image, "x": x})
    if with_c:
        table["c"] = feature()
    return TinyCohort(w.astype(np.float32), table, lvl)


def exact_cohorts(*, max_count: int = 720, feature: str = "x", **kwargs):
    """:func:`tiny_cohorts` whose exact enumeration under the scheme of ``feature`` (``"x"``, or the class
    feature ``"group"``; no covariates) has at most ``max_count`` rearrangements (the identity included)."""
    kwargs.setdefault("n_images", (4, 8))
    return tiny_cohorts(**kwargs).filter(lambda c: 2 <= c.exact_count(c.scheme_of(feature)) <= max_count)


def signflip_cohorts(*, max_patients: int = 6, **kwargs):
    """:func:`tiny_cohorts` with at most ``max_patients`` patients: an exact sign-flip test enumerates
    all 2^P sign patterns (one sign per patient)."""
    if kwargs.get("patients") is False:
        lo, hi = kwargs.get("n_images", (4, 12))
        kwargs["n_images"] = (lo, min(hi, max_patients))
    else:
        kwargs.setdefault("n_images", (4, 10))
    return tiny_cohorts(**kwargs).filter(lambda c: c.n_patients <= max_patients)


@st.composite
def bijections(draw, names):
    """A renaming of ``names`` (distinct strings) onto new distinct strings, in a drawn (sorted-order
    changing) arrangement: ``{old: new}``."""
    names = list(dict.fromkeys(names))
    fresh = draw(
        st.lists(
            st.text("abcdefghij0123456789-_ ", min_size=1, max_size=6),
            min_size=len(names),
            max_size=len(names),
            unique=True,
        )
    )
    return dict(zip(names, fresh))
