"""Private helpers shared by every part of seegaan (nothing here is public API).

errors
    :class:`SeegaanError` and :class:`SeegaanWarning`.
choices
    Every ``Literal`` option once, and the CLI enums derived from them.
io
    Atomic writes, output-path checks, folder locks, clean termination, hashes.
runtime
    Thread limits and floating-point precision settings of torch, Numba and BLAS.
progress, summary, lazy, docs
    The progress callable, printable summaries, lazily resolved public names, and the parameter
    docstrings written once (:func:`~seegaan._internal.docs.fill_doc`).
"""
