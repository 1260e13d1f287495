"""Decoding null maps: the precision of every decode, the null producers and the decoders of Dask workers.

A test's null maps are decoded images: for every row of a permutation plan (or any other null draw) a
producer computes the null trajectory, decodes it and returns its differences -- ``rows -> (nb, M)``
float32, the contract of :data:`seegaan.stats.base.NullMaps`. The statistics never import this module;
:func:`seegaan.sequence` and :func:`seegaan.local_sequence` hand it a producer.

decoding_precision
    Decode in strict fp32 (TF32 off, restored after) unless a checkpoint was loaded for bf16.
RemoteNulls, NullDifferences, LocalNulls
    The producers of global and local sequences; picklable for Dask when the decoder is a spec.
worker_decoder
    A decoder spec loaded once per process and device (a Dask worker).
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
from typing import TYPE_CHECKING

import numpy as np

from seegaan._internal.errors import SeegaanError
from seegaan._internal.runtime import strict_fp32
from seegaan.decoder import load_decoder
from seegaan.model.allocator import keep_freed_memory

if TYPE_CHECKING:
    from seegaan.interpolation import InterpolationResult
    from seegaan.interpolation.nullmodel import NullModel

__all__ = [
    "decoding_precision",
    "check_shippable",
    "worker_decoder",
    "RemoteNulls",
    "NullDifferences",
    "LocalNulls",
    "local_frames",
]


@contextlib.contextmanager
def decoding_precision(dec):
    """Decode in strict fp32 (TF32 off, restored after) unless a checkpoint decoder was loaded for bf16.

    Yields the ``precision`` attr: :func:`seegaan._internal.runtime.precision_record` of the checkpoint decoder's
    device, or of ``cpu`` for a callable (its own code decides where it runs).
    """
    fn = getattr(dec, "fn", dec)
    device = getattr(fn, "device", None)
    if getattr(fn, "autocast_bf16", False):
        yield f"bf16 autocast on {device} (decoder loaded for bf16)"
        return
    with strict_fp32("cpu" if device is None else device) as record:
        yield record if device is not None else f"{record} (callable decoder)"


def check_shippable(decoder) -> None:
    """A one-line error unless ``decoder`` is a spec Dask workers can load (a checkpoint path or
    ``"module:callable"``), not a Python object."""
    if not isinstance(decoder, (str, os.PathLike)):
        raise SeegaanError(
            "a decoder given as a Python object cannot be sent to Dask workers; give a "
            "checkpoint path or 'module:callable' as the decoder"
        )


class RemoteNulls:
    """Base of the null producers ``rows -> (nb, M)`` that decode and can be sent to Dask workers.

    Picklable when ``spec`` (a checkpoint path or ``"module:callable"``) is given: the loaded decoder stays
    behind and each process that unpickles the producer (a Dask worker) loads the spec once on ``device``
    (a string from :func:`seegaan.decoder.decoder_device`; :func:`seegaan.stats.distributed.worker_decoder`)
    and decodes in :func:`decoding_precision`. Subclasses set their fields, call :meth:`_set_decoder` and
    define ``_maps(rows)``; they decode with :attr:`dec`.
    """

    interp: InterpolationResult

    def _set_decoder(self, dec, spec, device) -> None:
        if spec is not None:
            check_shippable(spec)
        # a file spec travels as an absolute path (a worker's own folder is not the client's), with the
        # decoder's content identity, which every worker checks against what it loads
        self.spec = None if spec is None else _absolute_spec(os.fspath(spec))
        self.identity = getattr(dec, "identity", "")
        self.device = str(device)  # where a worker loads a checkpoint spec
        self._dec, self._remote = dec, False

    def __getstate__(self) -> dict:
        check_shippable(self.spec)
        interp = copy.copy(self.interp)
        vars(interp).pop("_blas_controller", None)  # a process-local BLAS controller: made again there
        return {**self.__dict__, "interp": interp, "_dec": None, "_remote": True}

    @property
    def dec(self):
        if self._dec is None:
            self._dec = worker_decoder(self.spec, self.device, identity=getattr(self, "identity", ""))
        return self._dec

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if not self._remote:
            return self._maps(rows)
        with decoding_precision(self.dec):
            return self._maps(rows)

    def _maps(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class NullDifferences(RemoteNulls):
    """``rows -> (nb, K * H * W)``: the differences from step 0 of the sequences of the null trajectories.

    ``null_model`` given: the rows are sign flips (:meth:`seegaan.InterpolationResult.flip_trajectories`);
    else permutations of ``scheme`` (:meth:`seegaan.InterpolationResult.null_trajectories`). A decoder that
    declares ``batch_invariant`` (an image's bits never depend on the rest of the call, as seegaan
    checkpoints guarantee) decodes a whole batch of draws at once; any other decoder gets one draw's K
    frames per call, so the bits never depend on ``batch_size``. Sent to Dask workers as
    :class:`RemoteNulls` says (the null model travels with the producer).
    """

    def __init__(
        self,
        interp: InterpolationResult,
        dec,
        scheme: str,
        shape: tuple[int, int, int],
        *,
        spec=None,
        device: str = "cpu",
        null_model: NullModel | None = None,
    ):
        self._set_decoder(dec, spec, device)
        self.interp, self.scheme, self.shape = interp, scheme, tuple(shape)
        self.null_model = null_model

    def _maps(self, rows: np.ndarray) -> np.ndarray:
        dec, shape = self.dec, self.shape
        if self.null_model is not None:
            trajs = self.interp.flip_trajectories(rows, self.null_model).astype(np.float32)
        else:
            trajs = self.interp.null_trajectories(rows, self.scheme).astype(np.float32)
        if getattr(dec.fn, "batch_invariant", False):
            frames = dec(trajs.reshape(-1, trajs.shape[-1])).reshape(len(rows), *shape)
        else:
            frames = np.stack([dec(t) for t in trajs])
        if frames.shape[1:] != shape:
            raise SeegaanError(f"decoder returned frames of shape {frames.shape[1:]}, expected {shape}")
        return np.ascontiguousarray((frames - frames[:, :1]).reshape(len(rows), -1))


def local_frames(
    dec, w_image: np.ndarray, offsets: np.ndarray, moving: np.ndarray, reconstruction: np.ndarray, together: bool
) -> np.ndarray:
    """Images (nb, K, H, W) of ``w_E + offsets`` (nb, K, D); steps not ``moving`` are ``G(w_E)`` as decoded.

    A ``batch_invariant`` decoder gets all rows at once, any other one row's moving steps per call (so the
    bits never depend on how many rows come together).
    """
    nb, K, _ = offsets.shape
    out = np.empty((nb, K, *reconstruction.shape), np.float32)
    out[:, ~moving] = reconstruction
    lat = (w_image[None, None] + offsets[:, moving]).astype(np.float32)
    if together:
        out[:, moving] = dec(lat.reshape(-1, lat.shape[-1])).reshape(nb, int(moving.sum()), *reconstruction.shape)
    else:
        for b in range(nb):
            out[b, moving] = dec(lat[b])
    return out


class LocalNulls(RemoteNulls):
    """``rows -> (nb, K * H * W)``: a local sequence's null differences ``G(w_E + offsets) - G(w_E)``.

    The offsets of every step come from the null trajectories (:meth:`_Path.offsets`): sign flips of the
    other images' null model when ``null_model`` is given, else permutations of ``scheme``; steps that do
    not move are ``G(w_E)`` itself. Sent to Dask workers as :class:`RemoteNulls` says.
    """

    def __init__(
        self,
        interp,
        dec,
        scheme: str,
        path,
        w_image: np.ndarray,
        reconstruction: np.ndarray,
        *,
        spec=None,
        device: str = "cpu",
        null_model: NullModel | None = None,
    ):
        self._set_decoder(dec, spec, device)
        self.interp, self.scheme, self.path = interp, scheme, path
        self.w_image, self.reconstruction = w_image, reconstruction
        self.null_model = null_model

    def _maps(self, rows: np.ndarray) -> np.ndarray:
        dec = self.dec
        if self.null_model is not None:
            trajectories = self.interp.flip_trajectories(rows, self.null_model)
        else:
            trajectories = self.interp.null_trajectories(rows, self.scheme)
        offsets = self.path.offsets(trajectories)
        together = bool(getattr(dec.fn, "batch_invariant", False))
        null = local_frames(dec, self.w_image, offsets, self.path.moving, self.reconstruction, together)
        null -= self.reconstruction
        return np.ascontiguousarray(null.reshape(len(rows), -1), dtype=np.float32)


_DECODERS: dict[str, object] = {}


_SHA256 = re.compile(r"sha256:([0-9a-f]{64})")


def _absolute_spec(spec: str) -> str:
    """A spec naming an existing file as its absolute path; ``module:attr`` unchanged."""
    return os.path.abspath(spec) if os.path.isfile(spec) else spec


def _content(identity: str) -> str:
    """What identifies a decoder's content: the sha256 values in its identity (else the identity)."""
    found = _SHA256.findall(str(identity))
    return ",".join(found) if found else str(identity)


def worker_decoder(spec, device: str = "cpu", *, identity: str = ""):
    """The decoder of ``spec`` (checkpoint path or ``module:attr``), loaded once per process and device and
    cached. A checkpoint is loaded on ``device`` (``"cpu"``, ``"cuda"``: on a dask-cuda worker its own GPU,
    ``"cuda:N"``); a ``module:attr`` decoder runs where its own code puts it (the client accepts only
    ``"cpu"`` for it).

    A worker that decodes on the CPU calls :func:`seegaan.model.keep_freed_memory` first, as the ``seegaan``
    commands do in their own process (``SEEGAAN_KEEP_FREED_MEMORY=0`` in the workers' environment turns it
    off): Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which fixes glibc's mmap
    threshold at its minimum, so every convolution output would be fresh, zero-filled pages (measured: the
    demo generator decoded 2.5x slower).
    """
    key = f"{spec}\0{device}\0{_content(identity)}"  # the spec, the device and the content (no NUL in paths)
    dec = _DECODERS.get(key)
    if dec is None:
        if str(device) == "cpu":
            keep_freed_memory()
        for old in [k for k in _DECODERS if k.startswith(f"{spec}\0{device}\0")]:
            del _DECODERS[old]  # another content under the same name: a retrained checkpoint, not to be reused
        dec = load_decoder(str(spec), device=str(device))
        if identity and _content(dec.identity) != _content(identity):
            raise SeegaanError(
                f"the decoder {spec} on this worker is not the client's ({dec.identity} here, {identity} there): "
                "the file changed during the run or the worker sees another file; give a path every worker "
                "sees, and do not change it while a run uses it"
            )
        _DECODERS[key] = dec
    return dec
