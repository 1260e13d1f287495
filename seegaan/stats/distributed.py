"""Permutations decoded and reduced on Dask workers (``pip install 'seegaan[distributed]'``).

:func:`seegaan.stats.permutation_test` with ``client=`` hands the pre-drawn plan to the workers in tasks
of whole blocks of :data:`~seegaan.stats.base.SUM_BLOCK` rows. Pass 1: each task produces its null maps
and returns only their exceedance counts and per-block partial sums (the maps never travel); the client
adds the partials in plan order, exactly as the single-process loop does, so the bits are the same. Pass 2
(family-wise corrections): each task returns the per-permutation maxima of its maps, read from the worker's
memory where pass 1 kept them (when all B maps fit in ``null_cache_mb``, as in one process) or produced
again.
The observed map, the scale and the producer of null maps are broadcast to every worker once; a producer
that holds a decoder *spec* loads it once per worker process (:func:`seegaan.decoding.worker_decoder`). A task whose
worker dies is run again elsewhere (the scheduler reschedules it; ``retries`` covers a failing task), and
its result is the same bits.

Nothing here is imported by ``import seegaan``; ``distributed`` is imported only when a client is made.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import sys
import threading
from collections.abc import Iterator

import numpy as np

from seegaan._internal.errors import SeegaanError
from seegaan.stats.base import SUM_BLOCK, BlockSums

#: seconds to wait for a scheduler given by address
CONNECT_TIMEOUT = 5
#: how often a task is run again after it raised (a worker lost mid-task is rescheduled by the scheduler)
RETRIES = 2


@contextlib.contextmanager
def client_from_options(workers: int | None, scheduler: str | None) -> Iterator[object]:
    """A Dask client from the CLI's ``--workers N`` / ``--scheduler ADDRESS``, or None when neither is given.

    ``--workers N`` starts a local ``distributed.LocalCluster(n_workers=N, threads_per_worker=1,
    processes=True, security=True)`` (TLS with temporary credentials) closed on exit; ``--scheduler``
    connects to a running scheduler (within
    :data:`CONNECT_TIMEOUT` seconds). Bad options are one-line :class:`SeegaanError` s.
    """
    if workers is not None and scheduler is not None:
        raise SeegaanError("give either --workers (a local cluster) or --scheduler (a running one), not both")
    if workers is not None and int(workers) < 1:
        raise SeegaanError(f"--workers must be at least 1 (got {workers})")
    if workers is None and scheduler is None:
        yield None
        return
    try:
        import distributed  # deferred: distributed (optional extra)
    except ImportError:
        raise SeegaanError("--workers/--scheduler need Dask: pip install 'seegaan[distributed]'") from None
    if scheduler is not None:
        client = _connect(distributed, str(scheduler))
        with client:
            yield client
        return
    assert workers is not None
    if importlib.util.find_spec("cryptography") is None:  # what distributed needs for TLS credentials
        raise SeegaanError(
            "--workers secures its local cluster with TLS, which needs the cryptography package: "
            "pip install 'seegaan[distributed]'"
        )
    with (
        # security=True: temporary TLS credentials, so no other local user can connect to the scheduler and
        # run code as you while the run lasts (an open tcp:// scheduler would let them)
        distributed.LocalCluster(
            n_workers=int(workers), threads_per_worker=1, processes=True, dashboard_address=None, security=True
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield client


def _connect(distributed, scheduler: str):
    """``distributed.Client(scheduler)`` within :data:`CONNECT_TIMEOUT` seconds, with a hard deadline: an
    endpoint that accepts the TCP connection but never answers held ``Client`` past its own timeout (still
    waiting after 120 s, measured), so the connection is made in a daemon thread that is left behind."""
    box: dict = {}

    def connect() -> None:
        try:
            box["client"] = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except Exception as exc:  # noqa: BLE001 - reported below as one line
            box["error"] = exc

    thread = threading.Thread(target=connect, name="seegaan-dask-connect", daemon=True)
    thread.start()
    thread.join(CONNECT_TIMEOUT + 1)
    if "client" in box:
        return box["client"]
    exc = box.get("error")
    why = (str(exc).splitlines()[0] if str(exc) else type(exc).__name__) if exc is not None else "no answer"
    raise SeegaanError(
        f"cannot connect to the Dask scheduler {scheduler!r} within {CONNECT_TIMEOUT} s "
        f"({why}); give a running scheduler's address, e.g. tcp://host:8786"
    )


def _produce_task(null_maps, rows, batch_size) -> list[np.ndarray]:
    """The null maps of plan rows ``rows``, ``batch_size`` rows at a time, kept on the worker for both passes."""
    return list(_batches(null_maps, rows, batch_size))


def _batches(source, rows, batch_size) -> Iterator[np.ndarray]:
    """The null maps of ``rows`` in batches: ``source`` is what :func:`_produce_task` kept, or the producer."""
    if isinstance(source, list):
        yield from source
    else:
        for pos in range(0, len(rows), batch_size):
            yield source(rows[pos : pos + batch_size])


_THREAD = threading.local()


def _task_threads(backend) -> None:
    """Numba's kernels in this worker thread use the threads the worker gives a task (``OMP_NUM_THREADS``).

    Dask's nanny sets ``OMP_NUM_THREADS`` (1 by default) so that torch and BLAS do not oversubscribe the
    cores, but Numba sizes its pool by ``NUMBA_NUM_THREADS`` (all cores), and its OpenMP layer sets the
    calling thread's OpenMP thread count at every launch -- which torch's next convolutions in the same
    thread then use. Two workers on two cores each ran teams of 2 and stalled (measured: the demo main
    job with B = 1,000 on 2 workers 16 s instead of 4 s). Once per worker thread; no-op without the
    variable or for the NumPy backend.
    """
    if backend != "numba" or getattr(_THREAD, "done", False):
        return
    _THREAD.done = True
    n = os.environ.get("OMP_NUM_THREADS", "")
    if not n.isdigit() or int(n) < 1:
        return
    import numba  # deferred: numba (JIT start-up)

    numba.set_num_threads(max(1, min(int(n), int(numba.config.NUMBA_NUM_THREADS))))  # type: ignore[attr-defined]
    if "torch" in sys.modules:  # starting Numba's pool may have set this thread's OpenMP count
        sys.modules["torch"].set_num_threads(int(n))


def _moments_task(source, observed, rows, start, batch_size, code, backend):
    """Counts (M,) and the per-block partial sums [(sum, sum_sq), ...] of plan rows ``start ..`` on a worker."""
    _task_threads(backend)

    blocks = []
    sums = BlockSums(observed, code, backend, lambda s, q: blocks.append((s, q)))
    first = start
    for batch in _batches(source, rows, batch_size):
        sums.add(batch, first)
        first += len(batch)
    sums.flush()
    return sums.counts, blocks


def _maxima_task(source, correction, scale, rows, batch_size, code, shape, backend):
    """Per-permutation maxima of the corrected statistic of plan rows ``rows`` on a worker."""
    _task_threads(backend)
    return np.concatenate(
        [correction.null_maxima(batch, scale, code, shape, backend) for batch in _batches(source, rows, batch_size)]
    )


class RemoteTest:
    """The two passes of a permutation test on a Dask client's workers (see the module docstring).

    Tasks hold whole blocks of ``SUM_BLOCK`` plan rows, at least ``batch_size`` rows; each task decodes
    ``batch_size`` rows at a time. With ``keep_maps`` the null maps stay in the workers' memory between the
    passes (pass 2 reads them instead of decoding them again; a worker lost in between has its maps
    produced again from the plan, the same bits).
    """

    def __init__(
        self,
        client,
        null_maps,
        observed: np.ndarray,
        plan,
        *,
        code: int,
        batch_size: int,
        backend,
        keep_maps: bool = False,
    ):
        self.client, self.plan, self.code, self.backend = client, plan, code, backend
        self.keep_maps = bool(keep_maps)
        self._kept: list | None = None
        self.batch_size = int(batch_size)
        step = SUM_BLOCK * max(1, math.ceil(self.batch_size / SUM_BLOCK))
        self.spans = [(lo, min(lo + step, plan.n_perm)) for lo in range(0, plan.n_perm, step)]
        # tasks, not scatters: a scattered value is lost with the last worker that holds it (when a worker
        # dies before a broadcast reached the others, every task that needs it is cancelled), while a task's
        # result is made again elsewhere from the graph
        try:
            self._null_maps = client.submit(_value, null_maps, pure=False)
        except SeegaanError:
            raise
        except Exception as exc:
            raise SeegaanError(
                f"cannot send the producer of null maps to the Dask workers ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None
        self._observed = client.submit(_value, observed, pure=False)
        self._size = int(observed.size)

    def _submit(self, fn, args):
        sources = self._kept or [self._null_maps] * len(self.spans)
        return [
            self.client.submit(fn, source, *args(lo, hi), retries=RETRIES, pure=False)
            for source, (lo, hi) in zip(sources, self.spans)
        ]

    def moments(self, add_block, progress) -> np.ndarray:
        """Pass 1: the exceedance counts; ``add_block(sum, sum_sq)`` gets every block's partials in plan order."""
        idx = self.plan.indices
        if self.keep_maps:
            self._kept = [
                self.client.submit(
                    _produce_task, self._null_maps, idx[lo:hi], self.batch_size, retries=RETRIES, pure=False
                )
                for lo, hi in self.spans
            ]
        futures = self._submit(
            _moments_task, lambda lo, hi: (self._observed, idx[lo:hi], lo, self.batch_size, self.code, self.backend)
        )
        counts = np.zeros(self._size, dtype=np.int64)
        for (lo, hi), fut in zip(self.spans, futures):
            part, blocks = _result(fut)
            counts += part
            for block_sum, block_sq in blocks:
                add_block(block_sum, block_sq)
            progress(hi - lo)
        return counts

    def maxima(self, correction, scale: np.ndarray, shape, progress) -> np.ndarray:
        """Pass 2: the per-permutation maxima (B,), each row's from its own null map."""
        idx = self.plan.indices
        # a task, not a scatter: a worker lost between the passes would make a broadcast wait for it, and a
        # task's result is made again elsewhere when its worker is lost
        scale_f = self.client.submit(_value, scale, pure=False)
        futures = self._submit(
            _maxima_task,
            lambda lo, hi: (correction, scale_f, idx[lo:hi], self.batch_size, self.code, tuple(shape), self.backend),
        )
        null_max = np.empty(self.plan.n_perm, dtype=np.float64)
        for (lo, hi), fut in zip(self.spans, futures):
            null_max[lo:hi] = _result(fut)
            if not self.keep_maps:
                progress(hi - lo)
        self._kept = None  # the workers may free the maps
        return null_max


def _value(value):
    return value


def _result(future):
    """A task's result; a SeegaanError raised on a worker comes back as itself, one line."""
    try:
        return future.result()
    except SeegaanError:
        raise
    except Exception as exc:
        raise SeegaanError(
            f"a permutation task failed on a Dask worker ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
