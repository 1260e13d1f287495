"""The settings of a permutation test, validated once before any decoding: :class:`TestOptions`.

:func:`seegaan.sequence`, :func:`seegaan.local_sequence` and :func:`seegaan.pixel_test` take the same test
settings (correction, alternative, statistic, seed, mask, memory, batch size, device, ...). Each builds one
:class:`TestOptions` with :meth:`TestOptions.create` -- every check that needs no data, in the order a user
fixes them -- and then :meth:`TestOptions.resolve` checks them against the design (the interpolation:
its method and covariates, its images and patients, and the image size when it is known), still before
anything is decoded. A pixel test resolves its options on the clinical table alone, before any pixel is
read.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np

from seegaan._internal.choices import ALTERNATIVES, NULLS, STATISTICS, Backend, Null, Scheme
from seegaan._internal.docs import fill_doc
from seegaan._internal.errors import SeegaanError
from seegaan.decoder import decoder_device
from seegaan.stats.correction import CorrectionOptions, as_correction
from seegaan.stats.engine import check_memory, check_run
from seegaan.stats.mask import check_mask, load_mask
from seegaan.stats.permutation import MAX_EXACT, check_plan, patient_count

if TYPE_CHECKING:
    from seegaan.interpolation import InterpolationResult

__all__ = ["TestOptions", "recordable_seed", "resolve_statistic"]


def recordable_seed(seed):
    """``seed=None`` asks for fresh randomness: draw it here, so the output records the seed it used and the
    test can be repeated; an int stays; a Generator is used as given (recorded as "generator")."""
    if seed is None:
        return int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]  # an int when drawn
    return seed


@fill_doc
@dataclass(frozen=True)
class TestOptions:
    """The validated settings of one permutation test (immutable; build it with :meth:`create`).

    Attributes
    ----------
    %(n_perm)s
    %(null)s
    correction : MaxT, MaxD, TFCE, Cluster or PValues
        The correction's options object (a name given to :meth:`create` is resolved with its defaults).
    statistic : str
        ``"difference"``: the decoded difference is what every pixel tests.
    %(alpha)s
    %(alternative)s
    seed : int or Generator
        ``None`` is replaced by a seed drawn from fresh entropy, so the output can record it.
    %(batch_size)s
    %(null_cache_mb)s
    %(backend)s
    %(scheme)s
    mask : ndarray (H, W) of bool or None
        The region of interest, read once (a path given to :meth:`create` is loaded there).
    device : str
        Where a checkpoint decoder decodes, resolved by :func:`seegaan.decoder.decoder_device`.
    """

    __test__ = False  # not a pytest test class

    n_perm: int | Literal["exact"] = 1000
    null: Null = "sign-flip"
    correction: CorrectionOptions | None = None
    statistic: str = "auto"
    alpha: float = 0.05
    alternative: str = "two-sided"
    seed: int | np.random.Generator = 0
    batch_size: int = 16
    null_cache_mb: float = 1024
    backend: Backend = "numba"
    scheme: Scheme | None = None
    mask: np.ndarray | None = None
    device: str = "cpu"

    @classmethod
    def create(
        cls,
        *,
        decoder=None,
        n_perm: int | Literal["exact"] = 1000,
        null: Null = "sign-flip",
        correction="maxt",
        statistic: str = "auto",
        alpha: float = 0.05,
        alternative: str = "two-sided",
        seed=0,
        batch_size: int = 16,
        null_cache_mb: float = 1024,
        backend: Backend = "numba",
        scheme: Scheme | None = None,
        mask=None,
        device: str = "cpu",
    ) -> TestOptions:
        """Check every setting that needs no data, in the order a user fixes them; one-line errors.

        ``decoder`` (a spec, callable or None) is only used to check ``device`` before any work: CUDA
        without a GPU, an unknown device, or a GPU for a decoder that runs where its own code puts it.
        A mask given as a path is read here.
        """
        if null not in NULLS:
            raise SeegaanError(f"unknown null {null!r}; use one of {', '.join(NULLS)}")
        correction = as_correction(correction)
        if alternative not in ALTERNATIVES:
            raise SeegaanError(f"unknown alternative {alternative!r}; use {', '.join(ALTERNATIVES)}")
        check_run(n_perm=n_perm, alpha=alpha, batch_size=batch_size, seed=seed)
        statistic = resolve_statistic(statistic)
        if null == "sign-flip" and scheme is not None:
            raise SeegaanError(
                "a permutation scheme applies to --null permutation; the sign-flip null flips one sign per patient"
            )
        device = decoder_device(decoder, device)
        if isinstance(mask, (str, os.PathLike)):
            mask = load_mask(mask)  # a bad file fails before any decoding
        return cls(
            n_perm=n_perm,
            null=null,
            correction=correction,
            statistic=statistic,
            alpha=float(alpha),
            alternative=alternative,
            seed=recordable_seed(seed),
            batch_size=int(batch_size),
            null_cache_mb=null_cache_mb,
            backend=backend,
            scheme=scheme,
            mask=mask,
            device=device,
        )

    @property
    def tests(self) -> bool:
        """Whether there is a test (``n_perm != 0``)."""
        return self.n_perm != 0

    def resolve(
        self,
        interp: InterpolationResult,
        *,
        shape: tuple[int, int] | None = None,
        n_steps: int | None = None,
    ) -> TestOptions:
        """These options checked against a design (before any decoding).

        ``interp`` gives the method, the covariates, the images and patients (the permutation plan is
        checked without being drawn: the scheme and the size of an exact enumeration); ``shape`` (H, W),
        when known before decoding (a pixel test), checks the mask and the memory of the whole test with
        ``n_steps`` frames (default: the trajectory's).
        """
        n = int(interp.image_index.size)
        if self.tests and self.null == "sign-flip":
            if interp.levels is not None:
                check_class_patients(interp)
            if self.n_perm == "exact":
                patients = patient_count(interp.patient_ids)
                if 2**patients - 1 > MAX_EXACT:
                    raise SeegaanError(
                        f"exact enumeration needs {2**patients - 1} sign flips of {patients} patients (more than "
                        f"{MAX_EXACT}); give a number of draws instead"
                    )
        elif self.tests:
            check_plan(
                interp.patient_ids,
                self.n_perm,
                feature=interp.feature_codes,
                covariates=bool(interp.covariates),
                scheme=self.scheme,
            )
        if self.tests and not isinstance(self.n_perm, str):
            check_memory(int(self.n_perm), n, null_cache_mb=self.null_cache_mb)  # the plan alone
        if shape is not None:
            self.family_mask(shape)
            if self.tests and not isinstance(self.n_perm, str):
                k = interp.n_steps if n_steps is None else int(n_steps)
                self.check_memory(n, (k, *shape))
        return self

    def family_mask(self, shape: tuple[int, int]) -> np.ndarray | None:
        """The mask checked against the image ``shape`` (H, W), or None when every pixel is tested."""
        return None if self.mask is None else check_mask(self.mask, (int(shape[0]), int(shape[1])))

    def check_memory(self, n_images: int, maps_shape: tuple[int, ...]) -> None:
        """The memory of the whole test: plan, null cache and maxima."""
        if isinstance(self.n_perm, str) or not self.n_perm:
            return
        check_memory(int(self.n_perm), int(n_images), int(np.prod(maps_shape)), null_cache_mb=self.null_cache_mb)

    def rng_copy(self) -> TestOptions:
        """The same options with a Generator seed copied (a dry check must not advance the user's)."""
        if isinstance(self.seed, np.random.Generator):
            return replace(self, seed=copy.deepcopy(self.seed))
        return self


def check_class_patients(interp: InterpolationResult) -> None:
    """The sign-flip null of a class-mean trajectory estimates each class's spread from its patients: a class
    with one patient has none (its residuals sum to zero), so it is refused."""
    codes, patients = interp.feature_codes, interp.patient_ids
    for code, level in zip((0.0, 1.0), interp.levels or ()):
        count = np.unique(patients[codes == code]).size
        if count < 2:
            raise SeegaanError(
                f"class {level!r} of {interp.feature} has {count} patient(s): the sign-flip null needs at least 2 "
                "patients per class to estimate its spread; add patients or use --null permutation"
            )


#: statistics of earlier versions, retired with the sign-flip null
RETIRED_STATISTICS = ("welch", "hc3")


def resolve_statistic(statistic: str) -> str:
    """``"difference"`` from ``statistic=`` (``"auto"`` or ``"difference"``); a retired or unknown one is a
    one-line error."""
    if statistic in RETIRED_STATISTICS:
        raise SeegaanError(
            f"--statistic {statistic} was retired: the sign-flip null (the default) is valid under unequal spread "
            "without linearising the decoder (docs/statistics.md); drop --statistic"
        )
    if statistic not in STATISTICS:
        raise SeegaanError(f"unknown statistic {statistic!r}; use one of {', '.join(STATISTICS)}")
    return "difference"
