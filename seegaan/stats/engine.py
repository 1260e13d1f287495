"""The streaming permutation test: observed maps, a producer of null maps and a pre-drawn plan.

The engine knows nothing of latents or decoders. It takes

* the observed statistic maps, shape (K, H, W) (K frames of H x W pixels; spatial corrections work within
  each frame);
* ``null_maps(rows) -> (nb, K * H * W)``: float32 null maps for ``rows``, a slice of the plan's
  ``indices`` (a global trajectory decodes permuted latents; a local sequence could move along permuted
  directions);
* the :class:`~seegaan.stats.permutation.PermutationPlan`, drawn before any work, so results never depend on
  ``batch_size`` or ``null_cache_mb``;
* a correction options object (:class:`~seegaan.stats.MaxT`, :class:`~seegaan.stats.MaxD`,
  :class:`~seegaan.stats.TFCE`, :class:`~seegaan.stats.Cluster` or :class:`~seegaan.stats.PValues`).

Pass 1 streams the null maps into the exceedance counts (uncorrected p-values) and the running sums of
every pixel. A family-wise correction then turns the maps into a statistic (its ``statistic``: e.g. the
difference over the permutation SD, from those sums) and needs the per-permutation maximum of its
enhanced statistic (pass 2: the null maps again, from memory when all of them fit in ``null_cache_mb``,
else produced a second time; the same bits either way). A statistic that is already studentised per
draw (a t statistic) needs only a producer that returns the t maps and a statistic that leaves
them as they are (handed to the correction as its
``pixel_statistic``): the corrections act on whatever statistic map they are given.

p-values are ``(b + 1) / (B + 1)`` where ``b`` counts null statistics >= the observed one (ties count
against).

The running sums are added row by row within fixed blocks of :data:`SUM_BLOCK` plan rows and the blocks'
partial sums are then added in plan order, so the bits depend neither on ``batch_size`` nor on where the
rows were produced: with ``client=`` (a ``distributed.Client``) the blocks are decoded and reduced on Dask
workers (:mod:`seegaan.stats.distributed`) and the result is bit-identical to the single-process one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

import seegaan_kernels as kern
from seegaan._internal.choices import Alternative, Backend
from seegaan._internal.docs import fill_doc
from seegaan._internal.errors import SeegaanError, SeegaanWarning
from seegaan._internal.memory import available_memory  # noqa: F401  (re-exported; tests patch it here)
from seegaan._internal.progress import Progress, no_progress
from seegaan.stats.base import BlockSums, FamilyWise, NullMaps, permutation_sd
from seegaan.stats.distributed import RemoteTest
from seegaan.stats.permutation import PermutationPlan

if TYPE_CHECKING:
    from seegaan.stats.correction import CorrectionOptions

__all__ = ["PermutationTest", "SeegaanWarning", "available_memory", "check_memory", "check_run", "permutation_test"]

#: null maps (bytes) that may wait for the kernels to load when they are not kept for pass 2 anyway
PRELOAD_WAIT_BYTES = 256 * 2**20


@dataclass(frozen=True, eq=False)
class PermutationTest:
    """What the engine returns; arrays have the observed maps' shape.

    Attributes
    ----------
    p_value : ndarray of float64
        Uncorrected permutation p-values ``(b + 1) / (B + 1)`` (1 where a map cannot differ).
    p_adjusted : ndarray of float64
        Corrected p-values (1 outside the family).
    significant : ndarray of bool
        ``p_adjusted <= alpha`` within the family.
    null_max : ndarray (B,) or None
        The per-permutation maxima of a family-wise correction.
    attrs : dict
        The correction's name and parameters (and values computed from the null, such as s0).
    messages : tuple of str
        Warnings for the caller to issue (e.g. too few permutations to reject anything).
    """

    p_value: np.ndarray
    p_adjusted: np.ndarray
    significant: np.ndarray
    null_max: np.ndarray | None = field(repr=False)
    attrs: dict = field(default_factory=dict)
    messages: tuple[str, ...] = ()


@fill_doc
def permutation_test(
    observed: np.ndarray,
    null_maps: NullMaps,
    plan: PermutationPlan,
    *,
    correction: CorrectionOptions,
    family: np.ndarray | None = None,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    batch_size: int = 16,
    null_cache_mb: float = 1024,
    backend: Backend = "numba",
    progress: Progress | None = None,
    client=None,
) -> PermutationTest:
    """Test every pixel of ``observed`` against the null maps of ``plan``.

    Parameters
    ----------
    observed : ndarray of float32, shape (K, H, W)
        The observed maps.
    null_maps : callable
        ``null_maps(rows)`` returns the float32 null maps (nb, K * H * W) of ``rows``, a (nb, n) slice of
        ``plan.indices``, as a new array on every call (not a buffer it reuses: the engine keeps the
        batches for its second pass when they fit in ``null_cache_mb``).
    plan : PermutationPlan
        The B permutations, drawn before any work.
    correction : MaxT, MaxD, TFCE, Cluster or PValues
        The correction options (see :func:`seegaan.stats.as_correction` for names).
    family : bool ndarray of the shape of ``observed``, optional
        The tests (default: every pixel); the others are never significant and take no part in any
        correction.
    %(alpha)s
    %(alternative)s
    batch_size : int
        Null maps produced and streamed at a time (memory, not results).
    null_cache_mb : float
        Keep the null maps in memory for pass 2 when they fit in this many MiB (all B maps, in this process
        or over the Dask workers); else produce them again.
    %(backend)s
    progress : callable, optional
        ``progress(n, total=None)``: called once with ``total`` and then with the number of permutations
        just processed (each counts twice when pass 2 produces them again).
    client : distributed.Client, optional
        Decode and reduce the permutations on its workers (``null_maps`` must be picklable; the maps stay
        on the workers, and in their memory between the passes when they fit in ``null_cache_mb``). The
        same bits as without it.

    Returns
    -------
    PermutationTest
    """
    shape = tuple(observed.shape)
    flat = np.ascontiguousarray(observed.reshape(-1))
    M, B = flat.size, plan.n_perm
    code = kern.alternative_code(alternative)
    family = np.ones(shape, bool) if family is None else np.asarray(family, bool)
    progress = progress or no_progress
    family_wise = correction.family_wise

    # pass 2 reads the null maps from memory when all of them fit in null_cache_mb (in this process, or on
    # the Dask workers that produced them), else produces them again: the same bits either way
    keep = family_wise and B * M * 4 <= null_cache_mb * 2**20
    remote = None
    if client is not None:
        remote = RemoteTest(
            client, null_maps, flat, plan, code=code, batch_size=int(batch_size), backend=backend, keep_maps=keep
        )
    total = np.zeros(M, dtype=np.float64)
    total_sq = np.zeros(M, dtype=np.float64)

    def add_block(block_sum: np.ndarray, block_sq: np.ndarray) -> None:
        total.__iadd__(block_sum)
        total_sq.__iadd__(block_sq)

    local = remote is None
    # pass 2 reads the batches kept as they were produced (no copy into one big array: the same bits, no
    # first-touch cost of a (B, M) buffer)
    cache: dict[int, np.ndarray] | None = {} if local and keep else None
    progress(0, total=B * (2 if family_wise and not keep else 1))
    if local:
        sums = BlockSums(flat, code, backend, add_block)
        # Numba's one-time start-up (0.3-0.5 s per process) runs in the background while the first batches
        # are produced; they wait, in plan order, until the kernels are loaded (the same bits)
        loading = kern.preload(backend)
        waiting: list[tuple[int, np.ndarray]] = []
        waiting_bytes = 0
        for start, rows in plan.batches(int(batch_size)):
            batch = null_maps(rows)
            if cache is not None:
                cache[start] = batch
            waiting.append((start, batch))
            waiting_bytes += batch.nbytes if cache is None else 0
            if loading is None or not loading.is_alive() or waiting_bytes > PRELOAD_WAIT_BYTES:
                if loading is not None:
                    loading.join()
                    loading = None
                for first, maps in waiting:
                    sums.add(maps, first)
                waiting.clear()
            progress(len(rows))
        if loading is not None:
            loading.join()
        for first, maps in waiting:
            sums.add(maps, first)
        sums.flush()
        counts = sums.counts
    else:
        assert remote is not None
        counts = remote.moments(add_block, progress)
    p_value = ((counts + 1) / (B + 1)).reshape(shape)
    attrs = {"correction": correction.name}

    if not isinstance(correction, FamilyWise):
        p_adjusted, significant, messages = correction.adjust(p_value, family, alpha=alpha, n_perm=B)
        return PermutationTest(p_value, p_adjusted, significant, None, attrs, messages)

    sd = permutation_sd(total, total_sq, flat, B)
    scale, stat_attrs = correction.statistic.scale(sd, family.reshape(-1))
    if local:
        null_max = np.empty(B, dtype=np.float64)
        for start, rows in plan.batches(int(batch_size)):
            batch = cache.pop(start) if cache is not None else null_maps(rows)
            null_max[start : start + len(rows)] = correction.null_maxima(batch, scale, code, shape, backend)
            if cache is None:
                progress(len(rows))
    else:
        assert remote is not None
        null_max = remote.maxima(correction, scale, shape, progress)
    p_adjusted = correction.adjusted_pvalues(flat, scale, code, shape, null_max, backend)
    significant = (p_adjusted <= alpha) & family
    messages = ()
    if 1.0 / (B + 1) > alpha:
        messages = (
            f"{correction.name}: with {B} permutations the smallest p-value 1/{B + 1} is above alpha "
            f"{alpha}; nothing can be significant; use more permutations",
        )
    attrs.update(stat_attrs, **correction.attrs())
    return PermutationTest(p_value, p_adjusted, significant, null_max, attrs, messages)


def check_memory(
    n_perm: int,
    n_images: int,
    n_pixels: int | None = None,
    *,
    null_cache_mb: float = 1024,
    extra_bytes: int = 0,
    available: int | None = None,
) -> None:
    """Refuse, before drawing, a test whose plan and null cache cannot fit in half of the available memory.

    The plan is ``B x n`` int64 (8 bytes each); the null cache ``B x M`` float32 when it fits in
    ``null_cache_mb`` (else none); ``extra_bytes`` for what else the test keeps (e.g. studentising
    images). ``n_pixels=None`` checks the plan alone (before the first decode).
    """
    B, n = int(n_perm), int(n_images)
    need = {"the permutation plan (B x n x 8 bytes)": B * n * 8}
    if n_pixels is not None:
        cache = B * int(n_pixels) * 4
        if cache <= null_cache_mb * 2**20:
            need["the null cache (B x M x 4 bytes)"] = cache
        need["the null maxima and p-value sums"] = B * 8 + int(n_pixels) * 24
        if extra_bytes:
            need["the studentising images"] = int(extra_bytes)
    available = available_memory() if available is None else available
    total = sum(need.values())
    if available is not None and total > available / 2:
        parts = ", ".join(f"{what} {size / 2**30:.3g} GiB" for what, size in need.items() if size >= 2**20)
        raise SeegaanError(
            f"{B} permutations of {n} images need {total / 2**30:.3g} GiB ({parts}), more than half "
            f"of the {available / 2**30:.3g} GiB of memory available; use fewer permutations"
        )


def check_run(*, n_perm, alpha: float, batch_size: int, seed=None) -> None:
    """Refuse a number of permutations, level, batch size or seed that cannot work (before any decoding)."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed < 0:
        raise SeegaanError(f"--seed must be 0 or more (got {seed})")
    if isinstance(n_perm, str):
        if n_perm != "exact":
            raise SeegaanError(f"--perm must be a number of permutations >= 0 or 'exact' (got {n_perm!r})")
    elif int(n_perm) < 0:
        raise SeegaanError(f"--perm must be 0 or more (got {n_perm})")
    if not 0 < float(alpha) < 1:
        raise SeegaanError(f"--alpha must be between 0 and 1 (got {alpha})")
    if int(batch_size) < 1:
        raise SeegaanError(f"batch size must be at least 1 (got {batch_size})")
