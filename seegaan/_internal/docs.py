"""Parameter docs written once: :data:`docdict` and the :func:`fill_doc` decorator (as MNE's ``fill_doc``).

A docstring line that holds only ``%(name)s`` is replaced by the entry ``name`` of :data:`docdict`, indented
like the placeholder; every other ``%`` of the docstring is left as it is. An unknown name is an error when
the module is imported (the test suite imports every module), so a docstring cannot refer to a missing
entry.
"""

from __future__ import annotations

import re
import textwrap

__all__ = ["docdict", "fill_doc"]

docdict: dict[str, str] = {}

docdict["n_perm"] = """
n_perm : int or "exact"
    Number of permutations B (0 = decode only, no test; ``"exact"`` enumerates every rearrangement)."""

docdict["null"] = """
null : {"sign-flip", "permutation"}
    The null distribution. ``"sign-flip"`` (the default): the residual latents of the weighted null model
    (one common mean, or the covariates' model) get one random sign per patient, and every flipped cohort
    is decoded for real; valid when groups differ in size and spread, when the spread changes along the
    feature, with several images per patient and with curved decoders (measured: ``docs/statistics.md``).
    ``"permutation"``: the feature's labels (or the Freedman–Lane residuals) are permuted; exact when the
    images (patients) are exchangeable -- equal spread -- and then more powerful, but far too liberal when a
    small group is more variable."""

docdict["alpha"] = """
alpha : float
    Significance level of the corrected test (0 < alpha < 1)."""

docdict["alternative"] = """
alternative : {"two-sided", "greater", "less"}
    Direction of the difference (image - image[step 0]) that counts as evidence."""

docdict["seed"] = """
seed : int, Generator or None
    All permutations are drawn from it before any decoding; the result does not depend on
    ``batch_size`` or ``null_cache_mb``. ``None`` draws a seed from fresh entropy and records it."""

docdict["batch_size"] = """
batch_size : int
    Permutations streamed through the decoder and the kernels at a time (memory, not results)."""

docdict["null_cache_mb"] = """
null_cache_mb : float
    Keep the null maps in memory for the second pass of a family-wise correction when they fit in this
    many MiB; else decode twice (the same bits either way)."""

docdict["backend"] = """
backend : {"numba", "numpy"}
    Kernel implementation (identical results; NumPy needs no compilation)."""

docdict["scheme"] = """
scheme : {"image", "patient-label", "whole-block"}, optional
    Force the permutation scheme (see :func:`seegaan.draw_permutations`); by default it follows from the
    patients and the feature."""

docdict["mask"] = """
mask : array (H, W) of bool, or path, optional
    Test only these pixels (True): a region of interest, e.g. to leave burned-in markers or text out of
    the family (their null changes can dominate the null maxima). A path is read with
    :func:`seegaan.load_mask`. Pixels outside are never significant and take no part in any correction;
    the mask's pixel count and hash go into the attrs."""

docdict["progress"] = """
progress : callable, optional
    ``progress(n=1, total=None)``: called once with ``total`` (work units) and then with the number of
    permutations just processed (each counts twice when a family-wise correction decodes them again)."""

docdict["command_line"] = """
command_line : str
    Recorded in the output's attrs."""

docdict["client"] = """
client : distributed.Client, optional
    Decode and reduce the permutations on its Dask workers (:mod:`seegaan.stats.distributed`; the same
    bits as without it); the decoder must then be a checkpoint path or ``"module:callable"``."""

docdict["device"] = """
device : {"cpu", "cuda", "cuda:N", "auto"}
    Where a checkpoint decoder (given as a path) is loaded and decodes: ``"cpu"`` (the default),
    ``"cuda"`` (the current GPU), ``"cuda:N"``, or ``"auto"`` (the GPU when there is one). Checked before
    any decoding: CUDA without a CUDA GPU is an error. With ``client=`` every Dask worker loads the
    checkpoint on the same device string (``"cuda"`` on a dask-cuda worker is its own GPU,
    ``docs/distributed.md``). Any other decoder runs where its own code puts it, so only ``"cpu"`` is
    accepted for it. Recorded in ``precision`` (e.g. ``fp32 (TF32 off) on cuda (<GPU name>)``)."""

docdict["decoder"] = """
decoder : str, path or callable
    A checkpoint, ``"module:callable"`` or a callable mapping float32 (B, D) to (B, H, W)
    (:func:`seegaan.load_decoder`)."""

_PLACEHOLDER = re.compile(r"^(?P<indent>[ \t]*)%\((?P<name>\w+)\)s[ \t]*$", re.MULTILINE)


def fill_doc(obj):
    """Replace every line ``%(name)s`` of ``obj.__doc__`` by ``docdict[name]``, indented like the line."""
    doc = obj.__doc__
    if not doc:
        return obj

    def entry(match: re.Match) -> str:
        name = match.group("name")
        if name not in docdict:
            raise KeyError(f"{getattr(obj, '__qualname__', obj)}: no docdict entry {name!r}")
        return textwrap.indent(docdict[name].strip("\n"), match.group("indent"))

    obj.__doc__ = _PLACEHOLDER.sub(entry, doc)
    return obj
